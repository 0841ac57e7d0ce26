"""Writers of the table results: markdown beside the paper's numbers, strict JSON.

Every file is written atomically, and existing outputs are refused (before
any work) unless `overwrite=True`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from enhancer_gan.evaluation.feature_cache import EvalData
from enhancer_gan.evaluation.paper import COLUMN_NAMES, PaperTable
from enhancer_gan.evaluation.run_specs import RANDOM_BASELINE_LABEL
from enhancer_gan.io_utils import OutputExistsError, atomic_write_json, atomic_write_text


def table_outputs(name: str, figures: Sequence[str] = ()) -> list[str]:
    """File names a table writes: <name>.md, <name>.json and the figures."""
    return [f"{name}.md", f"{name}.json", *figures]


def check_outputs(results_dir: str, filenames: Sequence[str], overwrite: bool) -> None:
    """Refuses (before any work) when an output exists and not `overwrite`."""
    existing = [f for f in filenames if os.path.exists(os.path.join(results_dir, f))]
    if existing and not overwrite:
        raise OutputExistsError(
            f"{os.path.join(results_dir, existing[0])}: exists ({len(existing)} of this "
            "table's files would be replaced); pass --overwrite or choose another --results_dir"
        )


def _json_ready(obj: Any) -> Any:
    """NaN/inf -> None and numpy scalars/arrays -> Python, recursively (strict JSON)."""
    if isinstance(obj, dict):
        return {str(k): _json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_ready(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _json_ready(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_table(
    results_dir: str, name: str, markdown: str, payload: dict, overwrite: bool = False
) -> tuple[str, str]:
    """Writes <results_dir>/<name>.md and <name>.json atomically.

    Returns:
      (markdown path, json path).

    Raises:
      OutputExistsError: either file exists and not `overwrite`.
    """
    check_outputs(results_dir, [f"{name}.md", f"{name}.json"], overwrite)
    md_path = os.path.join(results_dir, f"{name}.md")
    json_path = os.path.join(results_dir, f"{name}.json")
    atomic_write_text(md_path, markdown)
    atomic_write_json(json_path, _json_ready(payload))
    return md_path, json_path


def pct(x: float | None) -> str:
    return "—" if x is None or not math.isfinite(x) else f"{x:.2f}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub markdown table ('|' inside a cell is escaped)."""

    def cell(v: Any) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in header) + " |"]
    lines.append("|" + "|".join("---" for _ in header) + "|")
    for r in rows:
        lines.append("| " + " | ".join(cell(v) for v in r) + " |")
    return "\n".join(lines) + "\n"


def paper_table_markdown(table: PaperTable, show_supervised: bool = False) -> str:
    """The paper's table as printed, both columns."""
    header = ["method"] + (["supervised"] if show_supervised else [])
    header += [f"ModelNet10 {table.metric}", f"ModelNet40 {table.metric}"]
    rows = []
    for r in table.rows:
        sup = ["yes" if r.supervised else "no"] if show_supervised else []
        rows.append([r.method, *sup, pct(r.mn10), pct(r.mn40)])
    return markdown_table(header, rows)


def paper_cell(table: PaperTable, key: str | None, column: str) -> tuple[str, dict | None]:
    """The paper value beside a run: (markdown cell, JSON dict or None)."""
    row = table.row(key)
    if row is None:
        return "— (no such row in the paper)", None
    if column == "other":
        cell = f"{pct(row.mn10)} / {pct(row.mn40)} ({row.method}; MN10 / MN40, other data)"
        return cell, {"key": row.key, "method": row.method, "MN10": row.mn10, "MN40": row.mn40}
    value = row.value(column)
    return f"{pct(value)} ({row.method})", {
        "key": row.key,
        "method": row.method,
        "column": column,
        "value": value,
    }


def describe_data(data: EvalData, num_classes: int, column: str, counts: dict) -> str:
    where = f"`{data.data_dir}`" if data.data_dir else "the built-in synthetic data set"
    sizes = ", ".join(f"{split} {n}" for split, n in counts.items())
    text = f"Data: {data.dataset} {where} ({sizes} shapes"
    if data.max_per_split:
        text += f"; stratified subsample of at most {data.max_per_split} per split"
    text += f"), {num_classes} classes: "
    if column == "other":
        text += (
            "neither ModelNet10 nor ModelNet40 ('other'), so the paper's numbers are "
            "shown for reference only."
        )
    else:
        text += f"compared with the paper's {COLUMN_NAMES[column]} ({column}) column."
    return text


def model_summary(config: dict) -> str:
    model = config.get("model", {})
    if model.get("use_enhancer", True):
        text = f"enhancer, GE layer {model.get('enhancer_layer', 1)}"
    else:
        text = "no enhancer"
    return f"{text}, {model.get('resolution')}^3, width x{model.get('width_multiplier', 1.0):g}"


def weights_summary(source: dict) -> str:
    if source.get("checkpoint") == "random_init":
        return "random init (the floor)"
    return f"{os.path.basename(source.get('checkpoint', ''))} (step {source.get('step')})"


def setting_notes(sources: dict[str, dict], data: EvalData) -> list[str]:
    """Reasons why our numbers are not the paper's setting."""
    notes = []
    scaled: dict[tuple, list[str]] = {}
    for label, source in sources.items():
        model = source.get("config", {}).get("model", {})
        size = (model.get("resolution"), model.get("width_multiplier", 1.0))
        if size != (64, 1.0):
            scaled.setdefault(size, []).append(label)
    for (resolution, width), labels in scaled.items():
        notes.append(
            f"{', '.join(labels)}: {resolution}^3 at width x{width:g}, not the paper's 64^3 "
            "at full width."
        )
    if data.max_per_split:
        notes.append(
            f"At most {data.max_per_split} shapes per split (toy run), not the full splits."
        )
    if any(s.get("checkpoint") == "random_init" for s in sources.values()):
        notes.append(
            f"'{RANDOM_BASELINE_LABEL}' is DM with random weights: the floor a trained "
            "model has to beat (random conv features are already strong on voxels)."
        )
    return notes
