"""What experiments/table1.py, table2.py and table3.py share: their flags and `main`.

Each table script names its table and calls `define_flags(__name__, ...)`
and `main(argv, table)`; the flags are registered to the calling script's
module, so they read as that script's own (`--helpfull`, and tests that
load the scripts one after another).
"""

from __future__ import annotations

import os
import sys

from absl import flags

from enhancer_gan.errors import ConfigError, EnhancerGanError

CLASSIFICATION_TABLES = ("table1", "table3")


def define_flags(module_name: str, table: str, runs_help: str) -> None:
    """Defines the table script flags (Tables 1 and 3 add --c_values and --cv_folds)."""
    # absl names a script run as a program by its path (as `--help` looks it up).
    kw = {"module_name": sys.argv[0] if module_name == "__main__" else module_name}
    flags.DEFINE_string("runs", None, runs_help, **kw)
    flags.DEFINE_bool(
        "random_baseline", False, "Add a randomly initialised DM (the floor) row.", **kw
    )
    flags.DEFINE_enum(
        "dataset",
        "archive",
        ["archive", "modelnet", "synthetic"],
        "archive: .npz voxel archive; modelnet: <root>/<class>/{train,test}/*.off; "
        "synthetic: the built-in data set's ModelNet-style split.",
        **kw,
    )
    flags.DEFINE_string(
        "data_dir", "", "Archive file or ModelNet root (synthetic: optional).", **kw
    )
    flags.DEFINE_string("results_dir", None, "Where the table, figures and features go.", **kw)
    flags.DEFINE_integer("batch_size", 32, "Grids per DM forward pass.", **kw)
    if table in CLASSIFICATION_TABLES:
        flags.DEFINE_list("c_values", [], "SVM C candidates (default: the library's grid).", **kw)
        flags.DEFINE_integer("cv_folds", 3, "Folds of the cross-validation that picks C.", **kw)
    flags.DEFINE_integer(
        "max_per_split", 0, "Keep at most this many shapes per split (0 = all).", **kw
    )
    flags.DEFINE_integer("seed", 0, "Seeds the subsample (and the CV folds).", **kw)
    flags.DEFINE_bool("overwrite", False, "Replace existing results (and stale features).", **kw)
    flags.DEFINE_bool("progress", True, "Show progress bars.", **kw)


def _c_values(values: list[str]) -> tuple[float, ...] | None:
    try:
        return tuple(float(v) for v in values) or None
    except ValueError:
        raise ConfigError(f"--c_values must be numbers, got {','.join(values)}") from None


def main(argv: list[str], table: str) -> int:
    """Evaluates `table` ('table1', 'table2' or 'table3') from the parsed flags."""
    FLAGS = flags.FLAGS
    if len(argv) > 1:
        print(f"error: unexpected arguments {' '.join(argv[1:])}", file=sys.stderr)
        return 2
    try:
        from enhancer_gan.evaluation import tables
        from enhancer_gan.evaluation.feature_cache import EvalData
        from enhancer_gan.evaluation.paper import TABLE3_LABELS
        from enhancer_gan.evaluation.run_specs import parse_runs, with_random_baseline

        if not FLAGS.runs or not FLAGS.results_dir:
            raise ConfigError("--runs and --results_dir are required")
        allowed = TABLE3_LABELS if table == "table3" else None
        specs = parse_runs(FLAGS.runs, allowed_labels=allowed)
        if FLAGS.random_baseline:
            specs = with_random_baseline(specs)
        data = EvalData(FLAGS.dataset, FLAGS.data_dir, FLAGS.max_per_split, FLAGS.seed)
        kwargs = {
            "batch_size": FLAGS.batch_size,
            "overwrite": FLAGS.overwrite,
            "progress": FLAGS.progress,
        }
        if table in CLASSIFICATION_TABLES:
            kwargs.update(c_values=_c_values(FLAGS.c_values), cv_folds=FLAGS.cv_folds)
        evaluate = getattr(tables, f"evaluate_{table}")
        payload = evaluate(specs, data, FLAGS.results_dir, **kwargs)
    except (EnhancerGanError, OSError) as e:  # OSError: unreadable or unwritable paths
        print(f"error: {e}", file=sys.stderr)
        return 2
    for label in payload["order"]:
        run = payload["runs"][label]
        if table in CLASSIFICATION_TABLES:
            print(
                f"{label}: accuracy {run['accuracy_pct']:.2f}%, "
                f"mean class accuracy {run['mean_class_accuracy_pct']:.2f}%"
            )
        else:
            print(f"{label}: retrieval mAP {run['map_pct']:.2f}%")
    figure = f" and {tables.FIGURE4}" if table == "table2" else ""
    print(f"Wrote {os.path.join(FLAGS.results_dir, f'{table}.md')}, {table}.json{figure}")
    return 0
