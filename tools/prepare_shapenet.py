"""Decodes the paper's ShapeNet grids once into the packed-grid cache training reads.

  python tools/prepare_shapenet.py --data_dir=/data/shapenet --workers=8

reads ShapeNetCore v2 grids (`models/model_normalized.solid.binvox`, or the
mesh `model_normalized.obj` where the binvox is absent) of the models that
also have 3D-R2N2 renders (`--dataset=r2n2_v2` pairs), brings them into the
project frame at `--resolution` (64 by default) and writes them, one file per
category, into `--cache_dir` (`data_cache/shapenet_v2`, the presets' cache):
the files `experiments/train.py --cache_dir=<same>` then reads instead of
decoding (see `enhancer_gan.data.datasets`, "The packed-grid cache").

Work is saved in parts of `--chunk_size` models, each written atomically,
so a killed run resumes where it stopped. It ends with one summary line:
models kept per category, how many were read from an earlier run, and what
was left out and why (every left-out model with its reason is listed in
`<cache_dir>/left_out_<resolution>.txt`). Flags are parsed here only.
"""

from __future__ import annotations

import collections
import os
import sys
import time

from absl import app, flags

# Runnable as a plain script from a checkout (python tools/prepare_shapenet.py).
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from enhancer_gan.config import SHAPENET_SYNSETS, DataConfig  # noqa: E402
from enhancer_gan.data import datasets  # noqa: E402
from enhancer_gan.errors import EnhancerGanError  # noqa: E402
from enhancer_gan.io_utils import atomic_write_text  # noqa: E402
from experiments._cli import flags_parser  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("data_dir", "", "Root holding ShapeNetCore.v2/ and ShapeNetRendering/.")
flags.DEFINE_string("voxel_dir", "", "The ShapeNetCore.v2 folder, if not under --data_dir.")
flags.DEFINE_string("render_dir", "", "The ShapeNetRendering folder, if not under --data_dir.")
flags.DEFINE_list(
    "categories",
    list(SHAPENET_SYNSETS),
    "Categories to prepare (default: the seven of the features experiment).",
)
flags.DEFINE_enum("resolution", "64", ["32", "64"], "Voxel grid side.")
flags.DEFINE_string("cache_dir", "data_cache/shapenet_v2", "Where the cache files go.")
flags.DEFINE_integer(
    "workers", min(8, os.cpu_count() or 1), "Processes to decode in.", lower_bound=1
)
flags.DEFINE_integer("chunk_size", datasets.CHUNK_SIZE, "Models per resumable part.", lower_bound=1)
flags.DEFINE_bool("progress", True, "Show a progress bar.")

_REASONS = (
    (datasets.NO_RENDERS, "without renders"),
    (datasets.NO_VOXELS, "without voxels"),
    (datasets.REJECTED, "rejected"),
    (datasets.UNDECODABLE, "undecodable"),
)


def summary_line(shapes, cache_dir: str, resolution: int, seconds: float, listing: str) -> str:
    """The one line the tool ends with."""
    per_category = collections.Counter(r.category for r in shapes.records)
    kept = ", ".join(f"{c} {n}" for c, n in sorted(per_category.items()))
    counts = collections.Counter()
    for _, reason in shapes.left_out:
        for prefix, name in _REASONS:
            if reason.startswith(prefix):
                counts[name] += 1
    why = ", ".join(f"{counts[name]} {name}" for _, name in _REASONS)
    empty = (
        f"; no models for {', '.join(shapes.empty_categories)}" if shapes.empty_categories else ""
    )
    return (
        f"prepare_shapenet: {len(shapes.records)} models at {resolution}^3 ({kept}) in "
        f"{cache_dir}, {shapes.reused} read from an earlier run, "
        f"{len(shapes.records) - shapes.reused} decoded; left out "
        f"{len(shapes.left_out)}: {why}{empty} (list: {listing}); {seconds:.1f} s"
    )


def main(argv):
    del argv
    start = time.time()
    resolution = int(FLAGS.resolution)
    try:
        cfg = DataConfig(
            kind="r2n2_v2",
            data_dir=FLAGS.data_dir,
            voxel_dir=FLAGS.voxel_dir,
            render_dir=FLAGS.render_dir,
            categories=tuple(FLAGS.categories),
        )
        shapes = datasets.load_shapes(
            cfg,
            resolution,
            cache_dir=FLAGS.cache_dir,
            progress=FLAGS.progress,
            log=lambda *_: None,  # the summary below says it all
            workers=FLAGS.workers,
            chunk_size=FLAGS.chunk_size,
        )
        listing = os.path.join(FLAGS.cache_dir, f"left_out_{resolution}.txt")
        atomic_write_text(
            listing, "".join(f"{model}\t{reason}\n" for model, reason in shapes.left_out)
        )
    except EnhancerGanError as e:
        print(f"prepare_shapenet: {e}", file=sys.stderr)
        return 1
    print(summary_line(shapes, FLAGS.cache_dir, resolution, time.time() - start, listing))
    return 0


if __name__ == "__main__":
    app.run(main, flags_parser=flags_parser(FLAGS))
