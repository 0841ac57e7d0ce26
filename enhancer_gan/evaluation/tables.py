"""The paper's Tables 1-3 and Figure 4: its numbers, ours, and the files.

This module runs the pipeline the experiment scripts call: features of each
run (`feature_cache.run_features`, reused when they came from the same run,
checkpoint and data; optionally a stratified subsample, `subsets`), then the
linear SVM (`classification.classify`) or retrieval
(`retrieval.retrieval_map`), then the files (`report`): `<name>.md` puts our
numbers beside the paper's (`paper`), `<name>.json` holds everything,
figures go next to them. Table 1 also keeps each run's test predictions
(`predictions/<label>.npz`, see `mcnemar`) for McNemar's test between rows.

Which paper row a run sits beside is read from the run's config, not from
its label: a run without the enhancer is compared with "without enhancer",
one with the enhancer on GE's layer 1 with "with enhancer" (Tables 1-2); in
Table 3 the label must name the run's layer ('none', 'layer1'..'layer3') and
a mismatch is an error. Which column (ModelNet10 or ModelNet40) is read from
the number of classes of the evaluation data: 10 -> MN10, 40 -> MN40, else
'other' (both of the paper's columns are shown, and the data differ).

This module must not import TensorFlow at import time (the extraction that
needs it is imported inside the functions that run it).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence

import numpy as np

from enhancer_gan.evaluation.diagnostics import retrieval_scalings
from enhancer_gan.evaluation.feature_cache import EvalData, run_features
from enhancer_gan.evaluation.mcnemar import predictions_file
from enhancer_gan.evaluation.paper import (
    COLUMN_NAMES,
    TABLE1,
    TABLE2,
    TABLE3,
    PaperTable,
    dataset_column,
    paper_key,
)
from enhancer_gan.evaluation.report import (
    check_outputs,
    describe_data,
    markdown_table,
    model_summary,
    paper_cell,
    paper_table_markdown,
    pct,
    setting_notes,
    table_outputs,
    weights_summary,
    write_table,
)
from enhancer_gan.evaluation.run_specs import RunSpec, check_table3_labels

logger = logging.getLogger(__name__)


def _num_classes(splits: dict[str, dict]) -> int:
    return int(np.unique(np.concatenate([s["labels"] for s in splits.values()])).size)


# ----------------------------------------------------------------------------
# Tables 1 and 3: classification.


def _classification_rows(
    specs: Sequence[RunSpec],
    data: EvalData,
    results_dir: str,
    *,
    c_values,
    cv_folds: int,
    batch_size: int,
    overwrite: bool,
    progress: bool,
    log,
):
    """Features + linear SVM for every run. Returns label -> (features, report)."""
    from enhancer_gan.evaluation.classification import classify

    out = {}
    for spec in specs:
        feats = run_features(
            spec,
            data,
            os.path.join(results_dir, "features"),
            ("train", "test"),
            batch_size=batch_size,
            overwrite=overwrite,
            progress=progress,
            log=log,
        )
        train, test = feats["train"], feats["test"]
        names = train["class_names"]
        classes = np.unique(train["labels"])
        class_names = [names[c] if c < len(names) else f"class_{c}" for c in classes]
        log(f"{spec.label}: linear SVM on {train['features'].shape} train features")
        report = classify(
            train["features"],
            train["labels"],
            test["features"],
            test["labels"],
            c_values=c_values,
            cv_folds=cv_folds,
            seed=data.seed,
            class_names=class_names,
        )
        log(
            f"{spec.label}: accuracy {100 * report.accuracy:.2f}%, "
            f"mean class accuracy {100 * report.mean_class_accuracy:.2f}% (C={report.chosen_c:g})"
        )
        out[spec.label] = (feats, report)
    return out


def _classification_table(
    table: PaperTable,
    specs: Sequence[RunSpec],
    data: EvalData,
    results_dir: str,
    figures: bool,
    *,
    predictions: bool = False,
    c_values,
    cv_folds: int,
    batch_size: int,
    overwrite: bool,
    progress: bool,
    log,
) -> dict:
    """Table 1 or 3: every run's features and SVM, the rows, the figures, the files.

    With `predictions`, each run's test labels and predictions also go to
    `predictions/<label>.npz` (`mcnemar.save_predictions`), named in its JSON
    entry as `predictions_file` (relative to `results_dir`).
    """
    figure_names = [
        f"{kind}_{s.label}.png" for s in specs for kind in ("confusion", "per_class") if figures
    ]
    prediction_names = [predictions_file(s.label) for s in specs] if predictions else []
    check_outputs(
        results_dir, table_outputs(table.name, figure_names + prediction_names), overwrite
    )
    results = _classification_rows(
        specs,
        data,
        results_dir,
        c_values=c_values,
        cv_folds=cv_folds,
        batch_size=batch_size,
        overwrite=overwrite,
        progress=progress,
        log=log,
    )
    first = next(iter(results.values()))[0]
    num_classes = _num_classes(first)
    column = dataset_column(num_classes)
    counts = {s: int(first[s]["labels"].size) for s in ("train", "test")}
    rows, runs, sources = [], {}, {}
    for spec in specs:
        feats, report = results[spec.label]
        sources[spec.label] = feats["test"]["source"]
        row, runs[spec.label] = _classification_entry(
            table, spec, sources[spec.label], report, column
        )
        runs[spec.label]["features"] = {
            s: os.path.join(results_dir, "features", spec.label, f"{s}.npz")
            for s in ("train", "test")
        }
        if figures:
            runs[spec.label]["figures"] = _classification_figures(
                spec.label, report, column, results_dir
            )
        if predictions:
            runs[spec.label]["predictions_file"] = _save_test_predictions(
                spec.label, feats["test"], report, results_dir
            )
        rows.append(row)
    notes = setting_notes(sources, data)
    markdown = _classification_markdown(table, data, num_classes, column, counts, rows, notes)
    payload = {
        "table": table.name,
        "metric": table.metric,
        "data": dict(data.to_dict(), num_classes=num_classes, column=column, counts=counts),
        "runs": runs,
        "order": [s.label for s in specs],
        "paper": table.to_dict(),
        "notes": notes,
    }
    write_table(results_dir, table.name, markdown, payload, overwrite)
    return payload


_CLASSIFICATION_HEADER = [
    "run",
    "model",
    "weights",
    "train / test",
    "features",
    "C",
    "accuracy (%)",
    "mean class accuracy (%)",
]


def _paper_header(column: str) -> str:
    return f"paper {column if column != 'other' else 'MN10 / MN40'} (%)"


def _paper_of(table: PaperTable, spec: RunSpec, source: dict, column: str):
    """(the run's config, its paper cell, the paper's number or None) for one run."""
    config = source.get("config", {})
    key = None if spec.random_init else paper_key(config.get("model", {}), table.name)
    cell, paper = paper_cell(table, key, column)
    return config, cell, paper


def _run_entry(spec: RunSpec, source: dict, config: dict) -> dict:
    """What every table's JSON says of a run, before its results."""
    return {
        "run_dir": spec.run_dir,
        "random_init": spec.random_init,
        "checkpoint": source.get("checkpoint"),
        "step": source.get("step"),
        "model": config.get("model", {}),
    }


