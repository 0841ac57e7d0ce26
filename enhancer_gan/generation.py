"""Sampling shapes from a trained generator and writing them out.

Works from a run folder (via `training.runs.load_run`) or from an exported
SavedModel (`training.export`); writes .binvox grids, marching-cubes meshes
(.obj or .ply) and a PNG sheet of renders.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np
import tensorflow as tf

from enhancer_gan.errors import ConfigError
from enhancer_gan.io_utils import OutputExistsError

SAMPLING_MODES = ("recalibrated", "moving", "batch")
DEFAULT_SAMPLING = "recalibrated"
# z of the batch-norm re-estimation: apart from the seeds users sample with.
RECALIBRATION_SEED = 0x5EED0


def sample_noise(num: int, latent_dim: int, seed: int) -> np.ndarray:
    """[num, latent_dim] float32 ~ U[-1, 1], reproducible for a seed."""
    return np.random.default_rng(seed).uniform(-1.0, 1.0, (num, latent_dim)).astype(np.float32)


def interpolate_noise(num: int, latent_dim: int, seed: int) -> np.ndarray:
    """`num` points on the straight line between two random z (ends included)."""
    a, b = sample_noise(2, latent_dim, seed)
    t = np.linspace(0.0, 1.0, num, dtype=np.float32)[:, None]
    return (1 - t) * a + t * b


def generator_batch_norms(networks) -> list:
    """The batch-norm layers of the networks that turn z into voxels (GE or projector, GM)."""
    from keras import layers

    found = []
    for model in networks.generators:
        found += [
            layer
            for layer in model._flatten_layers(include_self=False, recursive=True)
            if isinstance(layer, layers.BatchNormalization)
        ]
    return found


def recalibrate_batch_norm(
    networks, num_batches: int = 16, batch_size: int = 64, seed: int = RECALIBRATION_SEED
) -> None:
    """Re-estimates the generators' moving batch-norm statistics on fresh z.

    During training the moving statistics average batches of generators that
    no longer exist (momentum 0.99 reaches back about 100 updates), so in
    inference mode the trained generator is not the one the discriminator
    judged. This runs `num_batches` batches of z ~ U[-1, 1] in training mode
    and sets each layer's moving mean and variance to the average of its
    batch statistics (a cumulative average: momentum 1 - 1/k at batch k).
    All of GE runs, so the statistics of its image layers are re-estimated
    too. Only the moving statistics change; weights are untouched.
    """
    from enhancer_gan.models import generate_voxels

    bns = generator_batch_norms(networks)
    momenta = [bn.momentum for bn in bns]
    latent = networks.config.latent_dim
    try:
        for k in range(1, num_batches + 1):
            for bn in bns:
                bn.momentum = 1.0 - 1.0 / k
            z = sample_noise(batch_size, latent, seed + k)
            generate_voxels(networks, tf.constant(z), training=True)
    finally:
        for bn, m in zip(bns, momenta):
            bn.momentum = m


def batch_samples(networks, z, enhancer_outputs: bool = True):
    """z -> (voxels, GE outputs) with batch statistics, the moving statistics left as they were.

    What the discriminator judged in training (`generate_voxels(training=True)`),
    without its side effect on the generators' moving batch-norm statistics.
    """
    from enhancer_gan.models import generate_voxels

    bns = generator_batch_norms(networks)
    saved = [(bn.moving_mean.numpy(), bn.moving_variance.numpy()) for bn in bns]
    out = generate_voxels(
        networks, tf.constant(z), training=True, enhancer_outputs=enhancer_outputs
    )
    for bn, (mean, variance) in zip(bns, saved):
        bn.moving_mean.assign(mean)
        bn.moving_variance.assign(variance)
    return out


def sampler(networks, mode: str = DEFAULT_SAMPLING) -> Callable:
    """z [B, latent] numpy -> occupancy [B, R, R, R] numpy, sampled as `mode` says.

    Modes (docs/DESIGN.md#sampling):
      'recalibrated': batch norm with moving statistics re-estimated on fresh
        z once (`recalibrate_batch_norm`), then inference mode; each sample
        depends on its own z only. Changes the networks' moving statistics.
      'moving': inference mode with the moving statistics kept in training.
      'batch': batch norm with the statistics of the batch itself, as the
        discriminator saw samples in training; a sample then depends on the
        others in its batch (use batches of the training batch size or more).
    """
    from enhancer_gan.models import generate_voxels

    if mode not in SAMPLING_MODES:
        raise ConfigError(f"sampling mode must be one of {SAMPLING_MODES}, got {mode!r}")
    if mode == "recalibrated":
        recalibrate_batch_norm(networks)

    def generate(z):
        if mode == "batch":
            voxels, _ = batch_samples(networks, z, enhancer_outputs=False)
        else:
            voxels, _ = generate_voxels(
                networks, tf.constant(z), training=False, enhancer_outputs=False
            )
        return voxels.numpy()[..., 0]

    return generate


def generator_from_run(
    run_dir: str, checkpoint: str = "", mode: str = DEFAULT_SAMPLING
) -> tuple[Callable, int]:
    """(z -> occupancy [B, R, R, R] numpy, latent_dim) from a training run (see `sampler`)."""
    from enhancer_gan.training.runs import load_run

    run = load_run(run_dir, checkpoint)
    return sampler(run.networks, mode), run.config.model.latent_dim


def generator_from_export(path: str) -> tuple[Callable, int]:
    """(z -> occupancy, latent_dim) from an exported SavedModel folder."""
    loaded = tf.saved_model.load(path)
    latent_dim = int(loaded.generate.input_signature[0].shape[-1])
    return (lambda z: loaded.generate(tf.constant(z)).numpy()), latent_dim


def generate_in_batches(generate: Callable, z: np.ndarray, batch_size: int = 16) -> np.ndarray:
    return np.concatenate(
        [generate(z[i : i + batch_size]) for i in range(0, len(z), batch_size)], axis=0
    )


def write_shapes(
    occupancy: np.ndarray,
    output_dir: str,
    threshold: float = 0.5,
    mesh_format: str = "obj",
    overwrite: bool = False,
    prefix: str = "sample",
) -> dict[str, list[str]]:
    """Writes each grid as .binvox and a mesh, and all of them as sheet.png.

    Args:
      occupancy: [N, R, R, R] float in [0, 1].
      output_dir: created if needed; existing files are refused unless
        `overwrite`.
    """
    from enhancer_gan.voxels.binvox import write_binvox
    from enhancer_gan.voxels.mesh import voxels_to_mesh, write_obj, write_ply
    from enhancer_gan.voxels.sheet import save_sheet

    if mesh_format not in ("obj", "ply"):
        raise ValueError(f"mesh format must be 'obj' or 'ply', got {mesh_format!r}")
    grids = occupancy > threshold
    n = len(grids)
    names = [f"{prefix}_{i:04d}" for i in range(n)]
    planned = [os.path.join(output_dir, f"{s}.binvox") for s in names]
    planned += [os.path.join(output_dir, f"{s}.{mesh_format}") for s in names]
    planned.append(os.path.join(output_dir, "sheet.png"))
    clash = [p for p in planned if os.path.exists(p)]
    if clash and not overwrite:
        raise OutputExistsError(
            f"{clash[0]}: exists ({len(clash)} output files would be replaced); "
            "pass --overwrite or choose another --output_dir"
        )
    os.makedirs(output_dir, exist_ok=True)
    written: dict[str, list[str]] = {"binvox": [], "mesh": [], "sheet": []}
    writer = write_obj if mesh_format == "obj" else write_ply
    for name, grid, occ in zip(names, grids, occupancy):
        path = os.path.join(output_dir, f"{name}.binvox")
        write_binvox(path, grid)
        written["binvox"].append(path)
        vertices, faces = voxels_to_mesh(occ, threshold=threshold)[:2]
        path = os.path.join(output_dir, f"{name}.{mesh_format}")
        writer(path, vertices, faces)
        written["mesh"].append(path)
    sheet_path = os.path.join(output_dir, "sheet.png")
    save_sheet(sheet_path, list(grids), ncols=min(8, max(1, n)))
    written["sheet"].append(sheet_path)
    return written
