"""The recipe table of docs/RESULTS.md: every row over seeds, paired with the floor.

  python experiments/recipe_table.py \
      --results_dirs=results/mn10_small/seed0,results/mn10_small/seed1,results/mn10_small/seed2 \
      --output=results/mn10_small/recipes.md

Each results folder is one seed: `table1.json` and `table2.json` of the table
scripts (run with --random_baseline, so the floor `random_init` is a row) and,
where present, `generation_<label>.json` of tools/evaluate_generation.py
(coverage and MMD of the row's samples). Or, as the long protocol writes
them (experiments/reproduce_mn10_long.sh PART=claims), one subfolder per run,
each with its own tables and the floor: their rows are merged. The
standardised and block-L2 mAP come from table2.json (older tables: the
standardised one from the features, `features/<label>/{train,test}.npz`).

Per row: the mean ± std over seeds of SVM accuracy, raw, standardised and
block-L2 mAP, COV and MMD; and, paired by seed, the difference to the floor
and to the paper's recipe (`--reference`) with its 95% t-interval.

Beside the t-interval, McNemar's exact test on the test predictions
(`predictions/<label>.npz`, named by table1.json, see
enhancer_gan/evaluation/mcnemar.py): per seed n01 (row right, floor or
reference wrong), n10 (the reverse) and p, and the counts pooled over seeds.
Pooling counts each test shape once per seed, so its p is optimistic; the
t-interval over seeds is the primary statistic. Seeds from before the
predictions were saved show "—".
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

from enhancer_gan.errors import ConfigError, EnhancerGanError  # noqa: E402
from experiments._cli import flags_parser  # noqa: E402

flags.DEFINE_list("results_dirs", [], "One results folder per seed.")
flags.DEFINE_string("output", None, "Markdown file to write (a .json is written beside it).")
flags.DEFINE_string("floor", "random_init", "Label of the random-weight floor.")
flags.DEFINE_string("reference", "paper", "Label of the paper's recipe (second comparison).")
flags.DEFINE_bool("overwrite", False, "Replace an existing output.")
FLAGS = flags.FLAGS

COMPARED = ("svm", "map_raw", "map_std", "map_block_l2")  # paired with floor and reference
DELTA_NAMES = {"svm": "SVM", "map_raw": "mAP raw", "map_std": "mAP std", "map_block_l2": "block-L2"}
METRICS = (
    ("svm", "SVM acc. (%)"),
    ("map_raw", "mAP raw (%)"),
    ("map_std", "mAP std. (%)"),
    ("map_block_l2", "mAP block-L2 (%)"),
    ("cov", "COV"),
    ("mmd", "MMD"),
)


def table_folders(folder: str) -> list[str]:
    """The folders holding one seed's tables: `folder` itself, or its row subfolders.

    A seed folder holds table1.json and table2.json of all its rows, or (the
    long protocol scores each run the moment it finishes, on its own, beside
    the floor) one subfolder per run, whose rows are merged.
    """
    if os.path.isfile(os.path.join(folder, "table1.json")):
        return [folder]
    subs = sorted(
        os.path.join(folder, name)
        for name in (os.listdir(folder) if os.path.isdir(folder) else ())
        if os.path.isfile(os.path.join(folder, name, "table1.json"))
    )
    return subs or [folder]  # read_table names the missing file


def _read_rows(folder: str) -> dict[str, dict[str, float]]:
    """{label: {metric: value}} of one folder's tables (and generation reports)."""
    from enhancer_gan.evaluation.diagnostics import retrieval_scalings
    from enhancer_gan.evaluation.features import load_features
    from enhancer_gan.evaluation.seeds import read_table

    t1, t2 = read_table(folder, "table1"), read_table(folder, "table2")
    rows: dict[str, dict[str, float]] = {}
    for label in t1["order"]:
        rows.setdefault(label, {})["svm"] = float(t1["runs"][label]["accuracy_pct"])
    for label in t2["order"]:
        run, row = t2["runs"][label], rows.setdefault(label, {})
        row["map_raw"] = float(run["map_pct"])
        for metric in ("map_std", "map_block_l2"):
            if isinstance(run.get(f"{metric}_pct"), (int, float)):
                row[metric] = float(run[f"{metric}_pct"])
    for label in rows:
        paths = [os.path.join(folder, "features", label, f"{s}.npz") for s in ("train", "test")]
        if "map_std" not in rows[label] and all(os.path.isfile(p) for p in paths):
            scal = retrieval_scalings(*(load_features(p) for p in paths))  # older table2.json
            rows[label]["map_std"] = scal["standardized"]
        gen = os.path.join(folder, f"generation_{label}.json")
        if os.path.isfile(gen):
            with open(gen) as f:
                report = json.load(f)
            rows[label]["cov"], rows[label]["mmd"] = float(report["cov"]), float(report["mmd"])
    return rows