def _classification_entry(table, spec, source, report, column) -> tuple[list[str], dict]:
    """One run's markdown row and JSON entry of Table 1 or 3 (features added by the caller)."""
    config, cell, paper = _paper_of(table, spec, source, column)
    row = [
        spec.label,
        model_summary(config),
        weights_summary(source),
        f"{report.num_train} / {report.num_test}",
        f"{report.num_features:,}",
        f"{report.chosen_c:g}",
        pct(100 * report.accuracy),
        pct(100 * report.mean_class_accuracy),
        cell,
    ]
    entry = _run_entry(spec, source, config)
    entry.update(
        accuracy_pct=100 * report.accuracy,
        mean_class_accuracy_pct=100 * report.mean_class_accuracy,
        paper=paper,
        classification=report.to_dict(),
    )
    return row, entry


def _classification_figures(label: str, report, column: str, results_dir: str) -> dict:
    """confusion_<label>.png and per_class_<label>.png; returns their paths."""
    from enhancer_gan.evaluation.plots import plot_confusion_matrix, plot_per_class_accuracy

    class_names = list(report.class_names)
    confusion = os.path.join(results_dir, f"confusion_{label}.png")
    per_class = os.path.join(results_dir, f"per_class_{label}.png")
    plot_confusion_matrix(
        report.confusion,
        class_names,
        confusion,
        title=f"{label}: {100 * report.accuracy:.2f}% ({column})",
    )
    plot_per_class_accuracy(
        report.per_class_accuracy,
        class_names,
        per_class,
        title=f"{label}: per-class accuracy ({column})",
    )
    return {"confusion": confusion, "per_class": per_class}


