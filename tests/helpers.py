"""Small builders shared by the tests: tiny configs and in-memory data sets."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import numpy as np
from PIL import Image

from enhancer_gan.config import DataConfig, ExperimentConfig, ModelConfig, TrainConfig
from enhancer_gan.data.pipeline import PairSource, pack_grids


def tiny_model_config(**kw) -> ModelConfig:
    """Resolution 32, 1/16 width, 32x32 images: the full code path, small."""
    base = dict(resolution=32, width_multiplier=1 / 16, image_size=32)
    base.update(kw)
    return ModelConfig(**base)


def tiny_train_config(**kw) -> TrainConfig:
    base = dict(
        batch_size=2,
        num_steps=3,
        summary_every=1,
        checkpoint_every=2,
        sample_every=3,
        num_samples=2,
    )
    base.update(kw)
    return TrainConfig(**base)


def tiny_experiment(run_dir: str, model=None, train=None) -> ExperimentConfig:
    return ExperimentConfig(
        model=model or tiny_model_config(),
        data=DataConfig(kind="synthetic"),
        train=train or tiny_train_config(),
        run_dir=run_dir,
    )


def box_grids(n: int, res: int, seed: int = 0) -> np.ndarray:
    """n random axis-aligned solid boxes: [n, res, res, res] bool."""
    rng = np.random.default_rng(seed)
    grids = np.zeros((n, res, res, res), dtype=bool)
    for g in grids:
        lo = rng.integers(0, res // 2, 3)
        hi = lo + rng.integers(2, res // 2, 3)
        g[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] = True
    return grids


def tiny_source(folder: str, n: int = 6, res: int = 32, views: int = 3, seed: int = 0):
    """A PairSource of n boxes with `views` distinct flat-colour PNG views each."""
    grids = box_grids(n, res, seed)
    paths = []
    for i in range(n):
        mine = []
        for k in range(views):
            path = os.path.join(folder, f"m{i}", f"{k:02d}.png")
            os.makedirs(os.path.dirname(path), exist_ok=True)
            rgba = np.zeros((40, 40, 4), dtype=np.uint8)
            rgba[..., 0] = 10 * i
            rgba[..., 1] = 60 * k
            rgba[10:30, 10:30, 3] = 255  # opaque square on transparent
            Image.fromarray(rgba, "RGBA").save(path)
            mine.append(path)
        paths.append(tuple(mine))
    return PairSource(pack_grids(grids), res, tuple(paths), tuple(f"m{i}" for i in range(n))), grids


def train_dry_run(*args: str) -> subprocess.CompletedProcess:
    """experiments/train.py --dry_run with `args`: its config JSON on stdout."""
    root = pathlib.Path(__file__).resolve().parents[1]
    return subprocess.run(
        [sys.executable, str(root / "experiments" / "train.py"), "--dry_run", *args],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )
