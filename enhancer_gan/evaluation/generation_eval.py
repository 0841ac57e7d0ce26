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
import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from enhancer_gan.errors import ConfigError, DataError

DEFAULT_NUM_SAMPLES = 64

logger = logging.getLogger(__name__)


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
    log: Callable[[str], None] = logger.info,
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
    if dataset == "synthetic":
        cfg = synthetic_split_config(data_dir, split, run_config)
    else:
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


def synthetic_split_config(data_dir: str, split: str, run_config):
    """The built-in data set's `split`, read exactly as training reads its grids.

    The 3D-R2N2-style grids of the run's data settings (the same reader,
    frame and placement as the training pairs), restricted to the split:
    'test' holds the models that training never sees.
    """
    from enhancer_gan.config import DataConfig

    cfg = run_config.data if run_config.data.kind == "synthetic" else DataConfig(kind="synthetic")
    return dataclasses.replace(cfg, data_dir=data_dir or cfg.data_dir, split=split)


REFERENCE_KINDS = ("synthetic", "archive", "modelnet")
MAX_REFERENCE = 256


def run_reference(
    run_dir_or_config,
    num_ceiling: int = DEFAULT_NUM_SAMPLES,
    seed: int = 0,
    reference_dir: str = "",
    **kwargs,
) -> tuple[np.ndarray, np.ndarray]:
    """(reference, ceiling grids) for a run: its data set's held-out split and train grids.

    The reference is the run's data set's test split (at most 256 grids,
    the run's categories), read like its training grids; the ceiling is
    `num_ceiling` grids of its training split, a seeded subset.
    `reference_dir` reads the reference from another build of the same kind
    instead (e.g. a larger built-in set, whose test split holds shapes that
    neither the run nor its own held-out split contain).

    Raises:
      ConfigError: the run's data set has no held-out split (ShapeNet kinds).
    """
    from enhancer_gan.config import ExperimentConfig

    config = run_dir_or_config
    if isinstance(config, str):
        config = ExperimentConfig.load(os.path.join(config, "config.json"))
    kind, data = config.data.kind, config.data
    if kind not in REFERENCE_KINDS:
        raise ConfigError(f"dataset {kind} has no held-out split to compare samples with")
    common = dict(cache_dir=data.cache_dir, seed=seed, **kwargs)
    r = config.model.resolution
    reference = reference_grids_for(
        kind, reference_dir or data.data_dir, "test", r, config, max_count=MAX_REFERENCE, **common
    )
    ceiling = reference_grids_for(
        kind, data.data_dir, "train", r, config, max_count=num_ceiling, **common
    )
    return reference, ceiling