def _save_test_predictions(label: str, test: dict, report, results_dir: str) -> str:
    """predictions/<label>.npz: the test labels, predictions and model ids; returns its
    path relative to `results_dir` (for McNemar's test later, without refitting)."""
    from enhancer_gan.evaluation.mcnemar import save_predictions

    relative = predictions_file(label)
    save_predictions(
        os.path.join(results_dir, relative),
        test["labels"],
        report.predictions,
        test.get("model_ids"),
    )
    return relative


def _classification_markdown(table, data, num_classes, column, counts, rows, notes) -> str:
    number = table.name[-1]
    return _table_markdown(
        f"# Table {number}: {table.title}",
        "Linear SVM (C chosen by cross-validation on the train split) on DM's pooled "
        "conv features, trained on the train split; accuracy on the test split. "
        "The paper row beside each run is chosen from the run's config.",
        describe_data(data, num_classes, column, counts),
        _CLASSIFICATION_HEADER + [_paper_header(column)],
        rows,
        notes,
        f"## The paper's Table {number}",
        paper_table_markdown(table, show_supervised=table.name == "table1"),
    )


def _table_markdown(
    title, description, data_line, header, rows, notes, paper_title, paper_markdown
) -> str:
    """A table's .md: what was measured, on what, our rows, notes, the paper's table."""
    lines = [title, "", description, "", data_line, "", markdown_table(header, rows)]
    if notes:
        lines += ["Notes:", ""] + [f"- {n}" for n in notes] + [""]
    lines += [paper_title, "", paper_markdown]
    return "\n".join(lines)


def evaluate_table1(
    specs: Sequence[RunSpec],
    data: EvalData,
    results_dir: str,
    *,
    c_values=None,
    cv_folds: int = 3,
    batch_size: int = 32,
    overwrite: bool = False,
    progress: bool = False,
    log: Callable[[str], None] = logger.info,
) -> dict:
    """Table 1: features, linear SVM, table1.md/.json, confusion and per-class PNGs,
    and each run's test predictions in predictions/<label>.npz (for `mcnemar`).

    Args:
      specs: the runs (see `parse_runs`, `with_random_baseline`).
      data: the evaluation data.
      results_dir: where everything goes (features under features/).
      c_values: SVM C candidates (None = classification.DEFAULT_C_VALUES).
      cv_folds: folds of the cross-validation that picks C.

    Returns:
      the JSON payload written to table1.json.
    """
    from enhancer_gan.evaluation.classification import DEFAULT_C_VALUES

    return _classification_table(
        TABLE1,
        specs,
        data,
        results_dir,
        True,
        predictions=True,
        c_values=c_values or DEFAULT_C_VALUES,
        cv_folds=cv_folds,
        batch_size=batch_size,
        overwrite=overwrite,
        progress=progress,
        log=log,
    )


def evaluate_table3(
    specs: Sequence[RunSpec],
    data: EvalData,
    results_dir: str,
    *,
    c_values=None,
    cv_folds: int = 3,
    batch_size: int = 32,
    overwrite: bool = False,
    progress: bool = False,
    log: Callable[[str], None] = logger.info,
) -> dict:
    """Table 3: accuracy per GE layer ('none', 'layer1'..'layer3'); table3.md/.json.

    The labels must name the runs' configs (checked). Same arguments as
    `evaluate_table1`.
    """
    from enhancer_gan.evaluation.classification import DEFAULT_C_VALUES

    check_table3_labels(specs)
    return _classification_table(
        TABLE3,
        specs,
        data,
        results_dir,
        False,
        c_values=c_values or DEFAULT_C_VALUES,
        cv_folds=cv_folds,
        batch_size=batch_size,
        overwrite=overwrite,
        progress=progress,
        log=log,
    )


# ----------------------------------------------------------------------------
# Table 2 and Figure 4: retrieval.

FIGURE4 = "figure4_pr.png"


