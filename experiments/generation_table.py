"""Markdown table of generation reports: samples beside their ceiling, with the demo's targets.

  python experiments/generation_table.py docs/results_demo/seed*.json > docs/results_demo/table.md
  python experiments/generation_table.py --by=category docs/results_generation/*.json

Each input is a JSON report of `evaluation.generation_eval.evaluate_run_generation`
(train.py --evaluate_generation, tools/evaluate_generation.py, or a list of
them from experiments/compare_sampling.py: the first of the list is used).
`--by=seed` (default) prints mean ± std over the reports and each one's check
against the demo's targets (docs/RESULTS.md#generation); `--by=category`
prints one row per report; `--by=sampling` one row per sampling mode and
weights (average or last iterate) of compare_sampling's lists, averaged over
the files.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np
from scipy import stats

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

from experiments._cli import flags_parser  # noqa: E402

flags.DEFINE_enum(
    "by",
    "seed",
    ["seed", "category", "sampling"],
    "Rows: one per measure, one per file, or one per sampling mode (mean over the files).",
)
FLAGS = flags.FLAGS

MEASURES = (
    ("cov", "COV"),
    ("mmd", "MMD"),
    ("one_nna", "1-NNA"),
    ("generated_components", "components / grid"),
    ("generated_many_pieces_fraction", "share in > 3 pieces"),
    ("generated_largest_share", "largest piece"),
    ("generated_undecided", "undecided voxels"),
    ("generated_mean_occupancy", "occupancy"),
)


def targets(report: dict) -> dict[str, bool]:
    """The demo's targets (issue 18): COV >= 0.75 ceiling, 1-NNA <= 0.85, speckle limits."""
    ceiling = report["ceiling"]
    return {
        "COV >= 0.75 ceiling": report["cov"] >= 0.75 * ceiling["cov"],
        "1-NNA <= 0.85": report["one_nna"] <= 0.85,
        "components <= 2.0": report["generated_components"] <= 2.0,
        "> 3 pieces <= 15%": report["generated_many_pieces_fraction"] <= 0.15,
    }


def load(path: str, every: bool = False):
    """The file's report (the first of a list), or with `every` all of them as a list."""
    with open(path) as f:
        report = json.load(f)
    if every:
        return report if isinstance(report, list) else [report]
    return report[0] if isinstance(report, list) else report


def by_sampling(paths: list[str]) -> str:
    """Mean over the files of each (sampling mode, weights) the files hold."""
    rows: dict[tuple[str, bool], list[dict]] = {}
    for path in paths:
        for r in load(path, every=True):
            rows.setdefault((r["sampling"], bool(r.get("averaged"))), []).append(r)
    head = " | ".join(label for _, label in MEASURES)
    lines = [f"| sampling | weights | runs | {head} |", "|---|---|---|" + "---|" * len(MEASURES)]
    for (mode, averaged), reports in rows.items():
        cells = " | ".join(f"{np.mean([r[k] for r in reports]):.3f}" for k, _ in MEASURES)
        weights = "average" if averaged else "last iterate"
        lines.append(f"| {mode} | {weights} | {len(reports)} | {cells} |")
    pairs = [(a, b) for a, b in zip(*(rows.get(("recalibrated", w), []) for w in (True, False)))]
    if len(pairs) >= 2:  # the files are runs of different seeds: pair them
        lines += [
            "",
            "| average minus last iterate (recalibrated, paired) | mean [95% t-interval] |",
        ]
        lines.append("|---|---|")
        for key, label in MEASURES[:5]:
            diff = np.array([a[key] - b[key] for a, b in pairs])
            half = stats.t.ppf(0.975, len(diff) - 1) * diff.std(ddof=1) / np.sqrt(len(diff))
            lines.append(
                f"| {label} | {diff.mean():+.3f} [{diff.mean() - half:+.3f}, "
                f"{diff.mean() + half:+.3f}] |"
            )
    return "\n".join(lines)


def by_seed(reports: list[dict], names: list[str]) -> str:
    lines = [
        f"| measure | samples (mean ± std, {len(reports)} runs) | ceiling | "
        + " | ".join(names)
        + " |",
        "|---|---|---|" + "---|" * len(names),
    ]
    for key, label in MEASURES:
        values = np.array([r[key] for r in reports])
        ceiling = np.mean([r["ceiling"][key] for r in reports])
        spread = f"{values.mean():.3f} ± {values.std(ddof=1) if len(values) > 1 else 0:.3f}"
        each = " | ".join(f"{v:.3f}" for v in values)
        lines.append(f"| {label} | {spread} | {ceiling:.3f} | {each} |")
    checks = [targets(r) for r in reports]
    for name in checks[0]:
        marks = " | ".join("yes" if c[name] else "**no**" for c in checks)
        lines.append(
            f"| target: {name} | {sum(c[name] for c in checks)}/{len(checks)} | | {marks} |"
        )
    return "\n".join(lines)


def by_category(reports: list[dict], names: list[str]) -> str:
    head = " | ".join(label for _, label in MEASURES[:5])
    lines = [
        f"| run | held-out | {head} | ceiling COV | ceiling 1-NNA |",
        "|---|---|" + "---|" * 7,
    ]
    for name, r in zip(names, reports):
        cells = " | ".join(f"{r[key]:.3f}" for key, _ in MEASURES[:5])
        c = r["ceiling"]
        lines.append(
            f"| {name} | {r['num_real']} | {cells} | {c['cov']:.3f} | {c['one_nna']:.3f} |"
        )
    return "\n".join(lines)


def main(argv):
    paths = argv[1:]
    if not paths:
        print("error: give one or more report JSON files", file=sys.stderr)
        return 2
    try:
        reports = [load(p) for p in paths]
        missing = [p for p, r in zip(paths, reports) if not r.get("ceiling")]
    except (OSError, ValueError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if missing:
        print(f"error: {missing[0]}: the report has no ceiling row", file=sys.stderr)
        return 2
    names = [os.path.splitext(os.path.basename(p))[0] for p in paths]
    if FLAGS.by == "sampling":
        print(by_sampling(paths))
    elif FLAGS.by == "seed":
        print(by_seed(reports, names))
    else:
        print(by_category(reports, names))
    return 0


if __name__ == "__main__":
    app.run(main, flags_parser=flags_parser(FLAGS))
