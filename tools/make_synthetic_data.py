"""Builds the built-in synthetic data set (no download) and a preview sheet.

  python tools/make_synthetic_data.py
  python tools/make_synthetic_data.py --num_per_category=200 --resolution=64 \
      --categories=chair,table --output_dir=data_cache/synthetic64

writes, under --output_dir, procedural models of the paper's ShapeNet
categories in the 3D-R2N2 layouts (`ShapeNetVox32/`, `ShapeNetRendering/`),
a ModelNet-style split of meshes (`ModelNet/<category>/{train,test}/`), the
`done` marker and `preview.png`. A complete build with the same flags is
reused; one with other flags is replaced only with --overwrite. Flags are
parsed here only; the work is `enhancer_gan.data.synthetic`.
"""

from __future__ import annotations

import os
import sys

from absl import app, flags

# Runnable as a plain script from a checkout (python tools/make_synthetic_data.py).
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from enhancer_gan.data import synthetic  # noqa: E402
from enhancer_gan.errors import EnhancerGanError  # noqa: E402
from enhancer_gan.io_utils import OutputExistsError  # noqa: E402
from experiments._cli import flags_parser  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("output_dir", os.path.join("data_cache", "synthetic"), "Data set folder.")
flags.DEFINE_integer("num_per_category", 60, "Models per category.")
flags.DEFINE_integer("resolution", 32, "Voxel grid side (32 like ShapeNetVox32, 64 for the paper).")
flags.DEFINE_integer("seed", 0, "Seeds every shape and camera.")
flags.DEFINE_integer("views_per_model", 4, "Rendered views per model (3D-R2N2 has 24).")
flags.DEFINE_list("categories", [], f"Categories (empty = all): {', '.join(synthetic.CATEGORIES)}.")
flags.DEFINE_float("test_fraction", 0.2, "Share of each category in the ModelNet test split.")
flags.DEFINE_integer("workers", 2, "Worker processes.")
flags.DEFINE_integer("preview_per_category", 6, "Models per category in preview.png.")
flags.DEFINE_bool("overwrite", False, "Rebuild even if a data set is already there.")


def main(argv):
    del argv
    root = FLAGS.output_dir
    try:
        wanted = synthetic.dataset_arguments(
            FLAGS.num_per_category,
            FLAGS.seed,
            FLAGS.resolution,
            FLAGS.categories or None,
            FLAGS.views_per_model,
            FLAGS.test_fraction,
        )
        existing = synthetic.read_marker(root)
        if existing is not None and existing != wanted and not FLAGS.overwrite:
            raise OutputExistsError(
                f"{root}: holds a synthetic data set built with other arguments "
                f"({synthetic.DONE_MARKER}); pass --overwrite to replace it"
            )
        build = (
            synthetic.write_synthetic_dataset
            if FLAGS.overwrite
            else (synthetic.ensure_synthetic_dataset)
        )
        summary = build(
            root,
            FLAGS.num_per_category,
            seed=FLAGS.seed,
            resolution=FLAGS.resolution,
            categories=FLAGS.categories or None,
            views_per_model=FLAGS.views_per_model,
            test_fraction=FLAGS.test_fraction,
            progress=True,
            workers=FLAGS.workers,
        )
        from enhancer_gan.voxels.sheet import save_sheet

        grids, titles = synthetic.preview_grids(root, FLAGS.preview_per_category)
        preview = os.path.join(root, "preview.png")
        save_sheet(preview, grids, ncols=FLAGS.preview_per_category, titles=titles)
    except EnhancerGanError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    how = "Reused" if summary.reused else f"Built in {summary.seconds:.1f} s"
    print(
        f"{how}: {summary.num_models} models ({', '.join(summary.categories)}) at "
        f"{summary.resolution}^3, {summary.num_views} views, ModelNet split "
        f"{summary.num_train} train / {summary.num_test} test.\n"
        f"  voxels:  {os.path.join(root, synthetic.VOXEL_DIR)}\n"
        f"  renders: {os.path.join(root, synthetic.RENDER_DIR)}\n"
        f"  meshes:  {os.path.join(root, synthetic.MESH_DIR)}\n"
        f"  preview: {preview}"
    )
    return 0


if __name__ == "__main__":
    app.run(main, flags_parser=flags_parser(FLAGS))
