"""The paper's Tables 1-3 and Figure 4: its numbers, ours, and the files.

This module holds
  - the paper's numbers as constants (`TABLE1`, `TABLE2`, `TABLE3`), in percent;
  - the pipeline the experiment scripts run: features of each run (extracted
    with `extract.extract_dataset_features` into
    `<results_dir>/features/<label>/`, reused when they came from the same
    run, checkpoint and data), an optional stratified subsample for toy
    runs, then the linear SVM (`classification.classify`) or retrieval
    (`retrieval.retrieval_map`);
  - the writers: `<name>.md` puts our numbers beside the paper's,
    `<name>.json` holds everything, figures go next to them; every file is
    written atomically, and existing outputs are refused (before any work)
    unless `overwrite=True`.

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

import dataclasses
import json
import math
import os
import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from enhancer_gan.data.npz import read_npz
from enhancer_gan.errors import ConfigError, DataError
from enhancer_gan.io_utils import (
    OutputExistsError,
    atomic_path,
    atomic_write_json,
    atomic_write_text,
)

# ----------------------------------------------------------------------------
# The paper's numbers (percent).


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
RANDOM_BASELINE_LABEL = "random_init"
_COLUMN_NAMES = {"MN10": "ModelNet10", "MN40": "ModelNet40"}


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


# ----------------------------------------------------------------------------
# Which runs: '--runs=label:run_dir,...'.

_LABEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """One row of a table: a label and where its features come from.

    Attributes:
      label: row name, also the folder/file name part (letters, digits, _ . -).
      run_dir: the training run folder.
      random_init: use DM's random initialisation (the feature floor).
      checkpoint: checkpoint name or path ('' = the latest).
    """

    label: str
    run_dir: str
    random_init: bool = False
    checkpoint: str = ""


def parse_runs(text: str | Sequence[str], allowed_labels: Sequence[str] | None = None):
    """Parses 'label:run_dir,label:run_dir' (or a list of 'label:run_dir').

    Returns:
      tuple of RunSpec, in the given order.

    Raises:
      ConfigError: empty, malformed, duplicate or (with `allowed_labels`)
        unknown labels.
    """
    items = text.split(",") if isinstance(text, str) else list(text)
    items = [s.strip() for s in items if s.strip()]
    if not items:
        raise ConfigError("--runs is empty; give label:run_dir[,label:run_dir...]")
    specs = []
    for item in items:
        label, sep, run_dir = item.partition(":")
        label, run_dir = label.strip(), run_dir.strip()
        if not sep or not label or not run_dir:
            raise ConfigError(f"--runs: {item!r} is not label:run_dir")
        if not _LABEL_RE.match(label):
            raise ConfigError(
                f"--runs: label {label!r} may hold only letters, digits, '_', '.' and '-'"
            )
        if label == RANDOM_BASELINE_LABEL:
            raise ConfigError(
                f"--runs: the label {RANDOM_BASELINE_LABEL!r} is reserved for --random_baseline"
            )
        if allowed_labels is not None and label not in allowed_labels:
            raise ConfigError(f"--runs: label {label!r} is not one of {', '.join(allowed_labels)}")
        specs.append(RunSpec(label, run_dir))
    labels = [s.label for s in specs]
    dup = sorted({x for x in labels if labels.count(x) > 1})
    if dup:
        raise ConfigError(f"--runs: label(s) {', '.join(dup)} given more than once")
    return tuple(specs)


def with_random_baseline(specs: Sequence[RunSpec]) -> tuple[RunSpec, ...]:
    """Appends the floor: a randomly initialised DM of the first run's config."""
    return (*specs, RunSpec(RANDOM_BASELINE_LABEL, specs[0].run_dir, random_init=True))


# ----------------------------------------------------------------------------
# Deterministic stratified subsampling (toy runs).


