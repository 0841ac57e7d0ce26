"""Why do some features retrieve worse than others? Retrieval under three scalings.

  python experiments/feature_diagnostics.py --results_dirs=results/mn10_small/seed0 \
      --output=results/mn10_small/diagnostics.md

For each row of the table scripts' saved features (`<results_dir>/features/
<label>/{train,test}.npz`), retrieval mAP on the test split with the paper's
raw Euclidean distance, after per-feature standardisation (mean and std of
the TRAIN split, as the classifier uses), and after L2-normalising each
feature vector; plus how concentrated the raw features' variance is (the
share of the total variance held by the top 1% of dimensions). Raw Euclidean
retrieval is dominated by the highest-variance dimensions; if standardising
lifts a model's mAP, its features hold the information but the distance does
not see it. Writes a markdown table (and refuses to replace it without
--overwrite).
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

from enhancer_gan.errors import ConfigError, EnhancerGanError  # noqa: E402
from experiments._cli import flags_parser  # noqa: E402

flags.DEFINE_list("results_dirs", [], "Results folders of table1.py/table2.py (with features/).")
flags.DEFINE_string("output", None, "Markdown file to write.")
flags.DEFINE_bool("overwrite", False, "Replace an existing output.")
FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        print(f"error: unexpected arguments {' '.join(argv[1:])}", file=sys.stderr)
        return 2
    try:
        from enhancer_gan.evaluation.diagnostics import retrieval_scalings
        from enhancer_gan.evaluation.features import load_features
        from enhancer_gan.evaluation.report import markdown_table
        from enhancer_gan.io_utils import atomic_write_text, check_can_write

        if not FLAGS.results_dirs or not FLAGS.output:
            raise ConfigError("--results_dirs and --output are required")
        check_can_write(FLAGS.output, FLAGS.overwrite)
        rows = []
        for folder in FLAGS.results_dirs:
            root = os.path.join(folder, "features")
            if not os.path.isdir(root):
                raise ConfigError(f"{folder}: no features/ folder (run table1.py first)")
            for label in sorted(os.listdir(root)):
                paths = [os.path.join(root, label, f"{s}.npz") for s in ("train", "test")]
                if not all(os.path.isfile(p) for p in paths):
                    continue
                d = retrieval_scalings(*(load_features(p) for p in paths))
                print(f"{folder} {label}: raw {d['raw']:.2f}, standardized {d['standardized']:.2f}")
                rows.append(
                    [
                        folder,
                        label,
                        f"{d['dims']:,}",
                        f"{d['raw']:.2f}",
                        f"{d['standardized']:.2f}",
                        f"{d['l2']:.2f}",
                        f"{d['top1pct_variance']:.2f}",
                    ]
                )
        if not rows:
            raise ConfigError("no features found under the given folders")
        header = [
            "results",
            "run",
            "dims",
            "mAP raw (%)",
            "mAP standardised (%)",
            "mAP L2-normalised (%)",
            "variance in top 1% of dims",
        ]
        text = "# Retrieval under three feature scalings\n\n" + markdown_table(header, rows)
        os.makedirs(os.path.dirname(os.path.abspath(FLAGS.output)), exist_ok=True)
        atomic_write_text(FLAGS.output, text)
    except (EnhancerGanError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"Wrote {FLAGS.output}")
    return 0


if __name__ == "__main__":
    app.run(main, flags_parser=flags_parser(FLAGS))
