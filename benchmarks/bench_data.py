"""Benchmark: the training input pipeline.

  python benchmarks/bench_data.py                  # 64^3 voxels, 128x128 views, batch 64
  python benchmarks/bench_data.py --quick          # tiny, seconds (smoke test)

`make_pair_dataset` over `--num_models` packed 64^3 grids, each with 24 PNG
views: the real 3D-R2N2 renders under `--views_dir` (cycled) when present,
else 137x137 RGBA noise PNGs. After one warm-up pass, `--batches`
batches are timed twice: views from the decoded-view cache
(`view_cache.decoded_views`, what training uses; its one-time build timed
apart) and decoded from the PNG files every time.

Last line: `pairs_per_s=<number>` (the cached pipeline's pairs per second).
"""

from __future__ import annotations

import dataclasses
import glob
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402  (puts the repository on sys.path)
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

_SHARED = os.path.join(os.path.dirname(common.ROOT), "shared", "data")

flags.DEFINE_integer("resolution", 64, "Voxel grid side of the pipeline.")
flags.DEFINE_integer("image_size", 128, "Side of the decoded views.")
flags.DEFINE_integer("batch_size", 64, "Pairs per batch.")
flags.DEFINE_integer("num_models", 512, "Models in the in-memory data set.")
flags.DEFINE_integer("batches", 40, "Batches timed after the warm-up pass.")
flags.DEFINE_string("views_dir", os.path.join(_SHARED, "ShapeNetRendering"), "3D-R2N2 renders.")
flags.DEFINE_bool("quick", False, "Tiny sizes: checks the script end to end in seconds.")
FLAGS = flags.FLAGS


def view_paths(views_dir: str, folder: str, per_model: int) -> list[tuple[str, ...]]:
    """Every model's render paths under a ShapeNetRendering root; else 16 models' noise PNGs."""
    found = sorted(glob.glob(os.path.join(views_dir, "*", "*", "rendering")))
    paths = [tuple(sorted(glob.glob(os.path.join(d, "*.png")))[:per_model]) for d in found]
    if any(paths):
        return [p for p in paths if p]
    from PIL import Image

    # Noise compresses worst, so these decode at least as slowly as real renders.
    rng, out = np.random.default_rng(0), []
    for m in range(16):
        out.append(tuple(os.path.join(folder, f"m{m:02d}_{v:02d}.png") for v in range(per_model)))
        for path in out[-1]:
            Image.fromarray(rng.integers(0, 256, (137, 137, 4), np.uint8), "RGBA").save(path)
    return out


def bench_pipeline(source, batch_size: int, image_size: int, batches: int) -> dict:
    from enhancer_gan.data.pipeline import make_pair_dataset

    it = iter(make_pair_dataset(source, batch_size, image_size=image_size))
    start = time.perf_counter()
    for _ in range(-(-source.num_models // batch_size)):  # one epoch: file cache, autotuner
        next(it)
    warm = time.perf_counter() - start
    start, start_cpu = time.perf_counter(), time.process_time()
    for _ in range(batches):
        batch = next(it)
    seconds, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    pairs = batches * batch_size
    return {
        "views": "decoded-view cache" if source.views is not None else "PNG decoded every time",
        "batch": batch_size,
        "models": source.num_models,
        "warm-up pass s": warm,
        "pairs/s": pairs / seconds,
        "pairs/cpu-s": pairs / cpu,
        "image range ok": bool(-1.0 <= float(batch["image"].numpy().min()) <= 1.0),
    }


def main(argv):
    del argv
    from enhancer_gan.data.packing import pack_grids
    from enhancer_gan.data.pipeline import PairSource
    from enhancer_gan.data.view_cache import decoded_views

    if FLAGS.quick:
        res, image, batch, models, batches, per_model = 32, 128, 8, 16, 4, 4
    else:
        res, image, batch = FLAGS.resolution, FLAGS.image_size, FLAGS.batch_size
        models, batches, per_model = FLAGS.num_models, FLAGS.batches, 24
    import tensorflow  # noqa: F401  (so that machine_description asks it about oneDNN)

    common.print_machine()
    with tempfile.TemporaryDirectory(prefix="bench_data_") as tmp:
        paths = view_paths(FLAGS.views_dir, tmp, per_model)
        print(f"views: {len(paths)} models' PNGs, cycled, from {os.path.dirname(paths[0][0])}")
        grids = np.zeros((models, res, res, res), dtype=bool)
        rng = np.random.default_rng(0)
        for g in grids:  # solid boxes: content does not change the pipeline's cost
            lo = rng.integers(0, res // 2, 3)
            hi = lo + rng.integers(2, res // 2, 3)
            g[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] = True
        source = PairSource(
            pack_grids(grids), res, tuple(paths[i % len(paths)] for i in range(models))
        )
        from_png = bench_pipeline(source, batch, image, batches)
        start = time.perf_counter()
        views = decoded_views(source.view_paths, image, tmp, progress=False)
        build = time.perf_counter() - start
        cached = bench_pipeline(dataclasses.replace(source, views=views), batch, image, batches)
    common.print_table(
        f"pipeline (warm), {res}^3 voxels, {image}x{image} views", [cached, from_png]
    )
    print(
        f"view cache: {len(views):,} views decoded once in {build:.1f} s "
        f"({views.nbytes / 2**20:.0f} MiB); cached / PNG: {cached['pairs/s'] / from_png['pairs/s']:.1f}x"
    )
    common.final_line("pairs_per_s", cached["pairs/s"])


if __name__ == "__main__":
    app.run(main)
