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

from experiments import table_script  # noqa: E402
from experiments._cli import flags_parser  # noqa: E402

table_script.define_flags(
    __name__, "table2", "Comma-separated label:run_dir pairs, one table row each."
)
FLAGS = flags.FLAGS


def main(argv):
    return table_script.main(argv, "table2")


if __name__ == "__main__":
    app.run(main, flags_parser=flags_parser(FLAGS))
