"""Extracts 57,344-d DM shape features of a ModelNet-style data set.

  python tools/extract_features.py --run_dir=runs/features_7cat \
      --dataset=modelnet --data_dir=/data/ModelNet10 --output_dir=features/mn10
  python tools/extract_features.py --run_dir=runs/demo --dataset=archive \
      --data_dir=../shared/data/modelnet10_vox32.npz --output_dir=features/demo
  python tools/extract_features.py --run_dir=runs/demo --random_init ...   # the floor

Writes <output_dir>/{train,test}.npz (features, labels, class names, model
ids, and the checkpoint/config they came from). Refuses to overwrite.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

from enhancer_gan.errors import EnhancerGanError  # noqa: E402
from experiments._cli import flags_parser  # noqa: E402

flags.DEFINE_string("run_dir", None, "Training run folder (config.json, checkpoints/).")
flags.DEFINE_string(
    "checkpoint",
    "",
    "Checkpoint name or path (default: the latest). A damaged one is refused, naming the "
    "checkpoints that read whole.",
)
flags.DEFINE_bool("random_init", False, "Use DM's random initialisation (the feature floor).")
flags.DEFINE_enum(
    "dataset",
    "archive",
    ["archive", "modelnet", "synthetic"],
    "archive: .npz voxel archive; modelnet: <root>/<class>/{train,test}/*.off; "
    "synthetic: the built-in data set's ModelNet-style split.",
)
flags.DEFINE_string("data_dir", "", "Archive file or ModelNet root (synthetic: optional).")
flags.DEFINE_list("splits", ["train", "test"], "Splits to extract.")
flags.DEFINE_string("output_dir", None, "Where {split}.npz go.")
flags.DEFINE_string("cache_dir", "", "Voxel cache for .off meshes (default <output_dir>/cache).")
flags.DEFINE_integer("batch_size", 32, "Grids per forward pass.")
flags.DEFINE_bool("float16", False, "Store features as float16 (half the disk).")
flags.DEFINE_bool("overwrite", False, "Replace existing outputs.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    try:
        from enhancer_gan.evaluation.extract import extract_dataset_features

        if not FLAGS.run_dir or not FLAGS.output_dir:
            raise EnhancerGanError("--run_dir and --output_dir are required")
        written = extract_dataset_features(
            run_dir=FLAGS.run_dir,
            checkpoint=FLAGS.checkpoint,
            random_init=FLAGS.random_init,
            dataset=FLAGS.dataset,
            data_dir=FLAGS.data_dir,
            splits=tuple(FLAGS.splits),
            output_dir=FLAGS.output_dir,
            cache_dir=FLAGS.cache_dir,
            batch_size=FLAGS.batch_size,
            float16=FLAGS.float16,
            overwrite=FLAGS.overwrite,
        )
    except (EnhancerGanError, FileExistsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for path, shape in written:
        print(f"Wrote {path}: {shape[0]} shapes x {shape[1]} features")
    return 0


if __name__ == "__main__":
    app.run(main, flags_parser=flags_parser(FLAGS))
