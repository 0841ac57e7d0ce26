"""Voxelizes ModelNet meshes once into packed-bit caches.

  python tools/prepare_modelnet.py --modelnet_dir=/data/ModelNet10 \
      --split=both --resolution=64 --output_dir=/data/modelnet10_vox64

writes `<output_dir>/modelnet_<split>_<resolution>.npz` per split (see
`enhancer_gan.data.voxel_cache.load_voxel_cache`) and `<output_dir>/failures.txt`
(one `split<TAB>path<TAB>problem` line per mesh that could not be read;
those meshes are left out of the cache, never a crash). Flags are parsed
here only; the work is `enhancer_gan.data.voxel_cache.voxelize_split`.
"""

from __future__ import annotations

import os
import sys
import time

from absl import app, flags

# Runnable as a plain script from a checkout (python tools/prepare_modelnet.py).
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from enhancer_gan.data import modelnet, voxel_cache  # noqa: E402
from enhancer_gan.errors import EnhancerGanError  # noqa: E402
from enhancer_gan.io_utils import atomic_write_text, check_can_write  # noqa: E402
from experiments._cli import flags_parser  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("modelnet_dir", None, "ModelNet root: <class>/{train,test}/*.off.")
flags.DEFINE_enum("split", "both", ["train", "test", "both"], "Which split(s) to voxelize.")
flags.DEFINE_enum("resolution", "64", ["32", "64"], "Voxel grid side.")
flags.DEFINE_string("output_dir", None, "Folder for the caches and failures.txt.")
flags.DEFINE_list("categories", [], "Class names to keep (default: all present).")
flags.DEFINE_bool("overwrite", False, "Replace existing caches.")
flags.DEFINE_bool("progress", True, "Show a progress bar.")
flags.DEFINE_integer("workers", 1, "Processes to voxelize in.", lower_bound=1)
flags.mark_flags_as_required(["modelnet_dir", "output_dir"])

FAILURES_FILE = "failures.txt"


def write_failures(output_dir: str, failures_by_split: dict[str, list]) -> str:
    """Writes failures.txt; lines of splits not run this time are kept."""
    path = os.path.join(output_dir, FAILURES_FILE)
    lines = []
    if os.path.exists(path):
        with open(path) as f:
            lines = [
                ln for ln in f.read().splitlines() if ln.split("\t")[0] not in failures_by_split
            ]
    for split, failures in failures_by_split.items():
        for _, _, mesh_path, problem in failures:
            lines.append(f"{split}\t{mesh_path}\t{' '.join(problem.split())}")
    atomic_write_text(path, "".join(f"{ln}\n" for ln in lines))
    return path


def main(argv):
    del argv
    splits = modelnet.SPLITS if FLAGS.split == "both" else (FLAGS.split,)
    resolution = int(FLAGS.resolution)
    start = time.time()
    try:
        planned = []
        for split in splits:
            records = modelnet.index_modelnet(FLAGS.modelnet_dir, split, FLAGS.categories)
            cache = os.path.join(FLAGS.output_dir, voxel_cache.cache_filename(split, resolution))
            check_can_write(cache, FLAGS.overwrite)
            planned.append((split, records, cache))
        class_names = modelnet.modelnet_classes(FLAGS.modelnet_dir)
        done, failures = [], {}
        for split, records, cache in planned:
            packed = voxel_cache.voxelize_split(
                records,
                resolution,
                cache,
                overwrite=True,  # checked above, before any work
                progress=FLAGS.progress,
                skip_failures=True,
                class_names=class_names,
                workers=FLAGS.workers,
            )
            _, meta = voxel_cache.load_voxel_cache(cache)
            failures[split] = list(meta.failures)
            done.append(f"{split} {len(packed)}")
    except EnhancerGanError as e:
        print(f"prepare_modelnet: {e}", file=sys.stderr)
        return 1
    failures_path = write_failures(FLAGS.output_dir, failures)
    failed = [os.path.basename(f[2]) for split in failures for f in failures[split]]
    named = ", ".join(failed[:10]) + (f" and {len(failed) - 10} more" if len(failed) > 10 else "")
    where = f" ({named}; see {failures_path})" if failed else ""
    print(
        f"prepare_modelnet: {', '.join(done)} models at {resolution}^3 in {FLAGS.output_dir}; "
        f"{len(failed)} failures{where}; {time.time() - start:.1f} s"
    )
    return 0


if __name__ == "__main__":
    app.run(main, flags_parser=flags_parser(FLAGS))
