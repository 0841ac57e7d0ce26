"""Rendered views for data sets that ship none (ModelNet, ShapeNet v2, archives).

The enhancer learns from images paired with each 3D model. Where a data set
has no renders, the project's voxel renderer draws `views_per_model` views of
each grid from random viewpoints in the range of the 3D-R2N2 renders
(azimuth 0-360, elevation 25-30 degrees, distance ratio 0.65-0.9), written
once as PNG files with an R2N2-style `rendering_metadata.txt` under
`<out_dir>/<model_id>/`. A model's folder is complete when its metadata file
exists (written last), so an interrupted rendering resumes where it stopped.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from PIL import Image

from enhancer_gan.io_utils import atomic_path, atomic_write_text

# The 3D-R2N2 renders' camera ranges, read from their rendering_metadata.txt
# (docs/DESIGN.md#camera).
AZIMUTH_RANGE = (0.0, 360.0)
ELEVATION_RANGE = (25.0, 30.0)
DISTANCE_RANGE = (0.65, 0.9)
FIELD_OF_VIEW = 25.0


def view_parameters(rng: np.random.Generator, count: int) -> np.ndarray:
    """Viewpoints drawn uniformly in the 3D-R2N2 renders' ranges.

    The one place views are drawn: the renders of data sets without any
    (`render_views`) and the synthetic data set's (`synthetic.view_metadata`).

    Returns:
      [count, 5] float64 rows (azimuth, elevation, in-plane rotation 0,
      distance ratio, field of view), drawn azimuths first, then elevations,
      then distances.
    """
    az = rng.uniform(*AZIMUTH_RANGE, count)
    el = rng.uniform(*ELEVATION_RANGE, count)
    dist = rng.uniform(*DISTANCE_RANGE, count)
    return np.stack([az, el, np.zeros(count), dist, np.full(count, FIELD_OF_VIEW)], axis=1)


def _safe_name(model_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in model_id).lstrip(".")


def render_views(
    grids: Sequence[np.ndarray] | np.ndarray,
    model_ids: Sequence[str],
    out_dir: str,
    views_per_model: int = 4,
    seed: int = 0,
    size: int = 137,
    progress: bool = True,
) -> list[tuple[str, ...]]:
    """Renders (or reuses) views of each grid; returns their PNG paths per model.

    Args:
      grids: N grids [R, R, R] bool in the project frame.
      model_ids: N unique ids; they name the folders.
      out_dir: folder that receives `<model_id>/NN.png`.
      views_per_model: views per model.
      seed: viewpoints are drawn from a Generator keyed by (seed, model index).
      size: image side (137 like the 3D-R2N2 renders).
    """
    from tqdm.auto import tqdm

    from enhancer_gan.voxels.render import render_voxels

    paths = []
    for i in tqdm(range(len(model_ids)), desc="rendering views", disable=not progress):
        folder = os.path.join(out_dir, _safe_name(model_ids[i]))
        names = [os.path.join(folder, f"{k:02d}.png") for k in range(views_per_model)]
        meta_path = os.path.join(folder, "rendering_metadata.txt")
        if not (os.path.exists(meta_path) and all(os.path.exists(p) for p in names)):
            params = view_parameters(np.random.default_rng([seed, i]), views_per_model)
            for name, (az, el, _, dist, _) in zip(names, params):
                image = render_voxels(
                    np.asarray(grids[i]),
                    azimuth_deg=az,
                    elevation_deg=el,
                    size=size,
                    distance_ratio=dist,
                )
                with atomic_path(name) as tmp:
                    Image.fromarray(image).save(tmp, format="PNG")
            atomic_write_text(
                meta_path, "".join(" ".join(f"{v:.6g}" for v in row) + "\n" for row in params)
            )
        paths.append(tuple(names))
    return paths
