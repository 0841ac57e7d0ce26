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

from experiments import table_script  # noqa: E402
from experiments._cli import flags_parser  # noqa: E402

table_script.define_flags(
    __name__, "table1", "Comma-separated label:run_dir pairs, one table row each."
)
FLAGS = flags.FLAGS


def main(argv):
    return table_script.main(argv, "table1")


if __name__ == "__main__":
    app.run(main, flags_parser=flags_parser(FLAGS))
