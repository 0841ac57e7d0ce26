"""ModelNet's label spaces, splits and up axis: what every ModelNet reader shares.

Its own module so that the mesh tree (`modelnet.py`), the voxel archives
(`archives.py`) and the voxel cache (`voxel_cache.py`) all import it without
importing each other. Labels are indices into these alphabetical tuples.

Nothing here imports anything.
"""

from __future__ import annotations

MODELNET10_CLASSES = (
    "bathtub",
    "bed",
    "chair",
    "desk",
    "dresser",
    "monitor",
    "night_stand",
    "sofa",
    "table",
    "toilet",
)
MODELNET40_CLASSES = tuple(
    sorted(
        """airplane bathtub bed bench bookshelf bottle bowl car chair cone cup curtain desk
        door dresser flower_pot glass_box guitar keyboard lamp laptop mantel monitor
        night_stand person piano plant radio range_hood sink sofa stairs stool table tent
        toilet tv_stand vase wardrobe xbox""".split()
    )
)
SPLITS = ("train", "test")
# ModelNet meshes are z up; the voxelizer turns them to the project's y-up frame.
MODELNET_UP_AXIS = "z"
