"""Solids for the synthetic shapes: parts given by implicit functions, and the rasteriser.

A `Part` is a box, cylinder or ellipsoid in continuous world coordinates,
optionally cut by half-spaces; the helpers (`box`, `span_box`, `cylinder`,
`rod`, `ellipsoid`, `plane`, `frame`, `rot_y`, `rot_z`) build them.
`rasterize` centres a list of parts in a grid, scales the longest side to
`FILL` of it and sets every voxel whose cell touches a part, so one set of
parts gives the same shape at 16^3, 32^3 or 64^3. The categories built
from these parts are in `enhancer_gan.data.shapes`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

# Fraction of the grid's side taken by a model's longest extent: a margin of
# about a voxel at 32^3 keeps thin parts from being cut at the border.
FILL = 0.9


@dataclasses.dataclass(frozen=True)
class Part:
    """A solid primitive, optionally cut by half-spaces.

    Attributes:
      kind: 'box', 'cylinder' (axis = local y) or 'ellipsoid'.
      center: (3,) world position.
      half: (3,) half extents along the local axes; for a cylinder
        (radius, half length, radius).
      rotation: [3, 3] whose columns are the local axes in world coordinates.
      planes: ((normal (3,), offset), ...): the part keeps points with
        normal . p <= offset.
    """

    kind: str
    center: np.ndarray
    half: np.ndarray
    rotation: np.ndarray
    planes: tuple[tuple[np.ndarray, float], ...] = ()

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Axis-aligned world bounds (lo, hi), each (3,)."""
        r, h = self.rotation, self.half
        if self.kind == "box":
            ext = np.abs(r) @ h
        elif self.kind == "cylinder":
            axis = r[:, 1]
            ext = h[1] * np.abs(axis) + h[0] * np.sqrt(np.maximum(0.0, 1.0 - axis**2))
        else:
            ext = np.sqrt((r * h[None, :]) ** 2 @ np.ones(3))
        lo, hi = self.center - ext, self.center + ext
        # Axis-aligned cuts tighten the bounds (a hull cut at the deck, say),
        # so that a model is centred on what is really there.
        for normal, offset in self.planes:
            nz = np.flatnonzero(np.abs(normal) > 1e-9)
            if nz.size == 1:
                i = int(nz[0])
                if normal[i] > 0:
                    hi[i] = min(hi[i], offset / normal[i])
                else:
                    lo[i] = max(lo[i], offset / normal[i])
        return lo, hi

    def contains(self, x, y, z, pad: float) -> np.ndarray:
        """Which voxel cells touch the part.

        Args:
          x, y, z: world coordinates of the cells' centres, broadcastable to
            one shape S.
          pad: half the cells' side (world units); 0 tests the centres alone.

        Returns:
          bool array of shape S.
        """
        d = (x - self.center[0], y - self.center[1], z - self.center[2])
        r = self.rotation
        local = [r[0, i] * d[0] + r[1, i] * d[1] + r[2, i] * d[2] for i in range(3)]
        # How far a voxel cell (a cube of half side `pad`) reaches along each
        # local axis: the test below is "the cell touches the part", exact for
        # parts aligned with the grid and close for turned ones.
        reach = pad * np.abs(r).sum(axis=0)
        if self.kind == "box":
            inside = np.abs(local[0]) <= self.half[0] + reach[0]
            inside &= np.abs(local[1]) <= self.half[1] + reach[1]
            inside &= np.abs(local[2]) <= self.half[2] + reach[2]
        else:
            # The cell's nearest point to the centre, per axis (the tests are
            # separable), must lie inside.
            near = [np.maximum(np.abs(local[i]) - reach[i], 0.0) for i in range(3)]
            if self.kind == "cylinder":
                inside = near[1] <= self.half[1]
                inside &= (near[0] / self.half[0]) ** 2 + (near[2] / self.half[2]) ** 2 <= 1
            else:
                inside = sum((near[i] / self.half[i]) ** 2 for i in range(3)) <= 1
        for normal, offset in self.planes:
            slack = pad * float(np.abs(normal).sum())
            inside &= normal[0] * x + normal[1] * y + normal[2] * z <= offset + slack
        return inside


def frame(axis: Sequence[float], index: int, hint: Sequence[float]) -> np.ndarray:
    """A rotation whose column `index` points along `axis`.

    The next column (cyclically) is as close to `hint` as it can be, so a
    swept wing keeps its chord roughly along x, say.
    """
    a = np.asarray(axis, dtype=np.float64)
    a = a / np.linalg.norm(a)
    b = np.asarray(hint, dtype=np.float64)
    b = b - (b @ a) * a
    b = b / np.linalg.norm(b)
    c = np.cross(a, b)
    out = np.empty((3, 3))
    out[:, index] = a
    out[:, (index + 1) % 3] = b
    out[:, (index + 2) % 3] = c
    return out


