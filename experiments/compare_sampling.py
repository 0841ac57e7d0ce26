"""Scores one run's samples under each sampling mode, beside the real-vs-real ceiling.

  python experiments/compare_sampling.py --run_dirs=runs/demo --output=sampling.json

For each run and each mode of `enhancer_gan.generation.SAMPLING_MODES`, the
generation report of the built-in (or archive / ModelNet) held-out split made
like the training grids; the ceiling scores as many training grids against
the same reference. docs/RESULTS.md#sampling reads its output.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

from enhancer_gan.errors import EnhancerGanError  # noqa: E402
from experiments._cli import flags_parser  # noqa: E402

flags.DEFINE_list("run_dirs", None, "Training run folders.")
flags.DEFINE_list("modes", ["recalibrated", "moving", "batch"], "Sampling modes to compare.")
flags.DEFINE_bool(
    "both_weights",
    True,
    "For runs that keep an average of the generators' weights, also score the last iterate.",
)
flags.DEFINE_integer("num_samples", 64, "Samples per mode (and training grids in the ceiling).")
flags.DEFINE_integer("seed", 0, "Seed of z and of the ceiling's grids.")
flags.DEFINE_integer("batch_size", 64, "Samples per generator call ('batch' mode: the batch).")
flags.DEFINE_string(
    "reference_dir",
    "",
    "Another build of the run's data set kind whose test split is the reference "
    "(default: the run's own held-out split).",
)
flags.DEFINE_string("output", "", "JSON file of all reports ('' = print only).")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    from enhancer_gan.config import ExperimentConfig
    from enhancer_gan.evaluation.generation_eval import (
        evaluate_run_generation,
        format_report,
        run_reference,
    )
    from enhancer_gan.io_utils import atomic_write_json

    try:
        if not FLAGS.run_dirs:
            raise EnhancerGanError("--run_dirs is required")
        out = []
        for run_dir in FLAGS.run_dirs:
            reference, ceiling = run_reference(
                run_dir, FLAGS.num_samples, FLAGS.seed, FLAGS.reference_dir
            )
            config = ExperimentConfig.load(os.path.join(run_dir, "config.json"))
            averages = (
                [True, False] if config.train.generator_ema and FLAGS.both_weights else [True]
            )
            for mode, average in [(m, a) for a in averages for m in FLAGS.modes]:
                report = evaluate_run_generation(
                    run_dir,
                    reference,
                    num_samples=FLAGS.num_samples,
                    seed=FLAGS.seed,
                    batch_size=FLAGS.batch_size,
                    ceiling_grids=ceiling,
                    sampling=mode,
                    average=average,
                )
                print(format_report(report))
                out.append(report)
        if FLAGS.output:
            atomic_write_json(FLAGS.output, out)
            print(f"Wrote {FLAGS.output}")
    except EnhancerGanError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    app.run(main, flags_parser=flags_parser(FLAGS))
