"""Index of ShapeNet data on disk (3D-R2N2 and ShapeNetCore v2 layouts) and grid loading.

Layouts:

  * 3D-R2N2: `<vox_root>/<synset>/<model_id>/model.binvox` (32^3) and
    `<render_root>/<synset>/<model_id>/rendering/NN.png` with
    `renderings.txt` (the views' names) and `rendering_metadata.txt`.
  * ShapeNetCore v2: `<root>/<synset>/<model_id>/models/model_normalized.solid.binvox`
    (128^3) or, where that file is absent, the mesh `model_normalized.obj`
    (voxelized here, solid, in the same frame and placement); no renders.

Three indexes: `index_r2n2` (ShapeNetVox32 + renders, 32^3 only),
`index_shapenet_v2` (v2 grids alone; the project renders views) and
`index_r2n2_v2`, the paper's pairs: v2 grids at 64^3 (or 32^3) paired by
synset and model id with the 3D-R2N2 renders of the same model.

The index only lists what is on disk: every path is built from directory
listings under the given roots and checked with `os.path.realpath` to stay
inside them, so a symlink or a crafted name cannot lead the reader elsewhere.
Models that lack their grid or their views are counted and left out, never a
crash; a malformed `renderings.txt` is reported the same way. Grids are
decoded only by `load_grid`, so indexing a large data set is cheap.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Sequence

import numpy as np

from enhancer_gan.config import SHAPENET_SYNSETS
from enhancer_gan.data.records import ShapeRecord, label_map
from enhancer_gan.data.renders import parse_renderings_list
from enhancer_gan.errors import ConfigError, DataError, MeshError
from enhancer_gan.voxels.binvox import read_binvox
from enhancer_gan.voxels.grid import V2_TO_CANONICAL, downsample, to_canonical
from enhancer_gan.voxels.voxelize import voxelize_mesh

R2N2_VOXEL_FILE = "model.binvox"
R2N2_RENDER_DIR = "rendering"
R2N2_RENDER_LIST = "renderings.txt"
V2_VOXEL_FILE = os.path.join("models", "model_normalized.solid.binvox")
V2_MESH_FILE = os.path.join("models", "model_normalized.obj")
# ShapeRecord.source of a v2 model whose grid is made from its mesh.
V2_MESH_SOURCE = "shapenet_v2_mesh"
# The usual folder names under one data root.
R2N2_VOXEL_FOLDER = "ShapeNetVox32"
R2N2_RENDER_FOLDER = "ShapeNetRendering"
V2_FOLDER = "ShapeNetCore.v2"

_SYNSET_TO_NAME = {synset: name for name, synset in SHAPENET_SYNSETS.items()}
_VIEW_NUMBER = re.compile(r"(\d+)\.png", re.IGNORECASE)


@dataclasses.dataclass
class IndexResult:
    """What an index found and what it left out.

    Attributes:
      records: the usable models, sorted by (category, model id).
      missing_renders: ids of models with a grid but no usable views (no
        rendering folder, or none of the listed views exists).
      missing_voxels: ids of models with views (r2n2) or a model folder (v2)
        but no grid file.
      rejected: 'path: reason' for entries refused outright (a link leading
        out of the root, an unreadable renderings.txt).
      root: the root that was indexed (the voxel root for r2n2).
      categories: the selected categories, in label order.
      empty_categories: 'name (synset)' of selected categories without a
        usable model (`index_r2n2_v2` only; the others raise instead).
    """

    records: list[ShapeRecord]
    missing_renders: list[str] = dataclasses.field(default_factory=list)
    missing_voxels: list[str] = dataclasses.field(default_factory=list)
    rejected: list[str] = dataclasses.field(default_factory=list)
    root: str = ""
    categories: tuple[str, ...] = ()
    empty_categories: list[str] = dataclasses.field(default_factory=list)

    def summary(self) -> str:
        """One line: counts of what was indexed and what was left out."""
        per_category: dict[str, int] = {}
        for r in self.records:
            per_category[r.category] = per_category.get(r.category, 0) + 1
        kept = ", ".join(f"{c} {n}" for c, n in sorted(per_category.items()))
        meshes = sum(r.source == V2_MESH_SOURCE for r in self.records)
        from_meshes = f", {meshes} from meshes" if meshes else ""
        empty = (
            f"; no models for {', '.join(self.empty_categories)}" if self.empty_categories else ""
        )
        return (
            f"{self.root}: {len(self.records)} models ({kept}{from_meshes}); left out: "
            f"{len(self.missing_renders)} without renders, "
            f"{len(self.missing_voxels)} without voxels, {len(self.rejected)} rejected{empty}"
        )


def _inside(path: str, root_real: str) -> bool:
    real = os.path.realpath(path)
    return real == root_real or real.startswith(root_real + os.sep)


def _list_dirs(folder: str, root_real: str, rejected: list[str]) -> list[str]:
    """Sorted names of the sub-folders of `folder` that stay inside the root.

    Hidden entries ('.cache', editor files) are skipped; a link that
    resolves outside the root is reported in `rejected`.
    """
    if not os.path.isdir(folder):
        return []
    if not _inside(folder, root_real):
        rejected.append(f"{folder}: leads outside {root_real}")
        return []
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except FileNotFoundError:
        return []
    except OSError as e:
        raise DataError(folder, f"cannot list folder: {e.strerror or e}") from None
    names = []
    for entry in entries:
        if entry.name.startswith("."):
            continue
        try:
            is_dir = entry.is_dir()
        except OSError:
            is_dir = False
        if not is_dir:
            continue
        if not _inside(entry.path, root_real):
            rejected.append(f"{entry.path}: leads outside {root_real}")
            continue
        names.append(entry.name)
    return names


def _regular_file(path: str, root_real: str, rejected: list[str]) -> bool:
    """Whether `path` is a file inside the root (a link out is rejected)."""
    if not os.path.isfile(path):
        return False
    if not _inside(path, root_real):
        rejected.append(f"{path}: leads outside {root_real}")
        return False
    return True


def _select_synsets(categories: Sequence[str], roots: Sequence[str]) -> dict[str, str]:
    """{category name: synset}; empty `categories` = every known synset folder under the roots."""
    unknown = [c for c in categories if c not in SHAPENET_SYNSETS]
    if unknown:
        raise ConfigError(
            f"unknown ShapeNet categor{'y' if len(unknown) == 1 else 'ies'} "
            f"{', '.join(map(repr, unknown))}; known: {', '.join(SHAPENET_SYNSETS)}"
        )
    if categories:
        return {c: SHAPENET_SYNSETS[c] for c in sorted(set(categories))}
    found = set()
    for root in roots:
        if os.path.isdir(root):
            found.update(n for n in os.listdir(root) if n in _SYNSET_TO_NAME)
    return {_SYNSET_TO_NAME[s]: s for s in sorted(found)}


def _check_root(root: str) -> str:
    if not os.path.isdir(root):
        raise DataError(root, "data folder does not exist")
    return os.path.realpath(root)


def _view_sort_key(name: str) -> tuple[int, str]:
    match = _VIEW_NUMBER.fullmatch(name)
    return (int(match.group(1)) if match else 1 << 62, name)


def _r2n2_views(render_dir: str, root_real: str, rejected: list[str]) -> tuple[str, ...]:
    """The existing views of one model listed in its renderings.txt, by view number.

    Without a renderings.txt every `NN.png` in the folder counts (renders
    made by other tools in the same layout); a malformed one is rejected.
    """
    if not os.path.isdir(render_dir):
        return ()
    if not _inside(render_dir, root_real):
        rejected.append(f"{render_dir}: leads outside {root_real}")
        return ()
    try:
        present = {e.name for e in os.scandir(render_dir) if not e.name.startswith(".")}
    except OSError:
        return ()
    list_path = os.path.join(render_dir, R2N2_RENDER_LIST)
    if R2N2_RENDER_LIST in present:
        try:
            # Refuses NUL bytes, empty lists and names with a separator, '.' or '..'.
            listed = set(parse_renderings_list(list_path))
        except DataError as e:
            rejected.append(str(e))
            return ()
    else:
        listed = {n for n in present if _VIEW_NUMBER.fullmatch(n)}
    # Names come from the directory listing (never from the text file alone),
    # so nothing but existing entries of this folder can be returned.
    names = sorted(listed & present, key=_view_sort_key)
    before = len(rejected)
    paths = []
    for name in names:
        path = os.path.join(render_dir, name)
        reported = len(rejected)
        if _regular_file(path, root_real, rejected):
            paths.append(path)
        elif len(rejected) == reported:  # not already refused as a link out
            rejected.append(f"{path}: a view name, but not a regular file")
    if not paths and listed and len(rejected) == before:
        # Say why a model with a list of views has none: the list names
        # nothing that exists in its folder.
        rejected.append(f"{list_path}: none of the {len(listed)} listed views exists")
    return tuple(paths)


def _no_records(root: str, selected: dict[str, str], counts: dict[str, int]) -> None:
    """DataError when a selected category (or all of them) gave no usable model."""
    if not selected:
        raise DataError(
            root, f"no ShapeNet category folders ({', '.join(sorted(_SYNSET_TO_NAME))}) found"
        )
    empty = [f"{c} ({selected[c]})" for c in selected if counts.get(c, 0) == 0]
    if empty:
        raise DataError(root, f"no usable models for {', '.join(empty)}")


def index_r2n2(
    vox_root: str | os.PathLike,
    render_root: str | os.PathLike,
    categories: Sequence[str] = (),
) -> IndexResult:
    """Indexes ShapeNetVox32 grids paired with their ShapeNetRendering views.

    Args:
      vox_root: the `ShapeNetVox32` folder.
      render_root: the `ShapeNetRendering` folder.
      categories: names from `config.SHAPENET_SYNSETS`; empty = every known
        synset folder found under `vox_root`.

    Returns:
      IndexResult whose records have source 'r2n2', label = index of the
      category in the alphabetical order of the selected categories, and
      view_paths sorted by view number. Models with a grid but no views, or
      views but no grid, are listed in missing_renders / missing_voxels.

    Raises:
      ConfigError: an unknown category name.
      DataError: a root does not exist, or a selected category has no usable
        model (naming the voxel root).
    """
    vox_root, render_root = os.fspath(vox_root), os.fspath(render_root)
    vox_real, render_real = _check_root(vox_root), _check_root(render_root)
    # Without named categories, the grids decide which exist: a synset with
    # renders only has nothing to train on.
    selected = _select_synsets(categories, [vox_root])
    labels = label_map(selected)
    result = IndexResult(records=[], root=vox_root)
    counts: dict[str, int] = {}
    for category, synset in selected.items():
        vox_dir = os.path.join(vox_root, synset)
        render_dir = os.path.join(render_root, synset)
        with_voxels = set(_list_dirs(vox_dir, vox_real, result.rejected))
        with_renders = set(_list_dirs(render_dir, render_real, result.rejected))
        for model_id in sorted(with_voxels | with_renders):
            voxel_path = os.path.join(vox_dir, model_id, R2N2_VOXEL_FILE)
            has_voxels = model_id in with_voxels and _regular_file(
                voxel_path, vox_real, result.rejected
            )
            views = ()
            if model_id in with_renders:
                views = _r2n2_views(
                    os.path.join(render_dir, model_id, R2N2_RENDER_DIR),
                    render_real,
                    result.rejected,
                )
            if not has_voxels:
                result.missing_voxels.append(model_id)
                continue
            if not views:
                result.missing_renders.append(model_id)
                continue
            result.records.append(
                ShapeRecord(
                    model_id=model_id,
                    category=category,
                    voxel_path=voxel_path,
                    view_paths=views,
                    label=labels[category],
                    source="r2n2",
                )
            )
            counts[category] = counts.get(category, 0) + 1
    result.categories = tuple(selected)
    _no_records(vox_root, selected, counts)
    return result


def index_shapenet_v2(root: str | os.PathLike, categories: Sequence[str] = ()) -> IndexResult:
    """Indexes ShapeNetCore v2 solid grids (no renders in this layout).

    Args:
      root: the `ShapeNetCore.v2` folder.
      categories: names from `config.SHAPENET_SYNSETS`; empty = every known
        synset folder found under the root.

    Returns:
      IndexResult whose records have source 'shapenet_v2' (the solid binvox)
      or 'shapenet_v2_mesh' (no binvox, the mesh), no view_paths and
      alphabetical labels; model folders with neither are listed in
      missing_voxels.

    Raises:
      ConfigError: an unknown category name.
      DataError: the root does not exist, or a selected category has no
        usable model (naming the root).
    """
    root = os.fspath(root)
    root_real = _check_root(root)
    selected = _select_synsets(categories, [root])
    labels = label_map(selected)
    result = IndexResult(records=[], root=root)
    counts: dict[str, int] = {}
    for category, synset in selected.items():
        folder = os.path.join(root, synset)
        for model_id in _list_dirs(folder, root_real, result.rejected):
            found = _v2_grid_file(os.path.join(folder, model_id), root_real, result.rejected)
            if found is None:
                result.missing_voxels.append(model_id)
                continue
            result.records.append(
                ShapeRecord(
                    model_id=model_id,
                    category=category,
                    voxel_path=found[0],
                    label=labels[category],
                    source=found[1],
                )
            )
            counts[category] = counts.get(category, 0) + 1
    result.categories = tuple(selected)
    _no_records(root, selected, counts)
    return result


def _v2_grid_file(model_dir: str, root_real: str, rejected: list[str]) -> tuple[str, str] | None:
    """(path, source) of a v2 model's grid: the solid binvox, else the mesh; None if neither."""
    binvox = os.path.join(model_dir, V2_VOXEL_FILE)
    if _regular_file(binvox, root_real, rejected):
        return binvox, "shapenet_v2"
    mesh = os.path.join(model_dir, V2_MESH_FILE)
    if _regular_file(mesh, root_real, rejected) and os.path.getsize(mesh) > 0:
        return mesh, V2_MESH_SOURCE
    return None


