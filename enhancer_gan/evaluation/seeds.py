"""Mean and spread of table results over repeated runs (seeds).

The table scripts (`experiments/table1.py`, `table2.py`, `table3.py`) write
one results folder per repetition, each with `<table>.json`. This module reads
those folders, groups the rows by label, and reports per label the mean, the
sample standard deviation, the range and the count, plus Welch's t-test
between pairs of labels, so that a difference can be called real or within
the noise with a stated rule rather than by eye.

The rule (`within_noise`): a difference is within the noise when Welch's
two-sided p-value is 0.05 or more, or when either side has fewer than two
repetitions (no spread can be estimated from one number).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from enhancer_gan.errors import ConfigError, DataError

# table name -> the per-run metric in its JSON, and what to call it.
TABLE_METRICS = {
    "table1": ("accuracy_pct", "classification accuracy (%)"),
    "table2": ("map_pct", "retrieval mAP (%)"),
    "table3": ("accuracy_pct", "classification accuracy (%)"),
}
NOISE_P_VALUE = 0.05


@dataclasses.dataclass(frozen=True)
class Summary:
    """One label's metric over its repetitions.

    Attributes:
      label: the row label ('with_enhancer', 'random_init', ...).
      values: the metric of each repetition, in the order of the folders.
      sources: the results folder each value came from.
    """

    label: str
    values: tuple[float, ...]
    sources: tuple[str, ...]

    @property
    def count(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return float(np.mean(self.values))

    @property
    def std(self) -> float:
        """Sample standard deviation (ddof=1); NaN for a single value."""
        return float(np.std(self.values, ddof=1)) if self.count > 1 else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "values": list(self.values),
            "sources": list(self.sources),
            "count": self.count,
            "mean": self.mean,
            "std": None if math.isnan(self.std) else self.std,
            "min": min(self.values),
            "max": max(self.values),
        }


@dataclasses.dataclass(frozen=True)
class Comparison:
    """Welch's t-test of label `a` against label `b`.

    Attributes:
      a, b: labels.
      difference: mean(a) - mean(b), in the metric's units.
      p_value: two-sided Welch p-value (NaN when either side has one value).
    """

    a: str
    b: str
    difference: float
    p_value: float

    @property
    def within_noise(self) -> bool:
        return math.isnan(self.p_value) or self.p_value >= NOISE_P_VALUE

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "difference": self.difference,
            "p_value": None if math.isnan(self.p_value) else self.p_value,
            "within_noise": self.within_noise,
        }


def read_table(results_dir: str, table: str) -> dict:
    """`<results_dir>/<table>.json`, checked to be a table of that name."""
    if table not in TABLE_METRICS:
        raise ConfigError(f"table must be one of {', '.join(TABLE_METRICS)}, got {table!r}")
    path = os.path.join(results_dir, f"{table}.json")
    try:
        with open(path, encoding="utf-8") as f:
            payload = json.load(f)
    except FileNotFoundError:
        raise DataError(path, f"no {table} results here (run experiments/{table}.py)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(path, f"cannot read table results: {e}") from None
    metric = TABLE_METRICS[table][0]
    runs = payload.get("runs") if isinstance(payload, dict) else None
    order = payload.get("order") if isinstance(payload, dict) else None
    if payload.get("table") != table or not isinstance(runs, dict) or not isinstance(order, list):
        raise DataError(path, f"not a {table} results file")
    for label in order:
        value = runs.get(label, {}).get(metric) if isinstance(runs.get(label), dict) else None
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            raise DataError(path, f"run {label!r} has no finite {metric}")
    return payload


def summarize(results_dirs: Sequence[str], table: str) -> list[Summary]:
    """Groups the rows of `table` over the folders by label, in first-seen order.

    Raises:
      ConfigError: no folders given.
      DataError: a folder without a readable `<table>.json`.
    """
    if not results_dirs:
        raise ConfigError("give at least one results folder")
    metric = TABLE_METRICS[table][0] if table in TABLE_METRICS else None
    values: dict[str, list[tuple[float, str]]] = {}
    for folder in results_dirs:
        payload = read_table(folder, table)
        for label in payload["order"]:
            values.setdefault(label, []).append((float(payload["runs"][label][metric]), folder))
    return [
        Summary(label, tuple(v for v, _ in items), tuple(s for _, s in items))
        for label, items in values.items()
    ]


def welch(a: Summary, b: Summary) -> Comparison:
    """Welch's unequal-variance t-test between two labels' repetitions."""
    from scipy import stats

    difference = a.mean - b.mean
    if a.count < 2 or b.count < 2:
        return Comparison(a.label, b.label, difference, float("nan"))
    if np.std(a.values) == 0 and np.std(b.values) == 0:
        p = 1.0 if difference == 0 else 0.0
    else:
        p = float(stats.ttest_ind(a.values, b.values, equal_var=False).pvalue)
    return Comparison(a.label, b.label, difference, p)


def compare_all(summaries: Sequence[Summary]) -> list[Comparison]:
    """Every ordered pair (earlier label first), as `welch`."""
    return [
        welch(summaries[i], summaries[j])
        for i in range(len(summaries))
        for j in range(i + 1, len(summaries))
    ]


def _fmt(x: float) -> str:
    return "—" if math.isnan(x) else f"{x:.2f}"


def summary_markdown(table: str, summaries: Sequence[Summary], comparisons) -> str:
    """A markdown section: mean ± std per label, then the pairwise tests."""
    from enhancer_gan.evaluation.tables import markdown_table

    name = TABLE_METRICS[table][1]
    rows = [
        [
            s.label,
            s.count,
            f"{s.mean:.2f} ± {_fmt(s.std)}",
            f"{min(s.values):.2f} – {max(s.values):.2f}",
            ", ".join(f"{v:.2f}" for v in s.values),
        ]
        for s in summaries
    ]
    lines = [
        markdown_table(["run", "repetitions", f"{name}: mean ± std", "range", "each"], rows),
    ]
    if comparisons:
        pairs = [
            [
                f"{c.a} − {c.b}",
                f"{c.difference:+.2f}",
                _fmt(c.p_value),
                "within the noise" if c.within_noise else "real (p < 0.05)",
            ]
            for c in comparisons
        ]
        lines.append(markdown_table(["difference", "points", "Welch p", "verdict"], pairs))
    return "\n".join(lines)
