"""Feature extraction for a run and a data set (what tools/extract_features.py does)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

import numpy as np

from enhancer_gan.config import DataConfig
from enhancer_gan.errors import ConfigError
from enhancer_gan.io_utils import check_can_write

logger = logging.getLogger(__name__)


def eval_data_config(dataset: str, data_dir: str, split: str, run_config) -> DataConfig:
    """The DataConfig of one evaluation split.

    'synthetic' means the ModelNet-style split of the built-in data set that
    matches the run's data settings (built if needed).
    """
    if dataset == "synthetic":
        if not data_dir:
            from enhancer_gan.data.datasets import synthetic_root

            cfg = run_config.data
            if cfg.kind != "synthetic":
                cfg = DataConfig(kind="synthetic")
            data_dir = synthetic_root(cfg, run_config.model.resolution, build=True)
        return DataConfig(kind="modelnet", data_dir=os.path.join(data_dir, "ModelNet"), split=split)
    if dataset not in ("archive", "modelnet"):
        raise ConfigError(f"unknown evaluation dataset {dataset!r}")
    if not data_dir:
        raise ConfigError(f"--data_dir is required for --dataset={dataset}")
    return DataConfig(kind=dataset, data_dir=data_dir, split=split)


def extract_dataset_features(
    run_dir: str,
    dataset: str,
    data_dir: str,
    output_dir: str,
    splits=("train", "test"),
    checkpoint: str = "",
    random_init: bool = False,
    cache_dir: str = "",
    batch_size: int = 32,
    float16: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = logger.info,
) -> list[tuple[str, tuple[int, int]]]:
    """Writes <output_dir>/<split>.npz for each split; returns (path, shape) pairs."""
    from enhancer_gan.data.datasets import load_shapes
    from enhancer_gan.data.pipeline import unpack_grids
    from enhancer_gan.evaluation.features import (
        FeatureExtractor,
        feature_block_sizes,
        save_features,
    )
    from enhancer_gan.training.runs import load_run

    for split in splits:
        if split not in ("train", "test"):
            raise ConfigError(f"unknown split {split!r}; expected train or test")
    paths = {s: os.path.join(output_dir, f"{s}.npz") for s in splits}
    for p in paths.values():  # refuse before any work is done
        check_can_write(p, overwrite)
    run = load_run(run_dir, checkpoint, random_init=random_init)
    resolution = run.config.model.resolution
    extractor = FeatureExtractor(run.networks.voxel_discriminator, batch_size=batch_size)
    source = {
        "run_dir": os.path.abspath(run_dir),
        "checkpoint": run.checkpoint_path or "random_init",
        "step": run.step,
        "config": run.config.to_dict(),
        "dataset": dataset,
        "data_dir": data_dir,
        "block_sizes": list(feature_block_sizes(run.networks.voxel_discriminator)),
    }
    written = []
    for split in splits:
        cfg = eval_data_config(dataset, data_dir, split, run.config)
        shapes = load_shapes(
            cfg,
            resolution,
            cache_dir=cache_dir or os.path.join(output_dir, "cache"),
            progress=progress,
            log=log,
        )
        grids = unpack_grids(shapes.packed, resolution)
        feats = extractor(grids, progress=progress, dtype=np.float16 if float16 else np.float32)
        save_features(
            paths[split],
            feats,
            shapes.labels,
            shapes.class_names,
            shapes.model_ids,
            dict(source, split=split),
        )
        written.append((paths[split], feats.shape))
    return written