def index_r2n2_v2(
    voxel_root: str | os.PathLike,
    render_root: str | os.PathLike,
    categories: Sequence[str] = (),
) -> IndexResult:
    """The paper's pairs: ShapeNetCore v2 grids with the 3D-R2N2 renders of the same models.

    A model is kept when both `<voxel_root>/<synset>/<id>/` (with its solid
    binvox or, failing that, its mesh) and `<render_root>/<synset>/<id>/rendering/`
    (with at least one listed view) exist. The two downloads do not hold the
    same models (v2 added and dropped some), so models in only one are
    counted (missing_renders / missing_voxels) and left out.

    Args:
      voxel_root: the `ShapeNetCore.v2` folder.
      render_root: the `ShapeNetRendering` folder.
      categories: names from `config.SHAPENET_SYNSETS`; empty = every known
        synset folder found under `voxel_root`.

    Returns:
      IndexResult: records with source 'shapenet_v2' or 'shapenet_v2_mesh',
      view_paths the renders (by view number), labels indexing the selected
      categories in alphabetical order (`categories`), also for categories
      that turned out empty; those are listed in `empty_categories` (one
      summary line says so) rather than refused.

    Raises:
      ConfigError: an unknown category name.
      DataError: a root does not exist, or no model at all is in both.
    """
    voxel_root, render_root = os.fspath(voxel_root), os.fspath(render_root)
    vox_real, render_real = _check_root(voxel_root), _check_root(render_root)
    selected = _select_synsets(categories, [voxel_root])
    if not selected:
        raise DataError(
            voxel_root,
            f"no ShapeNet category folders ({', '.join(sorted(_SYNSET_TO_NAME))}) found",
        )
    labels = label_map(selected)
    result = IndexResult(records=[], root=voxel_root, categories=tuple(selected))
    for category, synset in selected.items():
        vox_dir = os.path.join(voxel_root, synset)
        render_dir = os.path.join(render_root, synset)
        with_voxels = set(_list_dirs(vox_dir, vox_real, result.rejected))
        with_renders = set(_list_dirs(render_dir, render_real, result.rejected))
        kept = 0
        for model_id in sorted(with_voxels | with_renders):
            found = None
            if model_id in with_voxels:
                found = _v2_grid_file(os.path.join(vox_dir, model_id), vox_real, result.rejected)
            views = ()
            if model_id in with_renders:
                views = _r2n2_views(
                    os.path.join(render_dir, model_id, R2N2_RENDER_DIR),
                    render_real,
                    result.rejected,
                )
            if found is None:
                result.missing_voxels.append(model_id)
                continue
            if not views:
                result.missing_renders.append(model_id)
                continue
            result.records.append(
                ShapeRecord(
                    model_id=model_id,
                    category=category,
                    voxel_path=found[0],
                    view_paths=views,
                    label=labels[category],
                    source=found[1],
                )
            )
            kept += 1
        if not kept:
            result.empty_categories.append(f"{category} ({synset})")
    if not result.records:
        raise DataError(
            voxel_root,
            f"no model of {', '.join(result.empty_categories)} is both here and in "
            f"{render_root} (ShapeNetCore v2 grids are paired with 3D-R2N2 renders by synset "
            f"and model id): {len(result.missing_renders)} have voxels only, "
            f"{len(result.missing_voxels)} renders only",
        )
    return result


