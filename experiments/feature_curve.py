"""Feature quality against the training step, beside the random-weight floor.

  python experiments/feature_curve.py --run_dirs=runs/recipes/paper_s0 \
      --data_dir=../shared/data/modelnet10_vox32.npz --output_dir=results/curves

For each run: DM features of the TRAIN split at every checkpoint and at the
run's random initialisation (the floor, same seed), scored on a stratified
validation part carved from the train split (linear-SVM accuracy with C by
3-fold CV on the rest; retrieval mAP raw, standardised and block-L2), with
DM's accuracy and D(real)/D(fake) from the run's TensorBoard events, and
(--num_samples > 0) each checkpoint's samples against the validation grids
(COV, MMD, 1-NNA, pieces per sample) beside the ceiling of as many real grids
of the fitting part scored the same way. Writes, per run,
<output_dir>/<run name>.json and .png, and <output_dir>/summary.md (the last
checkpoint of every run against its floor) and, for several runs,
<output_dir>/together.png (every run's curves as differences to its floor). Re-running scores only the
checkpoints not yet in the JSON. The test split is never read.
"""

from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

from enhancer_gan.errors import ConfigError, EnhancerGanError  # noqa: E402
from experiments._cli import flags_parser  # noqa: E402

flags.DEFINE_list("run_dirs", [], "Training run folders.")
flags.DEFINE_enum("dataset", "archive", ["archive", "modelnet"], "Labelled data set kind.")
flags.DEFINE_string("data_dir", None, "The data set (an .npz archive or a ModelNet root).")
flags.DEFINE_string("output_dir", None, "Where the JSON, PNG and summary.md go.")
flags.DEFINE_string("cache_dir", "", "Voxel cache of the data set (default output_dir/cache).")
flags.DEFINE_float("val_fraction", 0.2, "Share of the train split held out for validation.")
flags.DEFINE_integer("split_seed", 0, "Seed of the validation split (the same for every run).")
flags.DEFINE_list("c_values", [], "SVM C candidates (default: the classifier's grid).")
flags.DEFINE_bool("last_only", False, "Score only the floor and the latest checkpoint.")
flags.DEFINE_integer("num_samples", 128, "Samples scored per checkpoint (0 = no sample measures).")
flags.DEFINE_integer(
    "max_reference", 256, "Validation grids the samples are compared with (at most)."
)
FLAGS = flags.FLAGS


def summary_markdown(curves: list[dict]) -> str:
    """One row per run: last checkpoint against the floor of the same seed."""
    lines = [
        "| run | step | SVM val (%) | floor | Δ | mAP raw | floor | Δ | mAP std | floor | Δ "
        "| mAP block-L2 | floor | Δ | COV | ceiling | pieces |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in curves:
        if not c["checkpoints"]:
            continue
        last, floor = c["checkpoints"][-1], c["floor"]
        cells = [os.path.basename(os.path.normpath(c["run_dir"])), str(last["step"])]
        for key in ("svm_val_accuracy", "map_raw", "map_standardized", "map_block_l2"):
            if key not in last or key not in floor:
                cells += ["–"] * 3
                continue
            cells += [
                f"{last[key]:.2f}",
                f"{floor[key]:.2f}",
                f"{last[key] - floor[key]:+.2f}",
            ]
        samples, ceiling = last.get("samples"), c.get("sample_ceiling")
        if samples and ceiling:
            cells += [f"{samples['cov']:.3f}", f"{ceiling['cov']:.3f}"]
            cells.append(f"{samples['generated_components']:.1f}")
        else:
            cells += ["–"] * 3
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _sample_reference(grids, split):
    """Validation grids (at most --max_reference) and --num_samples fitting grids, seeded."""
    import numpy as np

    from enhancer_gan.evaluation import feature_curve as fc

    rng = np.random.default_rng(FLAGS.split_seed)
    val = split.val
    if len(val) > FLAGS.max_reference:
        val = np.sort(rng.choice(val, FLAGS.max_reference, replace=False))
    fit = np.sort(rng.choice(split.fit, min(FLAGS.num_samples, len(split.fit)), replace=False))
    return fc.SampleReference(grids[val], grids[fit], FLAGS.num_samples, FLAGS.split_seed)


def main(argv):
    if len(argv) > 1:
        print(f"error: unexpected arguments {argv[1:]}", file=sys.stderr)
        return 2
    try:
        if not FLAGS.run_dirs or not FLAGS.data_dir or not FLAGS.output_dir:
            raise ConfigError("--run_dirs, --data_dir and --output_dir are required")
        for run_dir in FLAGS.run_dirs:
            if not os.path.isfile(os.path.join(run_dir, "config.json")):
                raise ConfigError(f"{run_dir}: not a run folder (no config.json)")
        c_values = [float(c) for c in FLAGS.c_values] or None

        from enhancer_gan.config import DataConfig, ExperimentConfig
        from enhancer_gan.data.datasets import load_shapes
        from enhancer_gan.data.pipeline import unpack_grids
        from enhancer_gan.evaluation import feature_curve as fc
        from enhancer_gan.io_utils import atomic_write_json, atomic_write_text

        resolution = ExperimentConfig.load(
            os.path.join(FLAGS.run_dirs[0], "config.json")
        ).model.resolution
        shapes = load_shapes(
            DataConfig(kind=FLAGS.dataset, data_dir=FLAGS.data_dir, split="train"),
            resolution,
            cache_dir=FLAGS.cache_dir or os.path.join(FLAGS.output_dir, "cache"),
            progress=False,
        )
        grids = unpack_grids(shapes.packed, resolution)
        labels = shapes.labels
        split = fc.carve_validation(labels, FLAGS.val_fraction, FLAGS.split_seed)
        samples = _sample_reference(grids, split) if FLAGS.num_samples > 0 else None
        curves = []
        for run_dir in FLAGS.run_dirs:
            name = os.path.basename(os.path.normpath(run_dir))
            path = os.path.join(FLAGS.output_dir, f"{name}.json")
            previous = None
            if os.path.exists(path):
                with open(path) as f:
                    previous = json.load(f)
                if previous.get("validation", {}).get("num_val") != len(split.val):
                    previous = None
            curve = fc.feature_curve(
                run_dir,
                grids,
                labels,
                split,
                previous,
                c_values,
                last_only=FLAGS.last_only,
                samples=samples,
            )
            atomic_write_json(path, curve)
            fc.plot_feature_curve(curve, os.path.join(FLAGS.output_dir, f"{name}.png"), name)
            curves.append(curve)
        if len(curves) > 1:
            fc.plot_curves_together(curves, os.path.join(FLAGS.output_dir, "together.png"))
        summary = os.path.join(FLAGS.output_dir, "summary.md")
        atomic_write_text(summary, summary_markdown(curves))
        print(summary_markdown(curves), end="")
        print(f"Curves: {FLAGS.output_dir}/<run>.json, .png; summary: {summary}")
    except EnhancerGanError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    app.run(main, flags_parser=flags_parser(FLAGS))
