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

from experiments import table_script  # noqa: E402
from experiments._cli import flags_parser  # noqa: E402

table_script.define_flags(
    __name__, "table3", "Comma-separated row:run_dir pairs, rows none, layer1, layer2, layer3."
)
FLAGS = flags.FLAGS


def main(argv):
    return table_script.main(argv, "table3")


if __name__ == "__main__":
    app.run(main, flags_parser=flags_parser(FLAGS))
