"""Table 2 and Figure 4: shape retrieval by DM features.

  python experiments/table2.py \
      --runs=with_enhancer:runs/features_7cat,without_enhancer:runs/features_7cat_no_enhancer \
      --random_baseline --dataset=modelnet --data_dir=/data/ModelNet10 --results_dir=results/mn10

Every test shape queries the other test shapes, ranked by Euclidean distance
of the features; relevant = same class. Test features go to
<results_dir>/features/<label>/test.npz (shared with Table 1 when
--results_dir is the same). Writes <results_dir>/table2.md (our mAP beside
the paper's), table2.json and figure4_pr.png (precision-recall curves of all
runs); refuses to replace them without --overwrite.
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
flags.DEFINE_string("results_dir", None, "Where the table, figure and features go.")
flags.DEFINE_integer("batch_size", 32, "Grids per DM forward pass.")
flags.DEFINE_integer("max_per_split", 0, "Keep at most this many shapes per split (0 = all).")
flags.DEFINE_integer("seed", 0, "Seeds the subsample.")
flags.DEFINE_bool("overwrite", False, "Replace existing results (and stale features).")
flags.DEFINE_bool("progress", True, "Show progress bars.")
FLAGS = flags.FLAGS


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
        payload = tables.evaluate_table2(
            specs,
            data,
            FLAGS.results_dir,
            batch_size=FLAGS.batch_size,
            overwrite=FLAGS.overwrite,
            progress=FLAGS.progress,
        )
    except (EnhancerGanError, OSError) as e:  # OSError: unreadable or unwritable paths
        print(f"error: {e}", file=sys.stderr)
        return 2
    for label in payload["order"]:
        print(f"{label}: retrieval mAP {payload['runs'][label]['map_pct']:.2f}%")
    print(f"Wrote {os.path.join(FLAGS.results_dir, 'table2.md')}, table2.json and {tables.FIGURE4}")
    return 0


if __name__ == "__main__":
    app.run(main, flags_parser=flags_parser(FLAGS))
