"""What the speckle of a run's samples is made of: the pieces beside each sample's largest.

  python experiments/speckle_pieces.py --run_dirs=runs/screen_generation/demo_resize \
      --output=docs/results_generation/screen/demo_resize_pieces.json

For each run: `--num_samples` raw samples (z from `--seed`, the report's default
sampling and weights, as tools/generate.py draws them), their pieces per
sample and share in more than 3 pieces at thresholds 0.3-0.7, and the extra
pieces (every 26-connected component but a sample's largest,
`evaluation.shape_stats.extra_pieces`) by size, by their most confident voxel
and by their gap to the largest piece. A fringe of undecided specks shows
as single voxels with p < 0.7 next to the body; detached parts as large,
confident pieces far from it (docs/RESULTS.md#generation).
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from enhancer_gan.errors import EnhancerGanError  # noqa: E402
from experiments._cli import flags_parser  # noqa: E402

flags.DEFINE_list("run_dirs", None, "Training run folders.")
flags.DEFINE_integer("num_samples", 64, "Samples per run.")
flags.DEFINE_integer("seed", 0, "Seed of z.")
flags.DEFINE_string("output", "", "JSON file of the summaries ('' = print only).")
FLAGS = flags.FLAGS

THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7)


def summarize_pieces(samples: np.ndarray) -> dict:
    """Occupancy samples [N, R, R, R] -> the summary this script prints."""
    from enhancer_gan.evaluation import shape_stats

    sweep = {}
    for t in THRESHOLDS:
        s = shape_stats.summarize(samples, threshold=t)
        sweep[str(t)] = {k: s[k] for k in ("components", "many_pieces_fraction", "occupancy")}
    extra = shape_stats.extra_pieces(samples)
    size, max_p, gap = extra["size"], extra["max_p"], extra["gap"]
    share = lambda mask: float(np.mean(mask)) if len(size) else 0.0  # noqa: E731
    return {
        "num_samples": int(len(samples)),
        "thresholds": sweep,
        "extra_pieces": int(len(size)),
        "size_median": float(np.median(size)) if len(size) else 0.0,
        "size_1": share(size == 1),
        "size_le_3": share(size <= 3),
        "size_gt_10": share(size > 10),
        "max_p_lt_0.7": share(max_p < 0.7),
        "max_p_gt_0.9": share(max_p > 0.9),
        "gap_le_2": share(gap <= 2),
        "gap_gt_5": share(gap > 5),
    }


def format_summary(name: str, s: dict) -> str:
    lines = [f"{name}: {s['num_samples']} samples"]
    for t, v in s["thresholds"].items():
        lines.append(
            f"  threshold {t}: {v['components']:.2f} pieces per sample, "
            f"{v['many_pieces_fraction']:.2f} in > 3, occupancy {v['occupancy']:.4f}"
        )
    lines.append(
        f"  {s['extra_pieces']} extra pieces: median size {s['size_median']:g}; "
        f"1 voxel {s['size_1']:.2f}, <= 3 {s['size_le_3']:.2f}, > 10 {s['size_gt_10']:.2f}; "
        f"max p < 0.7 {s['max_p_lt_0.7']:.2f}, > 0.9 {s['max_p_gt_0.9']:.2f}; "
        f"gap to the largest <= 2 {s['gap_le_2']:.2f}, > 5 {s['gap_gt_5']:.2f}"
    )
    return "\n".join(lines)


def main(argv):
    del argv
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
            out[run_dir] = summarize_pieces(samples)
            print(format_summary(run_dir, out[run_dir]))
        if FLAGS.output:
            atomic_write_json(FLAGS.output, out)
            print(f"Wrote {FLAGS.output}")
    except EnhancerGanError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    app.run(main, flags_parser=flags_parser(FLAGS))
