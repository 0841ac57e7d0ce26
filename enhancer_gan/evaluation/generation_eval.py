"""Generation quality of a training run: its samples against held-out real shapes.

`reference_grids_for` loads the real grids (a test split of the built-in
synthetic set, a voxel archive or a ModelNet tree, in the project frame);
`evaluate_run_generation` samples z ~ U[-1, 1] from a run's generator
(GE's layer i -> GM, or the latent projector -> GM, inference mode) and
scores the samples with `generation_metrics.generation_report` (COV, MMD,
1-NNA under the IoU distance, occupancy statistics).

The reference should be the category the run was trained on (one generator
per category in the paper), so by default it is filtered to the run's
training categories; a class the data set lacks is an error, never an
empty set.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from enhancer_gan.errors import ConfigError, DataError

DEFAULT_NUM_SAMPLES = 64


def reference_grids_for(
    dataset: str,
    data_dir: str,
    split: str,
    resolution: int,
    run_config,
    *,
    categories: Sequence[str] | None = None,
    max_count: int = 0,
    seed: int = 0,
    cache_dir: str = "",
    progress: bool = False,
    log: Callable[..., None] = print,
) -> np.ndarray:
    """Held-out real grids to compare a run's samples with.

    Args:
      dataset: 'synthetic' (the ModelNet-style split of the built-in data
        set matching the run's data settings, built if needed, or the one at
        `data_dir`), 'archive' (an .npz file) or 'modelnet' (a ModelNet root).
      data_dir: see `dataset`.
      split: 'train' or 'test'.
      resolution: R of the grids (the run's).
      run_config: the run's ExperimentConfig.
      categories: class names to keep; None = the run's training categories
        (`run_config.data.categories`; all when that is empty); () = all.
      max_count: keep at most this many grids (0 = all), a seeded random subset.
      seed: picks that subset.
      cache_dir: voxel cache for meshes ('' = the reader's default).

    Returns:
      [N, R, R, R] bool, project frame (y up).

    Raises:
      ConfigError: unknown dataset or split, missing data_dir, a class the
        data set lacks.
      DataError: unreadable data, or no grid left.
    """
    from enhancer_gan.data.datasets import load_shapes
    from enhancer_gan.data.pipeline import unpack_grids
    from enhancer_gan.evaluation.extract import eval_data_config

    if split not in ("train", "test"):
        raise ConfigError(f"--split must be train or test, got {split!r}")
    if max_count < 0:
        raise ConfigError(f"max_count must be >= 0, got {max_count}")
    if categories is None:
        categories = tuple(run_config.data.categories)
    cfg = eval_data_config(dataset, data_dir, split, run_config)
    cfg = dataclasses.replace(cfg, categories=tuple(categories))
    shapes = load_shapes(cfg, resolution, cache_dir=cache_dir, progress=progress, log=log)
    if not shapes.records:
        raise DataError(
            cfg.data_dir, f"no {split} shapes of {', '.join(categories) or 'any class'}"
        )
    packed = shapes.packed
    if max_count and len(packed) > max_count:
        keep = np.sort(np.random.default_rng(seed).choice(len(packed), max_count, replace=False))
        packed = packed[keep]
    return unpack_grids(packed, resolution)


def evaluate_run_generation(
    run_dir: str,
    reference_grids: np.ndarray,
    num_samples: int = DEFAULT_NUM_SAMPLES,
    seed: int = 0,
    checkpoint: str = "",
    *,
    batch_size: int = 16,
    random_init: bool = False,
) -> dict[str, Any]:
    """Samples a run's generator and scores the samples against real grids.

    Args:
      run_dir: the training run folder.
      reference_grids: [M, R, R, R] held-out real grids (bool or [0, 1]).
      num_samples: N, samples drawn (z from `generation.sample_noise(N, ., seed)`).
      seed: seeds z (and the report's subsets).
      checkpoint: checkpoint name or path ('' = the latest).
      batch_size: samples per generator call.
      random_init: use the untrained generator (a floor; no checkpoint needed).

    Returns:
      `generation_report`'s dict ('cov', 'mmd', 'one_nna', ...,
      'generated_mean_occupancy', 'generated_empty_fraction',
      'generated_solid_fraction', the same for 'real_') plus 'run_dir',
      'checkpoint' ('random_init' or the path), 'step', 'seed', 'num_samples'.

    Raises:
      ConfigError: num_samples or batch_size below 1, or the reference's
        resolution is not the run's.
      RunError: the run folder or checkpoint cannot be used.
    """
    import tensorflow as tf

    from enhancer_gan.evaluation.generation_metrics import generation_report
    from enhancer_gan.generation import generate_in_batches, sample_noise
    from enhancer_gan.models import generate_voxels
    from enhancer_gan.training.runs import load_run

    if num_samples < 1 or batch_size < 1:
        raise ConfigError(
            f"num_samples and batch_size must be positive, got {num_samples}, {batch_size}"
        )
    reference_grids = np.asarray(reference_grids)
    run = load_run(run_dir, checkpoint, random_init=random_init)
    r = run.config.model.resolution
    if reference_grids.ndim != 4 or reference_grids.shape[1:] != (r, r, r):
        raise ConfigError(
            f"reference grids are {reference_grids.shape[1:]}, the run at {run_dir} "
            f"generates {r}^3 grids"
        )

    def generate(z: np.ndarray) -> np.ndarray:
        voxels, _ = generate_voxels(run.networks, tf.constant(z), training=False)
        return voxels.numpy()[..., 0]

    z = sample_noise(num_samples, run.config.model.latent_dim, seed)
    generated = generate_in_batches(generate, z, batch_size)
    report = generation_report(generated, reference_grids, seed=seed)
    report.update(
        run_dir=os.path.abspath(run_dir),
        checkpoint=run.checkpoint_path or "random_init",
        step=run.step,
        seed=int(seed),
        num_samples=int(num_samples),
    )
    return report


def format_report(report: dict[str, Any]) -> str:
    """The report as a few readable lines (what tools/evaluate_generation.py prints)."""
    lines = [
        f"run {report.get('run_dir', '?')} ({os.path.basename(str(report.get('checkpoint')))}, "
        f"step {report.get('step')}): {report['num_generated']} samples vs "
        f"{report['num_real']} real {report['resolution']}^3 grids",
        f"COV   {report['cov']:.4f}  (coverage, higher is better)",
        f"MMD   {report['mmd']:.4f}  (minimum matching IoU distance, lower is better)",
        f"1-NNA {report['one_nna']:.4f}  (0.5 ideal; generated {report['one_nna_generated']:.4f}, "
        f"real {report['one_nna_real']:.4f})",
    ]
    for who in ("generated", "real"):
        lines.append(
            f"{who:9s} mean occupancy {report[f'{who}_mean_occupancy']:.4f}, "
            f"empty {report[f'{who}_empty_fraction']:.3f}, "
            f"near-solid {report[f'{who}_solid_fraction']:.3f}"
        )
    return "\n".join(lines)
