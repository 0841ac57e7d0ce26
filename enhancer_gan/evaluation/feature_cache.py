"""Features of a run on the evaluation data, extracted once and reused.

`run_features` writes `<features_root>/<label>/<split>.npz` through
`extract.extract_dataset_features` and reuses a file only when its recorded
source (run folder, checkpoint, data set) is the one asked for.

This module must not import TensorFlow at import time (the extraction that
needs it is imported inside `run_features`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

from enhancer_gan.errors import ConfigError, DataError
from enhancer_gan.evaluation.run_specs import RunSpec
from enhancer_gan.evaluation.subsets import subsample_indices, subset_archive
from enhancer_gan.io_utils import OutputExistsError

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class EvalData:
    """The evaluation data set as the scripts name it.

    Attributes:
      dataset: 'archive', 'modelnet' or 'synthetic'.
      data_dir: archive file or ModelNet root ('' for the built-in set).
      max_per_split: keep at most this many shapes per split (0 = all),
        stratified and deterministic (seeded by `seed`).
      seed: subsample seed.
      min_per_class: floor of shapes per class in a subsample (the same for
        every table, so that the tables share one subset and its features).
    """

    dataset: str
    data_dir: str = ""
    max_per_split: int = 0
    seed: int = 0
    min_per_class: int = 3

    def __post_init__(self):
        if self.dataset not in ("archive", "modelnet", "synthetic"):
            raise ConfigError(
                f"--dataset must be archive, modelnet or synthetic, got {self.dataset!r}"
            )
        if self.dataset in ("archive", "modelnet") and not self.data_dir:
            raise ConfigError(f"--data_dir is required for --dataset={self.dataset}")
        if self.dataset == "archive" and not os.path.isfile(self.data_dir):
            raise DataError(self.data_dir, "archive file does not exist")
        if self.dataset == "modelnet" and not os.path.isdir(self.data_dir):
            raise DataError(self.data_dir, "ModelNet folder does not exist")
        if self.max_per_split < 0:
            raise ConfigError(f"--max_per_split must be >= 0, got {self.max_per_split}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _expected_checkpoint(spec: RunSpec) -> str:
    """What a feature file's source['checkpoint'] must say for `spec`."""
    if spec.random_init:
        return "random_init"
    from enhancer_gan.training.runs import find_checkpoint

    return os.path.abspath(find_checkpoint(spec.run_dir, spec.checkpoint))


def _mismatch(source: dict, spec: RunSpec, checkpoint: str, dataset: str, data_dir: str):
    """Why a feature file's source does not fit `spec` (None if it fits)."""

    def norm(path: str | None) -> str | None:
        return os.path.abspath(path) if path and path != "random_init" else path

    wants = [
        ("run_dir", norm(source.get("run_dir")), norm(spec.run_dir)),
        ("checkpoint", norm(source.get("checkpoint")), checkpoint),
        ("dataset", source.get("dataset"), dataset),
        ("data_dir", norm(source.get("data_dir")), norm(data_dir)),
    ]
    for what, got, want in wants:
        if got != want:
            return f"its {what} is {got!r}, this evaluation needs {want!r}"
    return None


def run_features(
    spec: RunSpec,
    data: EvalData,
    features_root: str,
    splits: Sequence[str] = ("train", "test"),
    *,
    batch_size: int = 32,
    overwrite: bool = False,
    progress: bool = False,
    log: Callable[[str], None] = logger.info,
) -> dict[str, dict]:
    """Features of one run on each split, extracted once and then reused.

    Files go to `<features_root>/<label>/<split>.npz`. A file is reused when
    its recorded source (run folder, checkpoint, data set) is the one asked
    for; a file from another source is an error unless `overwrite`, which
    extracts again. With `data.max_per_split` an archive is first cut down to
    a stratified subset (`<features_root>/data/`), so only those grids are
    run through DM; other data sets are subsampled after extraction.

    Returns:
      split -> `features.load_features` dict (subsampled).
    """
    from enhancer_gan.evaluation.extract import extract_dataset_features
    from enhancer_gan.evaluation.features import load_features

    data_dir = data.data_dir
    if data.dataset == "archive" and data.max_per_split:
        stem = os.path.splitext(os.path.basename(data_dir))[0]
        data_dir = subset_archive(
            data_dir,
            os.path.join(
                features_root,
                "data",
                f"{stem}_max{data.max_per_split}_seed{data.seed}_min{data.min_per_class}.npz",
            ),
            data.max_per_split,
            data.seed,
            data.min_per_class,
        )
    folder = os.path.join(features_root, spec.label)
    checkpoint = _expected_checkpoint(spec)
    missing = []
    for split in splits:
        path = os.path.join(folder, f"{split}.npz")
        if not os.path.exists(path):
            missing.append(split)
            continue
        problem = _mismatch(load_features(path)["source"], spec, checkpoint, data.dataset, data_dir)
        if problem is None:
            log(f"{spec.label}: reusing {path}")
        elif overwrite:
            log(f"{spec.label}: {path} is stale ({problem}); extracting again")
            missing.append(split)
        else:
            raise OutputExistsError(
                f"{path}: feature file from another source ({problem}); pass --overwrite "
                "to extract again, or use another --results_dir"
            )
    if missing:
        log(f"{spec.label}: extracting {', '.join(missing)} features from {spec.run_dir}")
        extract_dataset_features(
            spec.run_dir,
            data.dataset,
            data_dir,
            folder,
            splits=tuple(missing),
            checkpoint=spec.checkpoint,
            random_init=spec.random_init,
            cache_dir=os.path.join(features_root, "cache"),
            batch_size=batch_size,
            overwrite=True,  # stale files were refused above unless overwrite
            progress=progress,
            log=log,
        )
    out = {}
    for split in splits:
        path = os.path.join(folder, f"{split}.npz")
        feats = load_features(path)
        problem = _mismatch(feats["source"], spec, checkpoint, data.dataset, data_dir)
        if problem is not None:  # e.g. the run saved a newer checkpoint meanwhile
            raise DataError(path, f"features do not match the evaluation: {problem}")
        keep = subsample_indices(feats["labels"], data.max_per_split, data.seed, data.min_per_class)
        if keep.size < feats["labels"].size:
            feats = dict(
                feats,
                features=feats["features"][keep],
                labels=feats["labels"][keep],
                model_ids=tuple(feats["model_ids"][i] for i in keep),
            )
        out[split] = feats
    return out
