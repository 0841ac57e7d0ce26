"""Tables 1-3 and Figure 4: paper numbers, subsets, writers, and the scripts end to end.

The scripts run in this process (`run_script`), on tiny run folders (32^3,
width 1/16) with real checkpoints written straight from the networks (no
training step to trace), on a tiny 10-class archive and on a stratified
subset of the real ModelNet10 sample.
"""

import importlib.util
import json
import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest
from absl import flags
from hypothesis import given
from hypothesis import strategies as st

from enhancer_gan.errors import ConfigError
from enhancer_gan.evaluation import feature_cache, paper, report, run_specs, subsets
from enhancer_gan.evaluation.features import load_features
from enhancer_gan.io_utils import OutputExistsError, atomic_write_text
from tests.helpers import tiny_experiment, tiny_model_config

ROOT = pathlib.Path(__file__).resolve().parents[1]
_SCRIPT_PREFIX = "_enhancer_gan_script_"


# ----------------------------------------------------------------------------
# Helpers (also used by test_evaluate_generation.py).


def run_script(relpath: str, *args: str) -> int:
    """Runs a script's `main` in this process; returns its exit status.

    Each call loads the script afresh, first removing the flags that scripts
    loaded this way defined, so scripts with the same flag names (the three
    table scripts) can run one after the other with default values.
    """
    for name in list(flags.FLAGS):
        if (flags.FLAGS.find_module_defining_flag(name) or "").startswith(_SCRIPT_PREFIX):
            delattr(flags.FLAGS, name)
    module_name = _SCRIPT_PREFIX + pathlib.Path(relpath).stem
    spec = importlib.util.spec_from_file_location(module_name, ROOT / relpath)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    argv = module.flags_parser(module.FLAGS)([relpath, *args])
    return module.main(argv)


def make_run(run_dir: str, step: int | None = None, **model_kw) -> str:
    """A tiny run folder; with `step`, a real checkpoint ckpt-<step>.

    The checkpoint holds every network of the run (as training saves them),
    DM's weights moved away from the seeded initialisation so that features
    from the checkpoint differ from --random_init features.
    """
    import tensorflow as tf

    from enhancer_gan.training.runs import load_run, network_parts

    os.makedirs(run_dir, exist_ok=True)
    config = tiny_experiment(run_dir, model=tiny_model_config(**model_kw))
    atomic_write_text(os.path.join(run_dir, "config.json"), config.to_json())
    if step:
        run = load_run(run_dir, random_init=True)
        rng = np.random.default_rng(step)
        for v in run.networks.voxel_discriminator.trainable_variables:
            v.assign(v + 0.05 * rng.standard_normal(v.shape).astype(np.float32))
        ckpt = tf.train.Checkpoint(
            step=tf.Variable(step, dtype=tf.int64), **network_parts(run.networks)
        )
        manager = tf.train.CheckpointManager(ckpt, os.path.join(run_dir, "checkpoints"), 1)
        manager.save(checkpoint_number=step)
    return run_dir


