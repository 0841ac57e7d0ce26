"""Generation quality of a run: COV, MMD, 1-NNA and speckle against real shapes and a ceiling.

  python tools/evaluate_generation.py --run_dir=runs/gen_chair --reference=synthetic \
      --output=results/gen_chair.json
  python tools/evaluate_generation.py --run_dir=runs/demo --reference=archive \
      --data_dir=../shared/data/modelnet10_vox32.npz --categories=chair --output=gen.json

Samples --num_samples shapes (z from --seed) from the run's latest (or
--checkpoint) generator and compares them with the held-out --split of the
reference data, filtered by default to the categories the run trained on,
beside the ceiling: as many real grids of the other split scored the same way.
Prints the numbers and writes them as JSON; refuses to replace --output
without --overwrite.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

from enhancer_gan.errors import ConfigError, EnhancerGanError  # noqa: E402
from experiments._cli import flags_parser  # noqa: E402

flags.DEFINE_string("run_dir", None, "Training run folder (config.json, checkpoints/).")
flags.DEFINE_string("checkpoint", "", "Checkpoint name or path (default: latest).")
flags.DEFINE_bool("random_init", False, "Score the untrained generator (a floor).")
flags.DEFINE_enum(
    "reference",
    "synthetic",
    ["synthetic", "archive", "modelnet"],
    "Real shapes: the built-in data set's held-out split (read like its training grids), "
    "an .npz archive, or a ModelNet root.",
)
flags.DEFINE_string("data_dir", "", "Archive file or ModelNet root (synthetic: optional).")
flags.DEFINE_enum("split", "test", ["train", "test"], "Reference split (held out: test).")
flags.DEFINE_list(
    "categories",
    None,
    "Reference classes (default: the run's training categories; 'all' = every class).",
)
flags.DEFINE_string(
    "cache_dir", "", "Voxel cache for ModelNet meshes (default: <data_dir>/.cache)."
)
flags.DEFINE_integer("num_samples", 64, "Shapes to generate.")
flags.DEFINE_integer("max_reference", 0, "At most this many reference shapes (0 = all).")
flags.DEFINE_integer("seed", 0, "Seeds z and the reference subset.")
flags.DEFINE_integer("batch_size", 16, "Samples per generator call.")
flags.DEFINE_enum(
    "sampling",
    "",
    ["", "recalibrated", "moving", "batch"],
    "Batch-norm statistics of the generator ('' = the default, recalibrated; "
    "docs/DESIGN.md#sampling).",
)
flags.DEFINE_bool(
    "ceiling",
    True,
    "Also score --num_samples real grids of the other split against the reference "
    "(what a generator reproducing the data reaches).",
)
flags.DEFINE_string("output", None, "JSON file for the report.")
flags.DEFINE_bool("overwrite", False, "Replace an existing --output.")
FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        print(f"error: unexpected arguments {' '.join(argv[1:])}", file=sys.stderr)
        return 2
    try:
        from enhancer_gan.io_utils import atomic_write_json, check_can_write

        if not FLAGS.run_dir or not FLAGS.output:
            raise ConfigError("--run_dir and --output are required")
        check_can_write(FLAGS.output, FLAGS.overwrite)  # before any work
        from enhancer_gan.config import ExperimentConfig
        from enhancer_gan.evaluation.generation_eval import (
            evaluate_run_generation,
            format_report,
            reference_grids_for,
        )

        config_path = os.path.join(FLAGS.run_dir, "config.json")
        if not os.path.exists(config_path):
            raise ConfigError(f"--run_dir {FLAGS.run_dir}: not a run folder (no config.json)")
        config = ExperimentConfig.load(config_path)
        categories = FLAGS.categories
        if categories == ["all"]:
            categories = ()
        reference = reference_grids_for(
            FLAGS.reference,
            FLAGS.data_dir,
            FLAGS.split,
            config.model.resolution,
            config,
            categories=categories,
            max_count=FLAGS.max_reference,
            seed=FLAGS.seed,
            cache_dir=FLAGS.cache_dir,
        )
        ceiling = None
        if FLAGS.ceiling:
            ceiling = reference_grids_for(
                FLAGS.reference,
                FLAGS.data_dir,
                "train" if FLAGS.split == "test" else "test",
                config.model.resolution,
                config,
                categories=categories,
                max_count=FLAGS.num_samples,
                seed=FLAGS.seed,
                cache_dir=FLAGS.cache_dir,
            )
        report = evaluate_run_generation(
            FLAGS.run_dir,
            reference,
            num_samples=FLAGS.num_samples,
            seed=FLAGS.seed,
            checkpoint=FLAGS.checkpoint,
            batch_size=FLAGS.batch_size,
            random_init=FLAGS.random_init,
            ceiling_grids=ceiling,
            sampling=FLAGS.sampling,
        )
        report["reference"] = {
            "dataset": FLAGS.reference,
            "data_dir": FLAGS.data_dir,
            "split": FLAGS.split,
            "categories": list(config.data.categories if categories is None else categories),
            "max_reference": FLAGS.max_reference,
        }
        check_can_write(FLAGS.output, FLAGS.overwrite)  # it may have appeared meanwhile
        atomic_write_json(FLAGS.output, report)
    except (EnhancerGanError, OSError) as e:  # OSError: unreadable or unwritable paths
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(format_report(report))
    print(f"Wrote {FLAGS.output}")
    return 0


if __name__ == "__main__":
    app.run(main, flags_parser=flags_parser(FLAGS))
