"""Samples 3D shapes from a trained generator: .binvox, meshes and a PNG sheet.

python tools/generate.py --run_dir=runs/demo --num_samples=16 --output_dir=out/demo
python tools/generate.py --export_dir=runs/demo/export --interpolate --num_samples=8 ...
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from enhancer_gan.errors import EnhancerGanError  # noqa: E402
from experiments._cli import flags_parser  # noqa: E402

flags.DEFINE_string("run_dir", None, "Training run folder to sample from.")
flags.DEFINE_string(
    "checkpoint",
    "",
    "Checkpoint name or path (default: the latest). A damaged one is refused, naming the "
    "checkpoints that read whole.",
)
flags.DEFINE_string("export_dir", None, "Exported SavedModel to sample from instead.")
flags.DEFINE_string("output_dir", None, "Where the shapes go.")
flags.DEFINE_integer("num_samples", 16, "Shapes to generate.")
flags.DEFINE_integer("seed", 0, "Seed of z.")
flags.DEFINE_bool("interpolate", False, "Walk a straight line between two random z.")
flags.DEFINE_float("threshold", 0.5, "Occupancy threshold.")
flags.DEFINE_enum("mesh_format", "obj", ["obj", "ply"], "Mesh file format.")
flags.DEFINE_enum(
    "sampling",
    "recalibrated",
    ["recalibrated", "moving", "batch"],
    "Generator batch norm: statistics re-estimated on fresh z (default; what the "
    "discriminator saw in training), the moving averages kept in training, or each "
    "batch's own statistics. Runs that keep a weight average sample it.",
)
flags.DEFINE_bool(
    "largest_component",
    False,
    "POST-PROCESSING for display (as 3D-GAN's release shows samples): keep each shape's "
    "largest 26-connected piece. Off by default; measures of the model use raw samples.",
)
flags.DEFINE_bool(
    "export",
    False,
    "Also export the generation path as a SavedModel (batch norm re-estimated first, "
    "the run's weight average if it keeps one).",
)
flags.DEFINE_bool("overwrite", False, "Replace existing outputs.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    from enhancer_gan import generation

    try:
        if bool(FLAGS.run_dir) == bool(FLAGS.export_dir):
            raise EnhancerGanError("give exactly one of --run_dir and --export_dir")
        if not FLAGS.output_dir:
            raise EnhancerGanError("--output_dir is required")
        if FLAGS.num_samples < 1:
            raise EnhancerGanError("--num_samples must be positive")
        if not 0 < FLAGS.threshold < 1:
            raise EnhancerGanError("--threshold must be in (0, 1)")
        if FLAGS.run_dir:
            generate, latent_dim = generation.generator_from_run(
                FLAGS.run_dir, FLAGS.checkpoint, mode=FLAGS.sampling
            )
        else:
            generate, latent_dim = generation.generator_from_export(FLAGS.export_dir)
        make = generation.interpolate_noise if FLAGS.interpolate else generation.sample_noise
        z = make(FLAGS.num_samples, latent_dim, FLAGS.seed)
        occupancy = generation.generate_in_batches(generate, z, batch_size=64)
        if FLAGS.largest_component:
            from enhancer_gan.evaluation.shape_stats import keep_largest_component

            kept = keep_largest_component(occupancy, FLAGS.threshold)
            occupancy = np.where(kept, occupancy, 0.0).astype(np.float32)
        written = generation.write_shapes(
            occupancy,
            FLAGS.output_dir,
            threshold=FLAGS.threshold,
            mesh_format=FLAGS.mesh_format,
            overwrite=FLAGS.overwrite,
            prefix="interp" if FLAGS.interpolate else "sample",
        )
        if FLAGS.export and FLAGS.run_dir:
            from enhancer_gan.training.export import export_generator
            from enhancer_gan.training.runs import load_run

            path = os.path.join(FLAGS.output_dir, "export")
            networks = load_run(FLAGS.run_dir, FLAGS.checkpoint).networks
            generation.recalibrate_batch_norm(networks)
            export_generator(networks, path, overwrite=FLAGS.overwrite)
            print(f"Exported the generation path to {path}")
    except (EnhancerGanError, FileExistsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    occ = (occupancy > FLAGS.threshold).mean(axis=(1, 2, 3))
    post = "; largest piece of each kept (post-processing)" if FLAGS.largest_component else ""
    print(
        f"Wrote {len(written['binvox'])} shapes to {FLAGS.output_dir} "
        f"(occupancy {occ.mean():.3f} mean, {occ.min():.3f}-{occ.max():.3f}{post}); "
        f"sheet: {written['sheet'][0]}"
    )
    return 0


if __name__ == "__main__":
    app.run(main, flags_parser=flags_parser(FLAGS))
