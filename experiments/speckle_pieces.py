"""What the speckle of a run's samples is made of: the pieces beside each sample's largest.

  python experiments/speckle_pieces.py --run_dirs=runs/screen_generation/demo_resize \
      --output=docs/results_generation/screen/demo_resize_pieces.json

For each run: `--num_samples` raw samples (z from `--seed`, the report's default
sampling and weights, as tools/generate.py draws them), their pieces per
sample and share in more than 3 pieces at thresholds 0.3-0.7, and the extra
pieces (every 26-connected component but a sample's largest,
`evaluation.shape_stats.pieces_report`) by size, by their most confident voxel
and by their gap to the largest piece. A fringe of undecided specks shows
as single voxels with p < 0.7 next to the body; detached parts as large,
confident pieces far from it (docs/RESULTS.md#generation).
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

from enhancer_gan.errors import EnhancerGanError  # noqa: E402
from experiments._cli import flags_parser  # noqa: E402

flags.DEFINE_list("run_dirs", None, "Training run folders.")
flags.DEFINE_integer("num_samples", 64, "Samples per run.")
flags.DEFINE_integer("seed", 0, "Seed of z.")
flags.DEFINE_string("output", "", "JSON file of the summaries ('' = print only).")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    from enhancer_gan.evaluation.shape_stats import format_pieces_report, pieces_report
    from enhancer_gan.generation import generate_in_batches, generator_from_run, sample_noise
    from enhancer_gan.io_utils import atomic_write_json

    try:
        if not FLAGS.run_dirs:
            raise EnhancerGanError("--run_dirs is required")
        out = {}
        for run_dir in FLAGS.run_dirs:
            generate, latent_dim = generator_from_run(run_dir)
            samples = generate_in_batches(
                generate, sample_noise(FLAGS.num_samples, latent_dim, FLAGS.seed)
            )
            out[run_dir] = pieces_report(samples)
            print(format_pieces_report(run_dir, out[run_dir]))
        if FLAGS.output:
            atomic_write_json(FLAGS.output, out)
            print(f"Wrote {FLAGS.output}")
    except EnhancerGanError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    app.run(main, flags_parser=flags_parser(FLAGS))
