"""Voxel grids: the project's one axis convention lives here.

The axis convention (used everywhere in the project)
----------------------------------------------------
A voxel grid is a numpy array `grid[x, y, z]` of shape (D, D, D), dtype bool
(or uint8/float32 occupancy in [0, 1] where noted), with

  * axis 0 = x   (ShapeNetVox32's first axis; chairs face +x, backrest at -x)
  * axis 1 = y   UP (ShapeNet's y; gravity points towards y = 0)
  * axis 2 = z   (left-right for the ShapeNetVox32 chairs)

This is the 3D-R2N2 (ShapeNetVox32) frame, y up, measured on the sample
chairs: their renders line up with it under `camera.py`'s R2N2 camera
(silhouette IoU 0.906). Networks see grids channels-last as
`[batch, D, D, D, 1]` in the same x, y, z order.

A .binvox file stores its voxels in (x, z, y) order with y fastest; the
reader transposes to (x, y, z) and the writer transposes back, so nothing
outside `binvox.py` ever sees the file order. Other sources are brought into
this frame by explicit, tested transforms in their own readers:

  * ShapeNetVox32 (3D-R2N2): already in this frame, centred in its box.
  * ShapeNetCore v2 `model_normalized.solid.binvox`: a quarter turn about the
    up axis and a re-centring (see `grid.shapenet_v2_to_canonical`).
  * ModelNet .off meshes: z up; the voxelizer rotates them to y up.
"""