def subsample_indices(
    labels: np.ndarray, max_count: int, seed: int = 0, min_per_class: int = 3
) -> np.ndarray:
    """At most `max_count` row indices, stratified by label, deterministic.

    Each class gets a share proportional to its size (largest remainders
    break the rounding), but at least min(its size, `min_per_class`) when the
    budget allows, taken from the largest classes. Within a class the rows
    are a seeded random choice.

    Args:
      labels: [N] int.
      max_count: the budget; 0 or >= N keeps every row.
      seed: picks the rows inside each class.
      min_per_class: floor per class: 3 lets the SVM's 3-fold cross-validation
        and retrieval (a query needs another shape of its class) work.

    Returns:
      [M] int64 sorted row indices, M = min(N, max_count).
    """
    labels = np.asarray(labels)
    n = labels.shape[0]
    if max_count < 0:
        raise ConfigError(f"max_per_split must be >= 0, got {max_count}")
    if max_count == 0 or max_count >= n:
        return np.arange(n, dtype=np.int64)
    classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    exact = counts * (max_count / n)
    quota = np.floor(exact).astype(np.int64)
    # Largest remainders first; ties to the lower class index (stable sort).
    for c in np.argsort(-(exact - quota), kind="stable")[: max_count - quota.sum()]:
        quota[c] += 1
    floor = np.minimum(counts, min_per_class)
    for c in np.flatnonzero(quota < floor):
        need = floor[c] - quota[c]
        while need > 0:
            spare = quota - floor
            spare[c] = -1
            donor = int(np.argmax(spare))
            if spare[donor] <= 0:
                break  # the budget is too small to give every class its floor
            quota[donor] -= 1
            quota[c] += 1
            need -= 1
    rng = np.random.default_rng(seed)
    keep = []
    for c in range(classes.size):
        rows = np.flatnonzero(inverse == c)
        keep.append(rng.choice(rows, size=int(quota[c]), replace=False))
    return np.sort(np.concatenate(keep)).astype(np.int64)


def subset_archive(
    archive_path: str,
    output_path: str,
    max_per_split: int,
    seed: int = 0,
    min_per_class: int = 3,
) -> str:
    """Writes a stratified subset of a voxel archive (or reuses one already written).

    Extraction then reads only the kept grids. The rows are
    `subsample_indices` of each split; the original row numbers are stored
    as `train_index` / `test_index`, and where they came from as `subset_of`.
    The grids are copied in the file's own frame (the reader turns them).

    Returns:
      `output_path`.
    """
    from enhancer_gan.data.modelnet import load_archive

    st = os.stat(archive_path)
    origin = {
        "path": os.path.abspath(archive_path),
        "size": st.st_size,
        "mtime": int(st.st_mtime),
        "max_per_split": int(max_per_split),
        "seed": int(seed),
        "min_per_class": int(min_per_class),
    }
    if os.path.exists(output_path):
        try:
            # The archive's own checks run when the subset is loaded; here
            # only its origin decides whether to reuse it.
            stored = read_npz(output_path, ["subset_of"], "archive subset")["subset_of"]
            if stored.shape == () and json.loads(str(stored)) == origin:
                return output_path
        except (DataError, ValueError, RecursionError):
            pass  # unreadable or different: write it again
    archive = load_archive(archive_path, canonical=False)
    train = subsample_indices(archive.y_train, max_per_split, seed, min_per_class)
    test = subsample_indices(archive.y_test, max_per_split, seed, min_per_class)
    with atomic_path(output_path) as tmp:
        np.savez_compressed(
            tmp,
            X_train=archive.x_train[train].astype(np.uint8),
            y_train=archive.y_train[train],
            X_test=archive.x_test[test].astype(np.uint8),
            y_test=archive.y_test[test],
            class_names=np.array(archive.class_names, dtype=str),
            train_index=train,
            test_index=test,
            subset_of=np.array(json.dumps(origin, sort_keys=True)),
        )
    return output_path


# ----------------------------------------------------------------------------
# Features of a run, extracted once and reused.


