"""Data sets in their real on-disk layouts, and the tf.data input pipeline.

Every data set reader produces a list of `records.ShapeRecord`s (one per 3D
model: where its voxel grid comes from and which rendered views it has);
`datasets.py` decodes the grids once into packed bits (`voxel_cache.py` for
ModelNet meshes); `pipeline.py` pairs each grid with one view drawn afresh
every epoch. The ModelNet class lists live in `modelnet_classes.py`, which
the mesh tree, archive and cache readers share (no reader imports another).
"""