def read_seed(folder: str) -> dict[str, dict[str, float]]:
    """{label: {metric: value}} of one seed (see `table_folders`).

    A row met in several subfolders (the floor, scored beside every run) is
    taken from the first in name order; a warning says when their scores
    differ. They do for runs without the enhancer: without GE, DM's initial
    weights are other draws of the same seed, an equally valid floor that
    each such run's own folder shows beside it.
    """
    merged: dict[str, dict[str, float]] = {}
    for sub in table_folders(folder):
        for label, row in _read_rows(sub).items():
            if label not in merged:
                merged[label] = row
            elif any(abs(row[m] - merged[label][m]) > 0.01 for m in row if m in merged[label]):
                logging.warning("%s: its %s differs from the first folder's; kept that", sub, label)
    return merged


def read_predictions(folder: str) -> dict[str, str]:
    """{label: path} of the Table 1 predictions files of one seed that exist."""
    from enhancer_gan.evaluation.seeds import read_table

    out = {}
    for sub in table_folders(folder):
        t1 = read_table(sub, "table1")
        for label in t1["order"]:
            relative = t1["runs"][label].get("predictions_file")
            path = os.path.join(sub, relative) if isinstance(relative, str) else ""
            if label not in out and os.path.isfile(path):
                out[label] = path
    return out


def mcnemar_pair(label: str, base: str, per_seed: dict, predictions: dict) -> dict:
    """McNemar of `label` against `base` in every seed holding both rows, and pooled.

    Returns:
      {'per_seed': [(folder, McNemarResult or None when a file is missing)],
       'pooled': McNemarResult over the seeds with both files, or None}.
    """
    from enhancer_gan.evaluation.mcnemar import mcnemar, mcnemar_pooled, paired_predictions

    seeds, items = [], []
    for folder, rows in per_seed.items():
        if "svm" not in rows.get(label, {}) or "svm" not in rows.get(base, {}):
            continue
        paths = predictions[folder]
        if label in paths and base in paths:
            items.append(paired_predictions(paths[label], paths[base]))
            seeds.append((folder, mcnemar(*items[-1])))
        else:
            seeds.append((folder, None))
    return {"per_seed": seeds, "pooled": mcnemar_pooled(items) if items else None}


def build(results_dirs, floor: str, reference: str) -> dict:
    """Summaries per label and metric, and paired comparisons to floor and reference."""
    from enhancer_gan.evaluation.seeds import Summary, paired

    per_seed = {folder: read_seed(folder) for folder in results_dirs}
    labels: list[str] = []
    for rows in per_seed.values():
        labels += [label for label in rows if label not in labels]
    summaries: dict[str, dict[str, Summary]] = {}
    for label in labels:
        for metric, _ in METRICS:
            items = [
                (rows[label][metric], folder)
                for folder, rows in per_seed.items()
                if metric in rows.get(label, {})
            ]
            if items:
                summaries.setdefault(label, {})[metric] = Summary(
                    label, tuple(v for v, _ in items), tuple(s for _, s in items)
                )
    predictions = {folder: read_predictions(folder) for folder in results_dirs}
    comparisons, mcnemar = {}, {}
    for label in labels:
        for base in (floor, reference):
            if label == base or base not in summaries:
                continue
            for metric in COMPARED:
                a, b = summaries[label].get(metric), summaries[base].get(metric)
                if a and b:
                    comparisons[(label, base, metric)] = paired(a, b)
            if (label, base, "svm") in comparisons:
                mcnemar[(label, base)] = mcnemar_pair(label, base, per_seed, predictions)
    return {
        "labels": labels,
        "summaries": summaries,
        "comparisons": comparisons,
        "mcnemar": mcnemar,
    }


def _cell(summary) -> str:
    if summary is None:
        return "—"
    digits = 3 if summary.label and max(abs(v) for v in summary.values) < 2 else 2
    std = "" if math.isnan(summary.std) else f" ± {summary.std:.{digits}f}"
    return f"{summary.mean:.{digits}f}{std}"


def _diff(c) -> str:
    if c is None:
        return "—"
    if math.isnan(c.ci_low):
        return f"{c.mean_difference:+.2f}"
    mark = " ✓" if c.resolved and c.mean_difference > 0 else (" ✗" if c.resolved else "")
    return f"{c.mean_difference:+.2f} [{c.ci_low:+.2f}, {c.ci_high:+.2f}]{mark}"


def _p(p: float) -> str:
    return f"{p:.3g}" if p >= 1e-3 else f"{p:.1e}"


def _mcnemar_cell(r) -> str:
    return "—" if r is None else f"{r.n01} / {r.n10} (p={_p(r.p_value)})"