def evaluate_table2(
    specs: Sequence[RunSpec],
    data: EvalData,
    results_dir: str,
    *,
    batch_size: int = 32,
    overwrite: bool = False,
    progress: bool = False,
    log: Callable[[str], None] = logger.info,
) -> dict:
    """Table 2 and Figure 4: retrieval mAP on the test split, PR curves of all runs.

    Writes table2.md, table2.json and figure4_pr.png. Arguments as
    `evaluate_table1`.

    Returns:
      the JSON payload written to table2.json.
    """
    check_outputs(results_dir, table_outputs("table2", [FIGURE4]), overwrite)
    rows, runs, sources, curves = [], {}, {}, {}
    column, num_classes, count = None, 0, 0
    for spec in specs:
        feats, report = _retrieval_of(spec, data, results_dir, batch_size, overwrite, progress, log)
        test = feats["test"]
        scalings = retrieval_scalings(feats["train"], test, test["source"].get("block_sizes"))
        if column is None:
            num_classes = _num_classes(feats)
            column = dataset_column(num_classes)
            count = int(test["labels"].size)
        sources[spec.label] = test["source"]
        curves[spec.label] = report.pr_curve()
        row, runs[spec.label] = _retrieval_entry(spec, test["source"], report, scalings, column)
        rows.append(row)
        runs[spec.label]["features"] = {
            s: os.path.join(results_dir, "features", spec.label, f"{s}.npz")
            for s in ("train", "test")
        }
    figure = _plot_figure4(curves, column, results_dir)
    notes = setting_notes(sources, data)
    markdown = _table_markdown(
        f"# Table 2: {TABLE2.title}",
        "Every test shape queries the other test shapes, ranked by Euclidean distance "
        "of DM's pooled conv features; relevant = same class. Mean average precision "
        "(the paper's protocol, raw features); the precision-recall curves are in "
        f"`{FIGURE4}` (Figure 4). Beside it, the same retrieval on features "
        "standardised by the train split's per-feature mean and std, and with each of "
        "DM's pooled layers scaled to unit L2 norm (block-L2). The paper row beside "
        "each run is chosen from the run's config.",
        describe_data(data, num_classes, column, {"test": count}),
        [
            "run",
            "model",
            "weights",
            "queries",
            "mAP (%)",
            "std. (%)",
            "block-L2 (%)",
            _paper_header(column),
        ],
        rows,
        notes,
        "## The paper's Table 2",
        paper_table_markdown(TABLE2),
    )
    payload = {
        "table": "table2",
        "metric": TABLE2.metric,
        "data": dict(
            data.to_dict(), num_classes=num_classes, column=column, counts={"test": count}
        ),
        "runs": runs,
        "order": [s.label for s in specs],
        "figure4": figure,
        "paper": TABLE2.to_dict(),
        "notes": notes,
    }
    write_table(results_dir, "table2", markdown, payload, overwrite)
    return payload


def _retrieval_of(spec, data, results_dir, batch_size, overwrite, progress, log):
    """One run's features ({'train': ..., 'test': ...}) and its test split's retrieval report.

    The train split only fits the standardisation of the std. column.
    """
    from enhancer_gan.evaluation.retrieval import retrieval_map

    feats = run_features(
        spec,
        data,
        os.path.join(results_dir, "features"),
        ("train", "test"),
        batch_size=batch_size,
        overwrite=overwrite,
        progress=progress,
        log=log,
    )
    report = retrieval_map(feats["test"]["features"], feats["test"]["labels"])
    log(f"{spec.label}: retrieval mAP {100 * report.mean_average_precision:.2f}%")
    return feats, report


def _retrieval_entry(spec, source, report, scalings, column) -> tuple[list[str], dict]:
    """One run's markdown row and JSON entry of Table 2 (features added by the caller).

    `scalings`: `diagnostics.retrieval_scalings` of the run's features
    ('block_l2' absent for feature files that do not record their blocks).
    """
    config, cell, paper = _paper_of(TABLE2, spec, source, column)
    block_l2 = scalings.get("block_l2")
    row = [
        spec.label,
        model_summary(config),
        weights_summary(source),
        f"{report.num_queries} ({report.num_skipped} skipped)",
        pct(100 * report.mean_average_precision),
        pct(scalings["standardized"]),
        "—" if block_l2 is None else pct(block_l2),
        cell,
    ]
    entry = _run_entry(spec, source, config)
    entry.update(
        map_pct=100 * report.mean_average_precision,
        map_std_pct=scalings["standardized"],
        map_block_l2_pct=block_l2,
        paper=paper,
        retrieval=report.to_dict(),
    )
    return row, entry


def _plot_figure4(curves: dict, column: str, results_dir: str) -> str:
    """Figure 4: every run's interpolated PR curve in one plot; returns its path."""
    from enhancer_gan.evaluation.plots import plot_pr_curves

    figure = os.path.join(results_dir, FIGURE4)
    where = COLUMN_NAMES.get(column, "other data")
    plot_pr_curves(
        {f"{label} ({where})": c for label, c in curves.items()},
        figure,
        title=f"Retrieval result on {where} (interpolated precision-recall)",
    )
    return figure
