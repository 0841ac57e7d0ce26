"""Table 3: classification accuracy by the enhancer-generator layer that feeds GM.

  python experiments/table3.py --runs=none:runs/features_7cat_no_enhancer,\
layer1:runs/features_7cat,layer2:runs/features_7cat_layer2,layer3:runs/features_7cat_layer3 \
      --dataset=modelnet --data_dir=/data/ModelNet10 --results_dir=results/mn10

Rows are named none, layer1, layer2, layer3 (any subset); each label must
match its run's config (use_enhancer, enhancer_layer). Features are shared
with Table 1 when --results_dir is the same. Writes <results_dir>/table3.md
(our accuracy beside the paper's) and table3.json; refuses to replace them
without --overwrite.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

from enhancer_gan.cli import flags_parser  # noqa: E402
from enhancer_gan.errors import ConfigError, EnhancerGanError  # noqa: E402

flags.DEFINE_string(
    "runs", None, "Comma-separated row:run_dir pairs, rows none, layer1, layer2, layer3."
)
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
        specs = tables.parse_runs(FLAGS.runs, allowed_labels=tables.TABLE3_LABELS)
        if FLAGS.random_baseline:
            specs = tables.with_random_baseline(specs)
        data = tables.EvalData(FLAGS.dataset, FLAGS.data_dir, FLAGS.max_per_split, FLAGS.seed)
        payload = tables.evaluate_table3(
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
    print(f"Wrote {os.path.join(FLAGS.results_dir, 'table3.md')} and table3.json")
    return 0


if __name__ == "__main__":
    app.run(main, flags_parser=flags_parser(FLAGS))
