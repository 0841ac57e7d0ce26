"""Mean and spread of table results over repeated runs (seeds), and paired differences.

The table scripts (`experiments/table1.py`, `table2.py`, `table3.py`) write
one results folder per repetition, each with `<table>.json`. This module reads
those folders, groups the rows by label, and reports per label the mean, the
sample standard deviation, the range and the count.

Rows in one folder share a seed (same data order, same initial weights where
the runs allow it), so two labels are compared PAIRED by folder: for every
folder holding both labels, the difference a - b; then the mean of those
differences with its 95% Student-t interval (n - 1 degrees of freedom), n, and
each per-seed difference. The rule (`Comparison.verdict`): when the interval
excludes zero the sign of the difference is resolved at 95%; when it contains
zero the comparison is UNRESOLVED, and the interval says how large a
difference the data still allow. An unresolved comparison never means "the
same": with three seeds the interval is wide.
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
CONFIDENCE = 0.95


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
    """Label `a` against label `b`, paired by results folder (seed).

    Attributes:
      a, b: labels.
      differences: value(a) - value(b) in each folder holding both, in folder order.
      sources: those folders.
      ci_low, ci_high: the 95% t-interval of the mean difference (NaN when n < 2).
    """

    a: str
    b: str
    differences: tuple[float, ...]
    sources: tuple[str, ...]
    ci_low: float
    ci_high: float

    @property
    def n(self) -> int:
        return len(self.differences)

    @property
    def mean_difference(self) -> float:
        return float(np.mean(self.differences)) if self.differences else float("nan")

    @property
    def resolved(self) -> bool:
        """True when the 95% interval excludes zero."""
        return not math.isnan(self.ci_low) and (self.ci_low > 0 or self.ci_high < 0)

    @property
    def verdict(self) -> str:
        if self.n < 2:
            return f"unresolved: {self.n} paired seed(s), no interval"
        if self.resolved:
            return (
                f"{self.a} {'higher' if self.mean_difference > 0 else 'lower'} (95% CI excludes 0)"
            )
        return "unresolved: 95% CI includes 0"

    def to_dict(self) -> dict[str, Any]:
        def finite(x: float) -> float | None:
            return None if math.isnan(x) else x

        return {
            "a": self.a,
            "b": self.b,
            "n": self.n,
            "differences": list(self.differences),
            "sources": list(self.sources),
            "mean_difference": finite(self.mean_difference),
            "ci95": [finite(self.ci_low), finite(self.ci_high)],
            "resolved": self.resolved,
            "verdict": self.verdict,
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


def paired(a: Summary, b: Summary, confidence: float = CONFIDENCE) -> Comparison:
    """a - b per shared folder, with the t-interval of the mean difference.

    The interval is mean(d) ± t_{(1+confidence)/2, n-1} · sd(d) / sqrt(n),
    sd with ddof=1; NaN bounds when fewer than two folders hold both labels.
    """
    from scipy import stats

    b_by_source = dict(zip(b.sources, b.values))
    pairs = [(s, va - b_by_source[s]) for s, va in zip(a.sources, a.values) if s in b_by_source]
    differences = tuple(d for _, d in pairs)
    sources = tuple(s for s, _ in pairs)
    n = len(differences)
    if n < 2:
        return Comparison(a.label, b.label, differences, sources, float("nan"), float("nan"))
    mean = float(np.mean(differences))
    half = (
        float(stats.t.ppf((1 + confidence) / 2, n - 1))
        * float(np.std(differences, ddof=1))
        / math.sqrt(n)
    )
    return Comparison(a.label, b.label, differences, sources, mean - half, mean + half)


def compare_all(summaries: Sequence[Summary]) -> list[Comparison]:
    """Every ordered pair (earlier label first), as `paired`."""
    return [
        paired(summaries[i], summaries[j])
        for i in range(len(summaries))
        for j in range(i + 1, len(summaries))
    ]


def _fmt(x: float) -> str:
    return "—" if math.isnan(x) else f"{x:.2f}"


def summary_markdown(table: str, summaries: Sequence[Summary], comparisons) -> str:
    """A markdown section: mean ± std per label, then the paired differences."""
    from enhancer_gan.evaluation.report import markdown_table

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
                c.n,
                f"{c.mean_difference:+.2f}",
                f"[{_fmt(c.ci_low)}, {_fmt(c.ci_high)}]",
                ", ".join(f"{d:+.2f}" for d in c.differences),
                c.verdict,
            ]
            for c in comparisons
        ]
        header = ["paired difference", "n", "mean (points)", "95% CI", "per seed", "verdict"]
        lines.append(markdown_table(header, pairs))
    return "\n".join(lines)