@dataclasses.dataclass(frozen=True)
class EvalData:
    """The evaluation data set as the scripts name it.

    Attributes:
      dataset: 'archive', 'modelnet' or 'synthetic'.
      data_dir: archive file or ModelNet root ('' for the built-in set).
      max_per_split: keep at most this many shapes per split (0 = all),
        stratified and deterministic (seeded by `seed`).
      seed: subsample seed.
      min_per_class: floor of shapes per class in a subsample (the same for
        every table, so that the tables share one subset and its features).
    """

    dataset: str
    data_dir: str = ""
    max_per_split: int = 0
    seed: int = 0
    min_per_class: int = 3

    def __post_init__(self):
        if self.dataset not in ("archive", "modelnet", "synthetic"):
            raise ConfigError(
                f"--dataset must be archive, modelnet or synthetic, got {self.dataset!r}"
            )
        if self.dataset in ("archive", "modelnet") and not self.data_dir:
            raise ConfigError(f"--data_dir is required for --dataset={self.dataset}")
        if self.dataset == "archive" and not os.path.isfile(self.data_dir):
            raise DataError(self.data_dir, "archive file does not exist")
        if self.dataset == "modelnet" and not os.path.isdir(self.data_dir):
            raise DataError(self.data_dir, "ModelNet folder does not exist")
        if self.max_per_split < 0:
            raise ConfigError(f"--max_per_split must be >= 0, got {self.max_per_split}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _expected_checkpoint(spec: RunSpec) -> str:
    """What a feature file's source['checkpoint'] must say for `spec`."""
    if spec.random_init:
        return "random_init"
    from enhancer_gan.training.runs import find_checkpoint

    return os.path.abspath(find_checkpoint(spec.run_dir, spec.checkpoint))


def _mismatch(source: dict, spec: RunSpec, checkpoint: str, dataset: str, data_dir: str):
    """Why a feature file's source does not fit `spec` (None if it fits)."""

    def norm(path: str | None) -> str | None:
        return os.path.abspath(path) if path and path != "random_init" else path

    wants = [
        ("run_dir", norm(source.get("run_dir")), norm(spec.run_dir)),
        ("checkpoint", norm(source.get("checkpoint")), checkpoint),
        ("dataset", source.get("dataset"), dataset),
        ("data_dir", norm(source.get("data_dir")), norm(data_dir)),
    ]
    for what, got, want in wants:
        if got != want:
            return f"its {what} is {got!r}, this evaluation needs {want!r}"
    return None


def run_features(
    spec: RunSpec,
    data: EvalData,
    features_root: str,
    splits: Sequence[str] = ("train", "test"),
    *,
    batch_size: int = 32,
    overwrite: bool = False,
    progress: bool = False,
    log: Callable[..., None] = print,
) -> dict[str, dict]:
    """Features of one run on each split, extracted once and then reused.

    Files go to `<features_root>/<label>/<split>.npz`. A file is reused when
    its recorded source (run folder, checkpoint, data set) is the one asked
    for; a file from another source is an error unless `overwrite`, which
    extracts again. With `data.max_per_split` an archive is first cut down to
    a stratified subset (`<features_root>/data/`), so only those grids are
    run through DM; other data sets are subsampled after extraction.

    Returns:
      split -> `features.load_features` dict (subsampled).
    """
    from enhancer_gan.evaluation.extract import extract_dataset_features
    from enhancer_gan.evaluation.features import load_features

    data_dir = data.data_dir
    if data.dataset == "archive" and data.max_per_split:
        stem = os.path.splitext(os.path.basename(data_dir))[0]
        data_dir = subset_archive(
            data_dir,
            os.path.join(
                features_root,
                "data",
                f"{stem}_max{data.max_per_split}_seed{data.seed}_min{data.min_per_class}.npz",
            ),
            data.max_per_split,
            data.seed,
            data.min_per_class,
        )
    folder = os.path.join(features_root, spec.label)
    checkpoint = _expected_checkpoint(spec)
    missing = []
    for split in splits:
        path = os.path.join(folder, f"{split}.npz")
        if not os.path.exists(path):
            missing.append(split)
            continue
        problem = _mismatch(load_features(path)["source"], spec, checkpoint, data.dataset, data_dir)
        if problem is None:
            log(f"{spec.label}: reusing {path}")
        elif overwrite:
            log(f"{spec.label}: {path} is stale ({problem}); extracting again")
            missing.append(split)
        else:
            raise OutputExistsError(
                f"{path}: feature file from another source ({problem}); pass --overwrite "
                "to extract again, or use another --results_dir"
            )
    if missing:
        log(f"{spec.label}: extracting {', '.join(missing)} features from {spec.run_dir}")
        extract_dataset_features(
            spec.run_dir,
            data.dataset,
            data_dir,
            folder,
            splits=tuple(missing),
            checkpoint=spec.checkpoint,
            random_init=spec.random_init,
            cache_dir=os.path.join(features_root, "cache"),
            batch_size=batch_size,
            overwrite=True,  # stale files were refused above unless overwrite
            progress=progress,
            log=log,
        )
    out = {}
    for split in splits:
        path = os.path.join(folder, f"{split}.npz")
        feats = load_features(path)
        problem = _mismatch(feats["source"], spec, checkpoint, data.dataset, data_dir)
        if problem is not None:  # e.g. the run saved a newer checkpoint meanwhile
            raise DataError(path, f"features do not match the evaluation: {problem}")
        keep = subsample_indices(feats["labels"], data.max_per_split, data.seed, data.min_per_class)
        if keep.size < feats["labels"].size:
            feats = dict(
                feats,
                features=feats["features"][keep],
                labels=feats["labels"][keep],
                model_ids=tuple(feats["model_ids"][i] for i in keep),
            )
        out[split] = feats
    return out


# ----------------------------------------------------------------------------
# Output files.


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


def _pct(x: float | None) -> str:
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
        rows.append([r.method, *sup, _pct(r.mn10), _pct(r.mn40)])
    return markdown_table(header, rows)


def paper_cell(table: PaperTable, key: str | None, column: str) -> tuple[str, dict | None]:
    """The paper value beside a run: (markdown cell, JSON dict or None)."""
    row = table.row(key)
    if row is None:
        return "— (no such row in the paper)", None
    if column == "other":
        cell = f"{_pct(row.mn10)} / {_pct(row.mn40)} ({row.method}; MN10 / MN40, other data)"
        return cell, {"key": row.key, "method": row.method, "MN10": row.mn10, "MN40": row.mn40}
    value = row.value(column)
    return f"{_pct(value)} ({row.method})", {
        "key": row.key,
        "method": row.method,
        "column": column,
        "value": value,
    }


def _describe_data(data: EvalData, num_classes: int, column: str, counts: dict) -> str:
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
        text += f"compared with the paper's {_COLUMN_NAMES[column]} ({column}) column."
    return text


def _model_summary(config: dict) -> str:
    model = config.get("model", {})
    if model.get("use_enhancer", True):
        text = f"enhancer, GE layer {model.get('enhancer_layer', 1)}"
    else:
        text = "no enhancer"
    return f"{text}, {model.get('resolution')}^3, width x{model.get('width_multiplier', 1.0):g}"


def _weights_summary(source: dict) -> str:
    if source.get("checkpoint") == "random_init":
        return "random init (the floor)"
    return f"{os.path.basename(source.get('checkpoint', ''))} (step {source.get('step')})"


def _notes(sources: dict[str, dict], data: EvalData) -> list[str]:
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
    c_values,
    cv_folds: int,
    batch_size: int,
    overwrite: bool,
    progress: bool,
    log,
) -> dict:
    from enhancer_gan.evaluation.plots import plot_confusion_matrix, plot_per_class_accuracy

    names = []
    if figures:
        for s in specs:
            names += [f"confusion_{s.label}.png", f"per_class_{s.label}.png"]
    check_outputs(results_dir, table_outputs(table.name, names), overwrite)
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
        source = feats["test"]["source"]
        sources[spec.label] = source
        config = source.get("config", {})
        key = None if spec.random_init else paper_key(config.get("model", {}), table.name)
        cell, paper = paper_cell(table, key, column)
        rows.append(
            [
                spec.label,
                _model_summary(config),
                _weights_summary(source),
                f"{report.num_train} / {report.num_test}",
                f"{report.num_features:,}",
                f"{report.chosen_c:g}",
                _pct(100 * report.accuracy),
                _pct(100 * report.mean_class_accuracy),
                cell,
            ]
        )
        entry = {
            "run_dir": spec.run_dir,
            "random_init": spec.random_init,
            "checkpoint": source.get("checkpoint"),
            "step": source.get("step"),
            "model": config.get("model", {}),
            "accuracy_pct": 100 * report.accuracy,
            "mean_class_accuracy_pct": 100 * report.mean_class_accuracy,
            "paper": paper,
            "classification": report.to_dict(),
            "features": {
                s: os.path.join(results_dir, "features", spec.label, f"{s}.npz")
                for s in ("train", "test")
            },
        }
        if figures:
            class_names = list(report.class_names)
            confusion = os.path.join(results_dir, f"confusion_{spec.label}.png")
            per_class = os.path.join(results_dir, f"per_class_{spec.label}.png")
            plot_confusion_matrix(
                report.confusion,
                class_names,
                confusion,
                title=f"{spec.label}: {100 * report.accuracy:.2f}% ({column})",
            )
            plot_per_class_accuracy(
                report.per_class_accuracy,
                class_names,
                per_class,
                title=f"{spec.label}: per-class accuracy ({column})",
            )
            entry["figures"] = {"confusion": confusion, "per_class": per_class}
        runs[spec.label] = entry

    header = [
        "run",
        "model",
        "weights",
        "train / test",
        "features",
        "C",
        "accuracy (%)",
        "mean class accuracy (%)",
        f"paper {column if column != 'other' else 'MN10 / MN40'} (%)",
    ]
    number = table.name[-1]
    lines = [
        f"# Table {number}: {table.title}",
        "",
        "Linear SVM (C chosen by cross-validation on the train split) on DM's pooled "
        "conv features, trained on the train split; accuracy on the test split. "
        "The paper row beside each run is chosen from the run's config.",
        "",
        _describe_data(data, num_classes, column, counts),
        "",
        markdown_table(header, rows),
    ]
    notes = _notes(sources, data)
    if notes:
        lines += ["Notes:", ""] + [f"- {n}" for n in notes] + [""]
    lines += [
        f"## The paper's Table {number}",
        "",
        paper_table_markdown(table, show_supervised=table.name == "table1"),
    ]
    payload = {
        "table": table.name,
        "metric": table.metric,
        "data": dict(data.to_dict(), num_classes=num_classes, column=column, counts=counts),
        "runs": runs,
        "order": [s.label for s in specs],
        "paper": table.to_dict(),
        "notes": notes,
    }
    write_table(results_dir, table.name, "\n".join(lines), payload, overwrite)
    return payload


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
    log: Callable[..., None] = print,
) -> dict:
    """Table 1: features, linear SVM, table1.md/.json, confusion and per-class PNGs.

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
        c_values=c_values or DEFAULT_C_VALUES,
        cv_folds=cv_folds,
        batch_size=batch_size,
        overwrite=overwrite,
        progress=progress,
        log=log,
    )


def check_table3_labels(specs: Sequence[RunSpec]) -> None:
    """Each Table 3 row label must name its run's layer (before any work is done).

    Raises:
      ConfigError: an unknown label, a run folder without config.json, or a
        label that is not the run's ('none' for use_enhancer=False, else
        'layer<enhancer_layer>').
    """
    from enhancer_gan.config import ExperimentConfig

    for s in specs:
        if s.random_init:
            continue
        if s.label not in TABLE3_LABELS:
            raise ConfigError(f"--runs: label {s.label!r} is not one of {', '.join(TABLE3_LABELS)}")
        path = os.path.join(s.run_dir, "config.json")
        if not os.path.exists(path):
            raise ConfigError(f"--runs: {s.run_dir}: not a run folder (no config.json)")
        key = paper_key(dataclasses.asdict(ExperimentConfig.load(path).model), "table3")
        if key != s.label:
            raise ConfigError(
                f"--runs: row {s.label!r} is {s.run_dir}, whose config is {key!r} "
                f"(use_enhancer / enhancer_layer); label it {key}"
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
    log: Callable[..., None] = print,
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
    log: Callable[..., None] = print,
) -> dict:
    """Table 2 and Figure 4: retrieval mAP on the test split, PR curves of all runs.

    Writes table2.md, table2.json and figure4_pr.png. Arguments as
    `evaluate_table1`.

    Returns:
      the JSON payload written to table2.json.
    """
    from enhancer_gan.evaluation.plots import plot_pr_curves
    from enhancer_gan.evaluation.retrieval import retrieval_map

    check_outputs(results_dir, table_outputs("table2", [FIGURE4]), overwrite)
    rows, runs, sources, curves = [], {}, {}, {}
    column = None
    num_classes = 0
    count = 0
    for spec in specs:
        feats = run_features(
            spec,
            data,
            os.path.join(results_dir, "features"),
            ("test",),
            batch_size=batch_size,
            overwrite=overwrite,
            progress=progress,
            log=log,
        )
        test = feats["test"]
        if column is None:
            num_classes = _num_classes(feats)
            column = dataset_column(num_classes)
            count = int(test["labels"].size)
        report = retrieval_map(test["features"], test["labels"])
        log(f"{spec.label}: retrieval mAP {100 * report.mean_average_precision:.2f}%")
        source = test["source"]
        sources[spec.label] = source
        config = source.get("config", {})
        key = None if spec.random_init else paper_key(config.get("model", {}), "table2")
        cell, paper = paper_cell(TABLE2, key, column)
        rows.append(
            [
                spec.label,
                _model_summary(config),
                _weights_summary(source),
                f"{report.num_queries} ({report.num_skipped} skipped)",
                _pct(100 * report.mean_average_precision),
                cell,
            ]
        )
        curves[spec.label] = report.pr_curve()
        runs[spec.label] = {
            "run_dir": spec.run_dir,
            "random_init": spec.random_init,
            "checkpoint": source.get("checkpoint"),
            "step": source.get("step"),
            "model": config.get("model", {}),
            "map_pct": 100 * report.mean_average_precision,
            "paper": paper,
            "retrieval": report.to_dict(),
            "features": {"test": os.path.join(results_dir, "features", spec.label, "test.npz")},
        }
    figure = os.path.join(results_dir, FIGURE4)
    where = _COLUMN_NAMES.get(column, "other data")
    plot_pr_curves(
        {f"{label} ({where})": c for label, c in curves.items()},
        figure,
        title=f"Retrieval result on {where} (interpolated precision-recall)",
    )
    header = [
        "run",
        "model",
        "weights",
        "queries",
        "mAP (%)",
        f"paper {column if column != 'other' else 'MN10 / MN40'} (%)",
    ]
    lines = [
        f"# Table 2: {TABLE2.title}",
        "",
        "Every test shape queries the other test shapes, ranked by Euclidean distance "
        "of DM's pooled conv features; relevant = same class. Mean average precision; "
        f"the precision-recall curves are in `{FIGURE4}` (Figure 4). The paper row "
        "beside each run is chosen from the run's config.",
        "",
        _describe_data(data, num_classes, column, {"test": count}),
        "",
        markdown_table(header, rows),
    ]
    notes = _notes(sources, data)
    if notes:
        lines += ["Notes:", ""] + [f"- {n}" for n in notes] + [""]
    lines += ["## The paper's Table 2", "", paper_table_markdown(TABLE2)]
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
    write_table(results_dir, "table2", "\n".join(lines), payload, overwrite)
    return payload
