"""Table 1: shape classification with a linear SVM on DM features.

  python experiments/table1.py \
      --runs=with_enhancer:runs/features_7cat,without_enhancer:runs/features_7cat_no_enhancer \
      --random_baseline --dataset=modelnet --data_dir=/data/ModelNet10 --results_dir=results/mn10
  python experiments/table1.py --runs=demo:runs/demo --random_baseline --dataset=archive \
      --data_dir=../shared/data/modelnet10_vox32.npz --max_per_split=400 --results_dir=results/demo

For each run: train/test features into <results_dir>/features/<label>/
(reused when they came from the same run, checkpoint and data), a linear SVM
(C by cross-validation on train), then <results_dir>/table1.md (our accuracy
beside the paper's), table1.json, confusion_<label>.png, per_class_<label>.png.
Refuses to replace existing results without --overwrite.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

from enhancer_gan.cli import flags_parser  # noqa: E402
from enhancer_gan.errors import ConfigError, EnhancerGanError  # noqa: E402

flags.DEFINE_string("runs", None, "Comma-separated label:run_dir pairs, one table row each.")
flags.DEFINE_bool("random_baseline", False, "Add a randomly initialised DM (the floor) row.")
flags.DEFINE_enum(
    "dataset",
    "archive",
    ["archive", "modelnet", "synthetic"],
    "archive: .npz voxel archive; modelnet: <root>/<class>/{train,test}/*.off; "
    "synthetic: the built-in data set's ModelNet-style split.",
)
flags.DEFINE_string("data_dir", "", "Archive file or ModelNet root (synthetic: optional).")
flags.DEFINE_string("results_dir", None, "Where the table, figures and features go.")
flags.DEFINE_integer("batch_size", 32, "Grids per DM forward pass.")
flags.DEFINE_list("c_values", [], "SVM C candidates (default: the library's grid).")
flags.DEFINE_integer("cv_folds", 3, "Folds of the cross-validation that picks C.")
flags.DEFINE_integer("max_per_split", 0, "Keep at most this many shapes per split (0 = all).")
flags.DEFINE_integer("seed", 0, "Seeds the subsample and the CV folds.")
flags.DEFINE_bool("overwrite", False, "Replace existing results (and stale features).")
flags.DEFINE_bool("progress", True, "Show progress bars.")
FLAGS = flags.FLAGS


def _c_values(values: list[str]) -> tuple[float, ...] | None:
    try:
        return tuple(float(v) for v in values) or None
    except ValueError:
        raise ConfigError(f"--c_values must be numbers, got {','.join(values)}") from None


def main(argv):
    if len(argv) > 1:
        print(f"error: unexpected arguments {' '.join(argv[1:])}", file=sys.stderr)
        return 2
    try:
        from enhancer_gan.evaluation import tables

        if not FLAGS.runs or not FLAGS.results_dir:
            raise ConfigError("--runs and --results_dir are required")
        specs = tables.parse_runs(FLAGS.runs)
        if FLAGS.random_baseline:
            specs = tables.with_random_baseline(specs)
        data = tables.EvalData(FLAGS.dataset, FLAGS.data_dir, FLAGS.max_per_split, FLAGS.seed)
        payload = tables.evaluate_table1(
            specs,
            data,
            FLAGS.results_dir,
            c_values=_c_values(FLAGS.c_values),
            cv_folds=FLAGS.cv_folds,
            batch_size=FLAGS.batch_size,
            overwrite=FLAGS.overwrite,
            progress=FLAGS.progress,
        )
    except (EnhancerGanError, OSError) as e:  # OSError: unreadable or unwritable paths
        print(f"error: {e}", file=sys.stderr)
        return 2
    for label in payload["order"]:
        run = payload["runs"][label]
        print(
            f"{label}: accuracy {run['accuracy_pct']:.2f}%, "
            f"mean class accuracy {run['mean_class_accuracy_pct']:.2f}%"
        )
    print(f"Wrote {os.path.join(FLAGS.results_dir, 'table1.md')} and table1.json")
    return 0


if __name__ == "__main__":
    app.run(main, flags_parser=flags_parser(FLAGS))