def class_boxes(labels, res: int = 32, seed: int = 0) -> np.ndarray:
    """One solid box per label whose size depends on the class: [N, res^3] uint8."""
    rng = np.random.default_rng(seed)
    grids = np.zeros((len(labels), res, res, res), np.uint8)
    for g, c in zip(grids, labels):
        size = np.array([4 + 2 * (c % 5), 4 + 4 * (c // 5), 6]) + rng.integers(0, 2, 3)
        lo = rng.integers(1, res - size)
        g[lo[0] : lo[0] + size[0], lo[1] : lo[1] + size[1], lo[2] : lo[2] + size[2]] = 1
    return grids


def write_archive(path: str, per_class_train: int = 4, per_class_test: int = 3) -> str:
    """A tiny 10-class archive (labels 0-9 = ModelNet10's classes)."""
    y_train = np.repeat(np.arange(10), per_class_train)
    y_test = np.repeat(np.arange(10), per_class_test)
    np.savez(
        path,
        X_train=class_boxes(y_train, seed=1),
        y_train=y_train,
        X_test=class_boxes(y_test, seed=2),
        y_test=y_test,
    )
    return path


def table_row(markdown: str, label: str) -> list[str]:
    """The cells of the markdown row whose first cell is `label`."""
    for line in markdown.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells and cells[0] == label:
            return cells
    raise AssertionError(f"no row {label!r} in\n{markdown}")


# ----------------------------------------------------------------------------
# The paper's numbers and small pieces (no TensorFlow).


def _design_tables() -> dict[str, list[list[str]]]:
    """The paper's tables as docs/DESIGN.md prints them: 'table1' -> rows of cells."""
    text = (ROOT / "docs" / "DESIGN.md").read_text(encoding="utf-8")
    section = text.split('<a id="paper-tables"></a>', 1)[1].split("<a id=", 1)[0]
    tables = {}
    for block in re.split(r"^### Table (\d)", section, flags=re.M)[1:]:
        if block.isdigit():
            number = block
            continue
        rows = [
            [c.strip() for c in line.strip().strip("|").split("|")]
            for line in block.splitlines()
            if line.startswith("|")
        ]
        assert rows[0] == ["key", "method", "supervised", "ModelNet10", "ModelNet40"]
        tables[f"table{number}"] = rows[2:]  # below the header and its rule
    return tables


def test_paper_numbers_match_the_tables_in_the_design_page():
    """The constants the reports print beside our numbers are the paper's, as
    docs/DESIGN.md writes them down (typed once there, from the paper)."""

    def number(cell):
        return None if cell == "—" else float(cell)

    printed = _design_tables()
    assert sorted(printed) == ["table1", "table2", "table3"]
    for table in (paper.TABLE1, paper.TABLE2, paper.TABLE3):
        rows = printed[table.name]
        assert [r[0] for r in rows] == [r.key for r in table.rows], table.name
        for cells, row in zip(rows, table.rows):
            assert (row.mn10, row.mn40) == (number(cells[3]), number(cells[4])), row.key
            assert row.supervised == (cells[2] == "yes"), row.key
    # The paper reports the same models in Tables 1 and 3.
    t1 = {r.key: (r.mn10, r.mn40) for r in paper.TABLE1.rows}
    t3 = {r.key: (r.mn10, r.mn40) for r in paper.TABLE3.rows}
    assert t3["none"] == t1["without_enhancer"] and t3["layer1"] == t1["with_enhancer"]
    assert paper.TABLE1.row("with_enhancer").value("MN40") == 87.85
    assert paper.TABLE1.row("pointnet").value("MN40") is None
    with pytest.raises(ConfigError):
        paper.TABLE1.row("sph").value("other")


def test_every_design_page_section_cited_exists():
    """Code and docs cite docs/DESIGN.md#<section>; each section must exist."""
    ids = set(re.findall(r'<a id="([a-z0-9-]+)"></a>', (ROOT / "docs" / "DESIGN.md").read_text()))
    cited = {}
    for path in ROOT.rglob("*"):
        if path.suffix in (".py", ".md", ".cfg", ".sh") and ".git" not in path.parts:
            for anchor in re.findall(r"DESIGN\.md#([a-z0-9-]+)", path.read_text(errors="replace")):
                cited.setdefault(anchor, path)
    assert cited, "nothing cites the design page"
    missing = {a: str(p) for a, p in cited.items() if a not in ids}
    assert not missing, missing


def test_dataset_column_and_paper_key():
    assert paper.dataset_column(10) == "MN10"
    assert paper.dataset_column(40) == "MN40"
    assert paper.dataset_column(7) == "other"
    assert paper.paper_key({"use_enhancer": False, "enhancer_layer": 3}, "table1") == (
        "without_enhancer"
    )
    assert paper.paper_key({"use_enhancer": True, "enhancer_layer": 1}, "table2") == (
        "with_enhancer"
    )
    assert paper.paper_key({"use_enhancer": True, "enhancer_layer": 2}, "table1") is None
    assert paper.paper_key({"use_enhancer": True, "enhancer_layer": 2}, "table3") == "layer2"
    assert paper.paper_key({"use_enhancer": False}, "table3") == "none"


def test_parse_runs():
    specs = run_specs.parse_runs("a:runs/x, b.2:/abs/y")
    assert specs == (run_specs.RunSpec("a", "runs/x"), run_specs.RunSpec("b.2", "/abs/y"))
    full = run_specs.with_random_baseline(specs)
    assert full[-1] == run_specs.RunSpec("random_init", "runs/x", random_init=True)
    for bad, match in [
        ("", "empty"),
        ("nocolon", "not label:run_dir"),
        ("a:", "not label:run_dir"),
        ("a b:x", "letters"),
        ("a:x,a:y", "more than once"),
        ("random_init:x", "reserved"),
    ]:
        with pytest.raises(ConfigError, match=match):
            run_specs.parse_runs(bad)
    with pytest.raises(ConfigError, match="not one of none"):
        run_specs.parse_runs("layer4:x", allowed_labels=paper.TABLE3_LABELS)


def test_subsample_is_stratified_deterministic_with_a_floor():
    labels = np.repeat(np.arange(4), [100, 50, 6, 2])
    keep = subsets.subsample_indices(labels, 40, seed=0)
    assert keep.size == 40 and np.all(np.diff(keep) > 0)
    np.testing.assert_array_equal(keep, subsets.subsample_indices(labels, 40, seed=0))
    assert not np.array_equal(keep, subsets.subsample_indices(labels, 40, seed=1))
    counts = np.bincount(labels[keep], minlength=4)
    # Proportional shares 25.3 / 12.7 / 1.5 / 0.5 -> 25 / 13 / 2 / 0 by
    # largest remainders; then the floors min(size, 3) = 3 and 2 of the two
    # small classes are taken from the class with the most to spare.
    assert counts.tolist() == [22, 13, 3, 2]
    assert subsets.subsample_indices(labels, 0).size == labels.size
    assert subsets.subsample_indices(labels, 1000).size == labels.size
    with pytest.raises(ConfigError):
        subsets.subsample_indices(labels, -1)


@given(
    sizes=st.lists(st.integers(1, 30), min_size=1, max_size=8),
    budget=st.integers(1, 120),
    seed=st.integers(0, 3),
)
def test_subsample_properties(sizes, budget, seed):
    labels = np.random.default_rng(seed).permutation(np.repeat(np.arange(len(sizes)), sizes))
    keep = subsets.subsample_indices(labels, budget, seed=seed)
    assert keep.size == min(budget, labels.size)
    assert np.unique(keep).size == keep.size and keep.min() >= 0 and keep.max() < labels.size
    counts = np.bincount(labels[keep], minlength=len(sizes))
    if budget >= 3 * len(sizes):  # room for every class's floor
        assert np.all(counts >= np.minimum(sizes, 3))


def test_subset_archive_keeps_rows_and_reuses(tmp_path):
    from enhancer_gan.data.archives import load_archive

    src = write_archive(str(tmp_path / "mini.npz"), per_class_train=6, per_class_test=3)
    out = subsets.subset_archive(src, str(tmp_path / "sub.npz"), 35)
    with np.load(out) as f:
        train_index, test_index = f["train_index"], f["test_index"]
        assert train_index.size == 35 and test_index.size == 30  # test has only 30
    full = load_archive(src)
    sub = load_archive(out)
    np.testing.assert_array_equal(sub.x_train, full.x_train[train_index])
    np.testing.assert_array_equal(sub.y_train, full.y_train[train_index])
    np.testing.assert_array_equal(sub.x_test, full.x_test)
    assert sub.class_names == full.class_names
    stamp = os.stat(out).st_mtime_ns
    subsets.subset_archive(src, out, 35)
    assert os.stat(out).st_mtime_ns == stamp  # reused
    subsets.subset_archive(src, out, 30)
    with np.load(out) as f:
        assert f["train_index"].size == 30  # another budget: written again


def test_writer_refuses_overwrite_and_writes_strict_json(tmp_path):
    md, js = report.write_table(str(tmp_path), "t", "# hi\n", {"x": float("nan"), "y": [1.5]})
    assert json.loads(open(js).read()) == {"x": None, "y": [1.5]}
    with pytest.raises(OutputExistsError, match="--overwrite"):
        report.write_table(str(tmp_path), "t", "# other\n", {})
    assert open(md).read() == "# hi\n"
    report.write_table(str(tmp_path), "t", "# other\n", {}, overwrite=True)
    assert open(md).read() == "# other\n"
    assert "a \\| b" in report.markdown_table(["h"], [["a | b"]])


def test_paper_cell_for_other_data_shows_both_columns():
    cell, row = report.paper_cell(paper.TABLE2, "with_enhancer", "other")
    assert "65.00 / 44.44" in cell and row["MN40"] == 44.44
    cell, row = report.paper_cell(paper.TABLE1, "without_enhancer", "MN40")
    assert cell.startswith("85.53") and row["value"] == 85.53
    cell, row = report.paper_cell(paper.TABLE1, None, "MN10")
    assert row is None and cell.startswith("—")


def test_scripts_reject_bad_input_with_one_error_line(tmp_path):
    # No TensorFlow is imported before these errors, so a subprocess is quick.
    for args in (
        ["--runs=nocolon", f"--results_dir={tmp_path}"],
        ["--runs=a:x", f"--results_dir={tmp_path}", "--max_per_split=many"],
        ["--runs=a:x", "--dataset=archive", f"--data_dir={tmp_path}/none.npz", "--results_dir=r"],
    ):
        proc = subprocess.run(
            [sys.executable, str(ROOT / "experiments" / "table1.py"), *args],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 2, proc.stderr
        lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error: ")]
        assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "none.npz" in lines[0]


# ----------------------------------------------------------------------------
# The scripts end to end.


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    return {
        "with": make_run(str(root / "with"), step=5),
        "without": make_run(str(root / "without"), step=7, use_enhancer=False),
    }


def _check_classification_table(results, name, labels, column, paper_values):
    md = open(os.path.join(results, f"{name}.md")).read()
    payload = json.load(open(os.path.join(results, f"{name}.json")))
    assert {"table", "metric", "data", "runs", "order", "paper", "notes"} <= set(payload)
    assert payload["order"] == labels and payload["data"]["column"] == column
    for label in labels:
        run = payload["runs"][label]
        confusion = np.array(run["classification"]["confusion"])
        assert run["accuracy_pct"] == pytest.approx(100 * np.trace(confusion) / confusion.sum())
        cells = table_row(md, label)
        assert f"{run['accuracy_pct']:.2f}" in cells
        assert f"{run['mean_class_accuracy_pct']:.2f}" in cells
        paper_cell = cells[-1]
        if paper_values[label] is None:
            assert paper_cell.startswith("—") and run["paper"] is None
        else:
            assert paper_cell.startswith(paper_values[label])
    return md, payload


def test_tables_end_to_end_on_a_tiny_archive(tmp_path, runs, capsys):
    archive = write_archive(str(tmp_path / "mini.npz"))
    results = str(tmp_path / "results")
    common = [
        "--dataset=archive",
        f"--data_dir={archive}",
        f"--results_dir={results}",
        "--batch_size=8",
        "--noprogress",
    ]
    two_runs = f"--runs=with:{runs['with']},without:{runs['without']}"
    assert run_script("experiments/table1.py", two_runs, "--random_baseline", *common) == 0
    md, payload = _check_classification_table(
        results,
        "table1",
        ["with", "without", "random_init"],
        "MN10",
        {"with": "91.63", "without": "88.88", "random_init": None},
    )
    assert "ModelNet10" in md and "3D-GAN" in md and "91.00" in md  # the paper's own table
    assert payload["runs"]["with"]["step"] == 5
    assert payload["runs"]["with"]["checkpoint"].endswith("ckpt-5")
    for label in ("with", "without", "random_init"):
        for kind in ("confusion", "per_class"):
            path = os.path.join(results, f"{kind}_{label}.png")
            assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    # The checkpoint's features are not the random initialisation's.
    feats = {
        label: load_features(os.path.join(results, "features", label, "test.npz"))
        for label in ("with", "random_init")
    }
    assert feats["with"]["features"].shape == (30, 3584)
    assert not np.allclose(feats["with"]["features"], feats["random_init"]["features"])

    # Table 2 reuses the test features and puts mAP beside the paper's.
    capsys.readouterr()
    assert run_script("experiments/table2.py", two_runs, "--random_baseline", *common) == 0
    assert "with: reusing" in capsys.readouterr().out
    md2 = open(os.path.join(results, "table2.md")).read()
    payload2 = json.load(open(os.path.join(results, "table2.json")))
    from enhancer_gan.evaluation.retrieval import retrieval_map

    want = retrieval_map(feats["with"]["features"], feats["with"]["labels"])
    assert payload2["runs"]["with"]["map_pct"] == pytest.approx(100 * want.mean_average_precision)
    # Beside the paper's raw mAP: standardised (train statistics) and block-L2.
    from enhancer_gan.evaluation.diagnostics import retrieval_scalings

    train = load_features(os.path.join(results, "features", "with", "train.npz"))
    assert sum(feats["with"]["source"]["block_sizes"]) == 3584
    scal = retrieval_scalings(train, feats["with"], feats["with"]["source"]["block_sizes"])
    assert payload2["runs"]["with"]["map_std_pct"] == pytest.approx(scal["standardized"])
    assert payload2["runs"]["with"]["map_block_l2_pct"] == pytest.approx(scal["block_l2"])
    assert table_row(md2, "with")[-3:-1] == [f"{scal[k]:.2f}" for k in ("standardized", "block_l2")]
    assert table_row(md2, "with")[-1].startswith("65.00")
    assert table_row(md2, "without")[-1].startswith("61.82")
    assert f"{payload2['runs']['without']['map_pct']:.2f}" in table_row(md2, "without")
    assert len(payload2["runs"]["with"]["retrieval"]["interpolated_precision"]) == 21
    assert os.path.getsize(os.path.join(results, "figure4_pr.png")) > 1000

    # Table 3: rows named by layer, checked against the runs' configs first.
    assert run_script("experiments/table3.py", f"--runs=layer1:{runs['with']}", *common) == 0
    _check_classification_table(results, "table3", ["layer1"], "MN10", {"layer1": "91.63"})
    assert "91.52" in open(os.path.join(results, "table3.md")).read()  # the paper's layer 2
    capsys.readouterr()
    assert run_script("experiments/table3.py", f"--runs=layer2:{runs['with']}", *common) == 2
    assert "whose config is 'layer1'" in capsys.readouterr().err

    # Existing results are refused, and left alone.
    before = open(os.path.join(results, "table1.md")).read()
    assert run_script("experiments/table1.py", two_runs, *common) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "--overwrite" in err and "table1" in err
    assert open(os.path.join(results, "table1.md")).read() == before
    # Features of another run under a label: refused, or with --overwrite
    # extracted again (and the results replaced).
    data = feature_cache.EvalData("archive", archive)
    features_root = os.path.join(results, "features")
    swapped = run_specs.RunSpec("with", runs["without"])
    with pytest.raises(OutputExistsError, match="another source.*--overwrite"):
        feature_cache.run_features(swapped, data, features_root, ("test",), log=lambda *_: None)
    assert (
        run_script(
            "experiments/table2.py", f"--runs=with:{runs['without']}", "--overwrite", *common
        )
        == 0
    )
    source = load_features(os.path.join(features_root, "with", "test.npz"))["source"]
    assert source["run_dir"] == os.path.abspath(runs["without"]) and source["step"] == 7
    md2 = open(os.path.join(results, "table2.md")).read()
    assert table_row(md2, "with")[-1].startswith("61.82") and "random_init" not in md2


def test_tables_on_real_modelnet10_subset(tmp_path, runs, shared_data, capsys):
    archive = str(shared_data / "modelnet10_vox32.npz")
    results = str(tmp_path / "results")
    common = [
        "--dataset=archive",
        f"--data_dir={archive}",
        f"--results_dir={results}",
        "--max_per_split=60",
        "--batch_size=30",
        "--noprogress",
    ]
    with_run = f"--runs=with_enhancer:{runs['with']}"
    assert run_script("experiments/table1.py", with_run, "--random_baseline", *common) == 0
    md, payload = _check_classification_table(
        results,
        "table1",
        ["with_enhancer", "random_init"],
        "MN10",
        {"with_enhancer": "91.63", "random_init": None},
    )
    assert "at most 60" in md and "modelnet10_vox32.npz" in md
    report = payload["runs"]["with_enhancer"]["classification"]
    assert report["num_train"] == 60 and report["num_test"] == 60
    # Stratified: every ModelNet10 class, each with at least 3 train shapes.
    assert np.array(report["confusion"]).sum(axis=1).min() >= 3
    assert report["class_names"] == [
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
    ]
    # Random convolutional features are far above chance (10%) even here.
    assert payload["runs"]["random_init"]["accuracy_pct"] > 30
    assert run_script("experiments/table2.py", with_run, *common) == 0
    md2 = open(os.path.join(results, "table2.md")).read()
    assert table_row(md2, "with_enhancer")[-1].startswith("65.00")
    assert re.search(r"\| 60 \(0 skipped\) \|", md2)
    assert run_script("experiments/table3.py", f"--runs=none:{runs['without']}", *common) == 0
    md3 = open(os.path.join(results, "table3.md")).read()
    assert table_row(md3, "none")[-1].startswith("88.88") and "91.52" in md3
    # One subset of the archive, shared by the three tables.
    assert len(os.listdir(os.path.join(results, "features", "data"))) == 1