def rot_y(deg: float) -> np.ndarray:
    t = math.radians(deg)
    return np.array([[math.cos(t), 0, math.sin(t)], [0, 1, 0], [-math.sin(t), 0, math.cos(t)]])


def rot_z(deg: float) -> np.ndarray:
    """Positive angles turn +x towards +y (and +y towards -x)."""
    t = math.radians(deg)
    return np.array([[math.cos(t), -math.sin(t), 0], [math.sin(t), math.cos(t), 0], [0, 0, 1]])


def box(center, half, rotation=None, planes=()) -> Part:
    rot = np.eye(3) if rotation is None else np.asarray(rotation, dtype=np.float64)
    return Part("box", np.asarray(center, float), np.asarray(half, float), rot, tuple(planes))


def span_box(lo, hi, planes=()) -> Part:
    """An axis-aligned box from its corners."""
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    return box((lo + hi) / 2, (hi - lo) / 2, planes=planes)


def cylinder(center, radius, half_length, axis="y") -> Part:
    """A cylinder; `axis` is 'x', 'y', 'z' or a direction vector."""
    if isinstance(axis, str):
        axis = {"x": (1, 0, 0), "y": (0, 1, 0), "z": (0, 0, 1)}[axis]
    direction = np.asarray(axis, dtype=np.float64)
    # Column 1 (local y) is the axis; the radial axes may point anywhere
    # across it, the hint only has to be off the axis.
    hint = (
        (1.0, 0.0, 0.0) if abs(direction[0]) < 0.9 * np.linalg.norm(direction) else (0.0, 1.0, 0.0)
    )
    rot = frame(direction, 1, hint)
    return Part("cylinder", np.asarray(center, float), np.array([radius, half_length, radius]), rot)


def rod(start, end, radius) -> Part:
    """A cylinder from `start` to `end`."""
    start, end = np.asarray(start, float), np.asarray(end, float)
    return cylinder((start + end) / 2, radius, np.linalg.norm(end - start) / 2, end - start)


def ellipsoid(center, radii, planes=()) -> Part:
    return Part(
        "ellipsoid", np.asarray(center, float), np.asarray(radii, float), np.eye(3), tuple(planes)
    )


def plane(normal, point) -> tuple[np.ndarray, float]:
    """The half-space {p : n . p <= n . point}."""
    n = np.asarray(normal, dtype=np.float64)
    n = n / np.linalg.norm(n)
    return n, float(n @ np.asarray(point, dtype=np.float64))


def rasterize(parts: Sequence[Part], resolution: int, fill: float = FILL) -> np.ndarray:
    """Voxelizes parts: a voxel is set when its cell touches a part.

    The model's bounding box is centred in the grid and its longest side
    scaled to `fill` of the grid. Growing each part by half a voxel makes the
    test "the cell touches the part" (exact for axis-aligned boxes), like a
    max-pooled fine voxelization, so thin legs survive at 16^3.

    Returns:
      [R, R, R] bool.
    """
    bounds = [p.bounds() for p in parts]
    lo = np.min([b[0] for b in bounds], axis=0)
    hi = np.max([b[1] for b in bounds], axis=0)
    centre = (lo + hi) / 2
    world_per_unit = float(np.max(hi - lo)) / fill
    voxel = world_per_unit / resolution
    pad = voxel / 2
    # World coordinates of the voxel centres along each axis: [R].
    axes = [
        centre[i] + ((np.arange(resolution) + 0.5) / resolution - 0.5) * world_per_unit
        for i in range(3)
    ]
    grid = np.zeros((resolution,) * 3, dtype=bool)
    for part, (plo, phi) in zip(parts, bounds):
        # Only the voxels whose centres can be within `pad` of the part's box.
        sl = []
        for i in range(3):
            a = int(np.searchsorted(axes[i], plo[i] - pad - 1e-12, side="left"))
            b = int(np.searchsorted(axes[i], phi[i] + pad + 1e-12, side="right"))
            sl.append(slice(a, b))
        if any(s.start >= s.stop for s in sl):
            continue
        x = axes[0][sl[0], None, None]
        y = axes[1][None, sl[1], None]
        z = axes[2][None, None, sl[2]]
        grid[sl[0], sl[1], sl[2]] |= part.contains(x, y, z, pad)
    return grid