def _pooled_cell(r) -> str:
    if r is None:
        return "—"
    return f"{r.n01} / {r.n10} ({r.groups} seed{'s' if r.groups != 1 else ''})"


def mcnemar_markdown(result: dict, floor: str, reference: str) -> str | None:
    """The McNemar table: each row against the floor (and the reference), per seed and pooled."""
    from enhancer_gan.evaluation.report import markdown_table

    rows = []
    for (label, base), m in result["mcnemar"].items():
        if base == reference and label == floor:
            continue  # shown as the reference against the floor
        pooled = m["pooled"]
        rows.append(
            [
                label,
                base,
                "; ".join(_mcnemar_cell(r) for _, r in m["per_seed"]),
                _pooled_cell(pooled),
                "—" if pooled is None else f"{pooled.difference_pct:+.2f}",
                "—" if pooled is None else _p(pooled.p_value),
            ]
        )
    if not rows:
        return None
    header = [
        "run",
        "vs",
        "per seed: n01 / n10 (p)",
        "pooled n01 / n10",
        "pooled Δ acc. (points)",
        "pooled p",
    ]
    return markdown_table(header, rows)


def markdown(result: dict, floor: str, reference: str) -> str:
    from enhancer_gan.evaluation.report import markdown_table

    s, c = result["summaries"], result["comparisons"]
    rows = []
    for label in result["labels"]:
        row = [label, max(x.count for x in s[label].values())]
        row += [_cell(s[label].get(m)) for m, _ in METRICS]
        row += [_diff(c.get((label, floor, m))) for m in COMPARED]
        rows.append(row)
    header = ["run", "seeds"] + [name for _, name in METRICS]
    header += [f"Δ {DELTA_NAMES[m]} vs {floor}" for m in COMPARED]
    text = [markdown_table(header, rows)]
    ref_rows = [
        [label] + [_diff(c.get((label, reference, m))) for m in COMPARED]
        for label in result["labels"]
        if label not in (floor, reference) and (label, reference, "svm") in c
    ]
    if ref_rows:
        header = ["run"] + [f"Δ {DELTA_NAMES[m]} vs {reference}" for m in COMPARED]
        text.append(markdown_table(header, ref_rows))
    notes = [
        "Mean ± std over seeds; Δ: mean paired difference (points) with its 95% "
        "t-interval over seeds; ✓/✗: the interval excludes 0 (higher/lower)."
    ]
    table = mcnemar_markdown(result, floor, reference)
    if table:
        text.append(table)
        notes.append(
            "McNemar on the test predictions: n01 = test shapes the run classifies right "
            "and the other row wrong, n10 the reverse; p = exact two-sided binomial test of "
            "n01 out of n01 + n10 (seeds in folder order; — = no predictions file, older "
            "results). Pooled: the counts summed over seeds, so each test shape counts once "
            "per seed and the pooled p is optimistic; the t-interval over seeds is the "
            "primary statistic."
        )
    text.append(" ".join(notes))
    return "\n\n".join(text) + "\n"


def mcnemar_json(result: dict) -> list[dict]:
    """The McNemar comparisons for the JSON: per seed (None = missing file) and pooled."""
    return [
        {
            "a": label,
            "b": base,
            "per_seed": [
                {"source": folder, "result": None if r is None else r.to_dict()}
                for folder, r in m["per_seed"]
            ],
            "pooled": None if m["pooled"] is None else m["pooled"].to_dict(),
        }
        for (label, base), m in result["mcnemar"].items()
    ]


def main(argv):
    if len(argv) > 1:
        print(f"error: unexpected arguments {argv[1:]}", file=sys.stderr)
        return 2
    try:
        from enhancer_gan.io_utils import atomic_write_json, atomic_write_text, check_can_write

        if not FLAGS.results_dirs or not FLAGS.output:
            raise ConfigError("--results_dirs and --output are required")
        check_can_write(FLAGS.output, FLAGS.overwrite)
        result = build(FLAGS.results_dirs, FLAGS.floor, FLAGS.reference)
        text = markdown(result, FLAGS.floor, FLAGS.reference)
        os.makedirs(os.path.dirname(os.path.abspath(FLAGS.output)), exist_ok=True)
        atomic_write_text(FLAGS.output, text)
        payload = {
            "summaries": {
                label: {m: s.to_dict() for m, s in per.items()}
                for label, per in result["summaries"].items()
            },
            "comparisons": [
                dict(c.to_dict(), metric=m) for (_, _, m), c in result["comparisons"].items()
            ],
            "mcnemar": mcnemar_json(result),
        }
        atomic_write_json(os.path.splitext(FLAGS.output)[0] + ".json", payload)
        print(text, end="")
        print(f"Wrote {FLAGS.output}")
    except (EnhancerGanError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    app.run(main, flags_parser=flags_parser(FLAGS))