def read_obj(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """A Wavefront .obj's triangles (all groups, materials ignored), read with trimesh.

    Returns:
      vertices [V, 3] float64 and faces [F, 3] int64, in the file's frame.

    Raises:
      MeshError: unreadable, no triangles, or a vertex that is NaN or infinite.
    """
    import trimesh

    name = os.fspath(path)
    try:
        mesh = trimesh.load(name, file_type="obj", force="mesh", process=False, skip_materials=True)
    except Exception as e:  # trimesh's parsers raise anything from IndexError to KeyError
        raise MeshError(name, f"cannot read the mesh: {type(e).__name__}: {e}") from None
    faces = np.asarray(getattr(mesh, "faces", np.zeros((0, 3))), dtype=np.int64)
    if faces.ndim != 2 or faces.shape[1] != 3 or len(faces) == 0:
        raise MeshError(name, "the mesh has no triangles")
    vertices = np.asarray(mesh.vertices, dtype=np.float64).reshape(-1, 3)
    # Checked here, before any arithmetic on them could warn about NaN or inf.
    finite = np.isfinite(vertices).all(axis=1)
    if not finite.all():
        i = int(np.flatnonzero(~finite)[0])
        raise MeshError(name, f"vertex {i + 1} is not finite ({', '.join(map(str, vertices[i]))})")
    return vertices, faces


def voxelize_v2_mesh(path: str | os.PathLike, resolution: int) -> np.ndarray:
    """A ShapeNetCore v2 `model_normalized.obj` as a solid grid in the canonical frame.

    The same placement as the v2 solid binvox after `to_canonical`: binvox
    spans the mesh's longest side with the whole grid (header `scale` = that
    side, `translate` = the bounding box's minimum corner), and the canonical
    transform turns it a quarter about the up axis and centres it. Here the
    mesh is turned by the same rotation (`grid.V2_TO_CANONICAL`), then
    voxelized with its bounding box centred and its longest side spanning
    all R voxels (`voxelize_mesh(..., span=R)`). Chair
    1a6f615e8b1b5ae4dbbc9440457e303e at 64^3 agrees with its binvox grid at
    IoU 0.855 (tests/test_shapenet.py).

    Returns:
      [R, R, R] bool, canonical frame (y up, facing +x).

    Raises:
      MeshError: unreadable or degenerate mesh.
    """
    vertices, faces = read_obj(path)
    turned = vertices @ V2_TO_CANONICAL.T
    return voxelize_mesh(
        turned, faces, resolution, up_axis="y", name=os.fspath(path), span=resolution
    )


def load_grid(record: ShapeRecord, resolution: int) -> np.ndarray:
    """Reads one record's grid in the canonical frame at `resolution`.

    The transform into the canonical frame runs at the file's own resolution,
    before pooling (centring a 128^3 grid and then pooling keeps sub-voxel
    placement that pooling first would lose).

    Args:
      record: a ShapeRecord from `index_r2n2` / `index_shapenet_v2` (any
        source `grid.to_canonical` knows).
      resolution: output side R; the file's side must be a multiple of it.

    Returns:
      [R, R, R] bool, project order (x, y, z), canonical frame.

    Records of source 'shapenet_v2_mesh' are voxelized from their mesh at R
    directly (`voxelize_v2_mesh`).

    Raises:
      BinvoxError: the file is missing or malformed.
      MeshError: a mesh record's file is unreadable or degenerate.
      DataError: the file's grid is smaller than R (no upsampling) or its
        side is not a multiple of R.
      ConfigError: R is not positive, or the record's source is unknown.
    """
    if isinstance(resolution, bool) or not isinstance(resolution, (int, np.integer)):
        raise ConfigError(f"resolution must be an integer, got {resolution!r}")
    if resolution < 1:
        raise ConfigError(f"resolution must be positive, got {resolution}")
    if record.source == V2_MESH_SOURCE:
        return voxelize_v2_mesh(record.voxel_path, int(resolution))
    vox = read_binvox(record.voxel_path)
    dim = vox.dim
    if dim < resolution:
        raise DataError(
            record.voxel_path,
            f"grid is {dim}^3, smaller than the requested {resolution}^3 (refusing to upsample)",
        )
    if dim % resolution:
        raise DataError(
            record.voxel_path, f"grid is {dim}^3, which does not pool to {resolution}^3"
        )
    return downsample(to_canonical(vox.grid, record.source), resolution)
