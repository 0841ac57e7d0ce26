"""The common currency of the data layer: one `ShapeRecord` per 3D model."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np


@dataclasses.dataclass(frozen=True)
class ShapeRecord:
    """One 3D model of a data set.

    Attributes:
      model_id: the model's id within its category (folder or file stem).
      category: category name (e.g. 'chair', 'bathtub').
      voxel_path: the file its grid is read from (.binvox or .off), or '' when
        the grid comes from an in-memory archive (see `archive_index`).
      view_paths: rendered views (PNG, RGBA or RGB) of this model; may be
        empty for sources without renders.
      label: integer class index within the data set (alphabetical order of
        the category names), -1 if unknown.
      source: which reader made it ('r2n2', 'shapenet_v2', 'modelnet',
        'archive', 'synthetic'); selects the transform into the project frame.
      archive_index: row in the archive for source 'archive', else -1.
    """

    model_id: str
    category: str
    voxel_path: str
    view_paths: tuple[str, ...] = ()
    label: int = -1
    source: str = ""
    archive_index: int = -1


# A function that loads one record's grid in the project frame at a given
# resolution: (record, resolution) -> [R, R, R] bool.
GridLoader = Callable[[ShapeRecord, int], np.ndarray]


def label_map(categories: Sequence[str]) -> dict[str, int]:
    """Alphabetical category -> label mapping (ModelNet's convention)."""
    return {c: i for i, c in enumerate(sorted(set(categories)))}