def evaluate_run_generation(
    run_dir: str,
    reference_grids: np.ndarray,
    num_samples: int = DEFAULT_NUM_SAMPLES,
    seed: int = 0,
    checkpoint: str = "",
    *,
    batch_size: int = 16,
    random_init: bool = False,
    ceiling_grids: np.ndarray | None = None,
    sampling: str = "",
    average: bool = True,
) -> dict[str, Any]:
    """Samples a run's generator and scores the samples against real grids.

    Args:
      run_dir: the training run folder.
      reference_grids: [M, R, R, R] held-out real grids (bool or [0, 1]),
        made like the training grids.
      num_samples: N, samples drawn (z from `generation.sample_noise(N, ., seed)`).
      seed: seeds z (and the report's subsets).
      checkpoint: checkpoint name or path ('' = the latest).
      batch_size: samples per generator call.
      random_init: use the untrained generator (a floor; no checkpoint needed).
      ceiling_grids: real grids that are not in the reference (e.g. N grids of
        the training split), scored against it as if they were samples: what a
        generator that reproduced the data would reach. None = no ceiling.
      sampling: a `generation.SAMPLING_MODES` mode ('' = the default).
      average: sample the run's average of its generators' weights when it
        keeps one (`training.ema`); False = the last iterate.

    Returns:
      `generation_report`'s dict ('cov', 'mmd', 'one_nna', ..., the shape
      statistics 'generated_components', ...) plus 'run_dir', 'checkpoint'
      ('random_init' or the path), 'step', 'seed', 'num_samples', 'sampling',
      and 'ceiling': the same report of `ceiling_grids` (or None).

    Raises:
      ConfigError: num_samples or batch_size below 1, or the reference's
        resolution is not the run's.
      RunError: the run folder or checkpoint cannot be used.
    """
    from enhancer_gan.evaluation.generation_metrics import generation_report
    from enhancer_gan.generation import DEFAULT_SAMPLING, generate_in_batches, sample_noise, sampler
    from enhancer_gan.training.runs import load_run

    if num_samples < 1 or batch_size < 1:
        raise ConfigError(
            f"num_samples and batch_size must be positive, got {num_samples}, {batch_size}"
        )
    reference_grids = np.asarray(reference_grids)
    run = load_run(run_dir, checkpoint, random_init=random_init, average=average)
    r = run.config.model.resolution
    for name, grids in (("reference", reference_grids), ("ceiling", ceiling_grids)):
        if grids is not None and (np.ndim(grids) != 4 or np.shape(grids)[1:] != (r, r, r)):
            raise ConfigError(
                f"{name} grids are {np.shape(grids)[1:]}, the run at {run_dir} "
                f"generates {r}^3 grids"
            )
    sampling = sampling or DEFAULT_SAMPLING
    z = sample_noise(num_samples, run.config.model.latent_dim, seed)
    generated = generate_in_batches(sampler(run.networks, sampling), z, batch_size)
    report = generation_report(generated, reference_grids, seed=seed)
    report.update(
        run_dir=_relative(run_dir),
        checkpoint=_relative(run.checkpoint_path) if run.checkpoint_path else "random_init",
        step=run.step,
        seed=int(seed),
        num_samples=int(num_samples),
        sampling=sampling,
        averaged=run.averaged,
        ceiling=None,
    )
    if ceiling_grids is not None:
        report["ceiling"] = generation_report(ceiling_grids, reference_grids, seed=seed)
    return report


def _relative(path: str) -> str:
    """`path` relative to the working folder when it lies below it, else absolute."""
    path = os.path.abspath(path)
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


REPORT_ROWS = (
    ("cov", "COV", "coverage, higher is better"),
    ("mmd", "MMD", "minimum matching IoU distance, lower is better"),
    ("one_nna", "1-NNA", "0.5 ideal, 1 = separable"),
    ("generated_components", "components", "26-connected pieces per grid"),
    ("generated_many_pieces_fraction", "> 3 pieces", "share of grids"),
    ("generated_largest_share", "largest piece", "share of occupied voxels"),
    ("generated_undecided", "undecided", "voxels with 0.2 < p < 0.8"),
    ("generated_mean_occupancy", "occupancy", "mean share of occupied voxels"),
)


def format_report(report: dict[str, Any]) -> str:
    """The report as a small table: samples beside the real-vs-real ceiling.

    What tools/evaluate_generation.py and train.py --evaluate_generation print.
    """
    ceiling = report.get("ceiling")
    lines = [
        f"run {report.get('run_dir', '?')} ({os.path.basename(str(report.get('checkpoint')))}, "
        f"step {report.get('step')}, sampling {report.get('sampling', '?')}"
        f"{', weight average' if report.get('averaged') else ''}): "
        f"{report['num_generated']} samples vs {report['num_real']} held-out real "
        f"{report['resolution']}^3 grids",
        f"{'':14s}{'samples':>9s}{'ceiling' if ceiling else '':>9s}",
    ]
    for key, label, meaning in REPORT_ROWS:
        best = f"{ceiling[key]:9.3f}" if ceiling else ""
        lines.append(f"{label:14s}{report[key]:9.3f}{best}  ({meaning})")
    lines.append(
        f"held-out real grids: {report['real_components']:.2f} components, occupancy "
        f"{report['real_mean_occupancy']:.3f}"
        + (
            f"; the ceiling row scores {ceiling['num_generated']} real grids that are "
            "not in the reference as if they were samples"
            if ceiling
            else ""
        )
    )
    return "\n".join(lines)
