"""The paper's Tables 1-3 as printed (percent), and which row a run sits beside.

The numbers are those of Zhu, Xie and Fang (AAAI 2018), Tables 1-3; the
design page `docs/DESIGN.md#paper-tables` prints the same tables, and
`tests/test_tables.py` parses that page and checks these constants against it.
Which row a run sits beside is read from the run's config (`paper_key`);
which column, from the number of classes of the evaluation data
(`dataset_column`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from enhancer_gan.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class PaperRow:
    """One method of a table of the paper.

    Attributes:
      key: short name used in code ('with_enhancer', 'layer2', ...).
      method: the method as the paper names it.
      mn10: ModelNet10 value in percent.
      mn40: ModelNet40 value in percent, None where the paper has '-'.
      supervised: whether the method uses labels to learn its features.
    """

    key: str
    method: str
    mn10: float
    mn40: float | None
    supervised: bool = False

    def value(self, column: str) -> float | None:
        """The value in column 'MN10' or 'MN40'."""
        if column == "MN10":
            return self.mn10
        if column == "MN40":
            return self.mn40
        raise ConfigError(f"paper column must be MN10 or MN40, got {column!r}")


@dataclasses.dataclass(frozen=True)
class PaperTable:
    """A table of the paper: what it measures and its rows."""

    name: str
    title: str
    metric: str
    rows: tuple[PaperRow, ...]

    def row(self, key: str | None) -> PaperRow | None:
        """The row with `key`, or None (no such row, or key None)."""
        for r in self.rows:
            if r.key == key:
                return r
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "metric": self.metric,
            "rows": [dataclasses.asdict(r) for r in self.rows],
        }


# Table 1 as printed (the "Supervised?" ticks were lost in the text; the
# crosses mark the last six rows as unsupervised, so the first six are the
# supervised ones). PointNet has no ModelNet40 number in the paper.
TABLE1 = PaperTable(
    name="table1",
    title="Shape classification on ModelNet (ours: linear SVM on DM features)",
    metric="accuracy (%)",
    rows=(
        PaperRow("3d_shapenets", "3D ShapeNets (Wu et al. 2015)", 83.54, 77.32, True),
        PaperRow("voxnet", "VoxNet (Maturana and Scherer 2015)", 92.00, 83.00, True),
        PaperRow("geometry_image", "Geometry Image (Sinha et al. 2016)", 88.40, 83.90, True),
        PaperRow("pointnet", "PointNet (Qi et al. 2017)", 77.60, None, True),
        PaperRow("gift", "GIFT (Bai et al. 2016)", 92.35, 83.10, True),
        PaperRow("fusionnet", "FusionNet (Hegde and Zadeh 2016), fine-tuned", 93.11, 90.80, True),
        PaperRow("sph", "SPH (Kazhdan et al. 2003)", 79.79, 68.23),
        PaperRow("lfd", "LFD (Chen et al. 2003)", 79.87, 75.47),
        PaperRow("vconv_dae", "VConv-DAE (Sharma et al. 2016)", 80.50, 75.50),
        PaperRow("3d_gan", "3D-GAN (Wu et al. 2016)", 91.00, 83.30),
        PaperRow("without_enhancer", "Our Method without Enhancer", 88.88, 85.53),
        PaperRow("with_enhancer", "Our Method with Enhancer", 91.63, 87.85),
    ),
)

TABLE2 = PaperTable(
    name="table2",
    title="Shape retrieval mean average precision (test split queries the test split)",
    metric="mAP (%)",
    rows=(
        PaperRow("sph", "SPH", 44.05, 33.26),
        PaperRow("lfd", "LFD", 49.82, 40.91),
        PaperRow("without_enhancer", "Ours without Enhancer", 61.82, 40.81),
        PaperRow("with_enhancer", "Ours with Enhancer", 65.00, 44.44),
    ),
)

TABLE3 = PaperTable(
    name="table3",
    title="Classification accuracy by the enhancer-generator layer that feeds GM",
    metric="accuracy (%)",
    rows=(
        PaperRow("none", "None (without enhancer)", 88.88, 85.53),
        PaperRow("layer1", "1st layer", 91.63, 87.85),
        PaperRow("layer2", "2nd layer", 91.52, 87.12),
        PaperRow("layer3", "3rd layer", 90.42, 86.34),
    ),
)

TABLE3_LABELS = tuple(r.key for r in TABLE3.rows)
COLUMN_NAMES = {"MN10": "ModelNet10", "MN40": "ModelNet40"}


def dataset_column(num_classes: int) -> str:
    """'MN10' for 10 classes, 'MN40' for 40, else 'other'."""
    return {10: "MN10", 40: "MN40"}.get(int(num_classes), "other")


def paper_key(model_config: dict, table: str) -> str | None:
    """The paper row a run's model config sits beside in `table`.

    Args:
      model_config: the run's `config['model']` dict.
      table: 'table1', 'table2' or 'table3'.

    Returns:
      'without_enhancer' / 'with_enhancer' (Tables 1-2; None for an
      enhancer on layer 2 or 3, which only Table 3 has), or 'none' /
      'layer1'..'layer3' (Table 3).
    """
    use_enhancer = bool(model_config.get("use_enhancer", True))
    layer = int(model_config.get("enhancer_layer", 1))
    if table == "table3":
        return f"layer{layer}" if use_enhancer else "none"
    if not use_enhancer:
        return "without_enhancer"
    return "with_enhancer" if layer == 1 else None
