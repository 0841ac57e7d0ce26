"""McNemar's exact test, the Table 1 predictions files, and the McNemar columns of recipe_table.

The p-values are checked against hand computations of the two-sided exact
binomial test at 1/2: with d = n01 + n10 discordant items and k = min(n01,
n10), p = min(1, 2 · sum_{i<=k} C(d, i) / 2^d).
"""

import json
import math
import os

import numpy as np
import pytest

from enhancer_gan.errors import ConfigError, DataError
from enhancer_gan.evaluation import mcnemar as mc
from tests.test_tables import make_run, run_script, table_row, write_archive


def vectors(right_a, right_b, num_classes: int = 5, seed: int = 0):
    """(labels, pred_a, pred_b) whose correctness is `right_a`, `right_b` (0/1 lists)."""
    right_a, right_b = np.asarray(right_a, bool), np.asarray(right_b, bool)
    labels = np.random.default_rng(seed).integers(0, num_classes, right_a.size)
    wrong = (labels + 1) % num_classes
    return labels, np.where(right_a, labels, wrong), np.where(right_b, labels, wrong)


# 8 items a right & b wrong, 2 the reverse, 6 both right, 4 both wrong.
RIGHT_A = [1] * 8 + [0] * 2 + [1] * 6 + [0] * 4
RIGHT_B = [0] * 8 + [1] * 2 + [1] * 6 + [0] * 4


def test_known_discordant_counts_and_hand_computed_p():
    r = mc.mcnemar(*vectors(RIGHT_A, RIGHT_B))
    assert (r.n, r.n01, r.n10, r.discordant) == (20, 8, 2, 10)
    # 2 · (C(10,0) + C(10,1) + C(10,2)) / 2^10 = 2 · 56 / 1024
    assert r.p_value == pytest.approx(2 * (1 + 10 + 45) / 1024) and r.p_value == pytest.approx(
        0.109375
    )
    assert r.statistic == pytest.approx(0.8)
    assert (r.accuracy_a_pct, r.accuracy_b_pct) == pytest.approx((70.0, 40.0))
    assert r.difference_pct == pytest.approx(30.0)  # 100 · (8 - 2) / 20
    d = r.to_dict()
    assert d["n01"] == 8 and d["n10"] == 2 and d["p_value"] == pytest.approx(0.109375)
    assert json.loads(json.dumps(d)) == d
    # Swapping the rows swaps the counts, keeps p, flips the difference.
    s = mc.mcnemar(*vectors(RIGHT_B, RIGHT_A))
    assert (s.n01, s.n10, s.p_value, s.difference_pct) == (2, 8, r.p_value, -30.0)


def test_identical_predictions_give_p_one():
    labels, pred, _ = vectors(RIGHT_A, RIGHT_B)
    r = mc.mcnemar(labels, pred, pred.copy())
    assert (r.n01, r.n10, r.p_value, r.difference_pct) == (0, 0, 1.0, 0.0)
    assert math.isnan(r.statistic) and r.to_dict()["statistic"] is None


def test_pooled_sums_the_counts_over_seeds():
    first = vectors(RIGHT_A, RIGHT_B)
    second = vectors([1, 0, 0, 0, 1], [0, 1, 1, 1, 1], seed=1)  # n01 = 1, n10 = 3
    assert (mc.mcnemar(*second).n01, mc.mcnemar(*second).n10) == (1, 3)
    pooled = mc.mcnemar_pooled([first, second])
    assert (pooled.n, pooled.n01, pooled.n10, pooled.groups) == (25, 9, 5, 2)
    # 2 · sum_{i<=5} C(14, i) / 2^14 = 2 · 3473 / 16384
    assert pooled.p_value == pytest.approx(2 * 3473 / 16384)
    assert pooled.difference_pct == pytest.approx(100 * 4 / 25)
    assert pooled.accuracy_a_pct == pytest.approx(100 * (14 + 2) / 25)
    single = mc.mcnemar_pooled([first])
    assert single.to_dict() == dict(mc.mcnemar(*first).to_dict(), groups=1)


def test_bad_input_is_refused_with_a_clear_message():
    labels, a, b = vectors(RIGHT_A, RIGHT_B)
    with pytest.raises(DataError, match="same length, got 20, 19 and 20"):
        mc.mcnemar(labels, a[:-1], b)
    with pytest.raises(DataError, match=r"pred_b must be a 1-D array.*\(20, 1\)"):
        mc.mcnemar(labels, a, b[:, None])
    with pytest.raises(DataError, match="labels must hold integer class labels.*float"):
        mc.mcnemar(labels.astype(float), a, b)
    with pytest.raises(DataError, match="no test items"):
        mc.mcnemar([], [], [])
    with pytest.raises(ConfigError, match="at least one"):
        mc.mcnemar_pooled([])
    with pytest.raises(DataError, match="seed 1: .*same length"):
        mc.mcnemar_pooled([(labels, a, b), (labels, a, b[:3])])


def test_predictions_files_round_trip_and_bad_files_name_the_path(tmp_path):
    labels, a, b = vectors(RIGHT_A, RIGHT_B)
    ids = [f"shape_{i}" for i in range(labels.size)]
    pa, pb = str(tmp_path / "p" / "a.npz"), str(tmp_path / "p" / "b.npz")
    mc.save_predictions(pa, labels, a, ids)
    mc.save_predictions(pb, labels, b)  # without model ids
    loaded = mc.load_predictions(pa)
    assert loaded["predictions"].dtype == np.int64 and loaded["model_ids"] == tuple(ids)
    assert mc.load_predictions(pb)["model_ids"] is None
    assert mc.compare_files(pa, pb) == mc.mcnemar(labels, a, b)
    assert sorted(os.listdir(tmp_path / "p")) == ["a.npz", "b.npz"]  # no temporary left
    other = str(tmp_path / "p" / "c.npz")
    mc.save_predictions(other, labels[::-1], b)
    with pytest.raises(DataError, match="c.npz: not the test items of .*a.npz"):
        mc.compare_files(pa, other)
    np.savez(str(tmp_path / "bad.npz"), labels=labels)
    with pytest.raises(DataError, match="bad.npz: needs 'labels' and 'predictions'"):
        mc.load_predictions(str(tmp_path / "bad.npz"))
    with pytest.raises(DataError, match="missing.npz: no predictions file"):
        mc.load_predictions(str(tmp_path / "missing.npz"))


# ----------------------------------------------------------------------------
# Table 1 writes the predictions; recipe_table reads them.


def test_table1_writes_predictions_that_reproduce_its_accuracy(tmp_path):
    archive = write_archive(str(tmp_path / "mini.npz"))
    run = make_run(str(tmp_path / "with"), step=5)
    results = str(tmp_path / "results")
    args = [
        f"--runs=with:{run}",
        "--random_baseline",
        "--dataset=archive",
        f"--data_dir={archive}",
        f"--results_dir={results}",
        "--batch_size=8",
        "--noprogress",
    ]
    assert run_script("experiments/table1.py", *args) == 0
    payload = json.load(open(os.path.join(results, "table1.json")))
    saved = {}
    for label in ("with", "random_init"):
        entry = payload["runs"][label]
        assert entry["predictions_file"] == f"predictions/{label}.npz"
        saved[label] = mc.load_predictions(os.path.join(results, entry["predictions_file"]))
        pred, labels = saved[label]["predictions"], saved[label]["labels"]
        assert pred.dtype == np.int64 and labels.size == 30
        assert 100 * np.mean(pred == labels) == pytest.approx(entry["accuracy_pct"])
        confusion = np.array(entry["classification"]["confusion"])
        assert np.array_equal(np.diag(confusion), np.bincount(labels[pred == labels], minlength=10))
        assert saved[label]["model_ids"] is not None and len(saved[label]["model_ids"]) == 30
    r = mc.compare_files(*(os.path.join(results, f"predictions/{x}.npz") for x in saved))
    want = payload["runs"]["with"]["accuracy_pct"] - payload["runs"]["random_init"]["accuracy_pct"]
    assert r.difference_pct == pytest.approx(want)


def _write_seed(folder, rows: dict, with_predictions: bool):
    """table1.json/table2.json of one seed; rows: label -> correctness list."""
    os.makedirs(folder, exist_ok=True)
    runs1, runs2 = {}, {}
    for i, (label, right) in enumerate(rows.items()):
        labels, pred, _ = vectors(right, right, seed=7)
        runs1[label] = {"accuracy_pct": 100 * float(np.mean(right))}
        runs2[label] = {"map_pct": 40.0 + i}
        if with_predictions:
            runs1[label]["predictions_file"] = f"predictions/{label}.npz"
            mc.save_predictions(os.path.join(folder, "predictions", f"{label}.npz"), labels, pred)
    for table, runs in (("table1", runs1), ("table2", runs2)):
        with open(os.path.join(folder, f"{table}.json"), "w") as f:
            json.dump({"table": table, "runs": runs, "order": list(rows)}, f)


def test_recipe_table_shows_mcnemar_per_seed_and_pooled(tmp_path, capsys):
    rng = np.random.default_rng(3)
    other = [rng.integers(0, 2, 20).tolist(), rng.integers(0, 2, 5).tolist()]
    seeds = [
        {"paper": RIGHT_A, "other": other[0], "random_init": RIGHT_B},
        {"paper": [1, 0, 0, 0, 1], "other": other[1], "random_init": [0, 1, 1, 1, 1]},
        {"paper": RIGHT_A, "other": other[0], "random_init": RIGHT_B},
    ]
    dirs = [str(tmp_path / f"seed{i}") for i in range(3)]
    for i, (folder, rows) in enumerate(zip(dirs, seeds)):
        _write_seed(folder, rows, with_predictions=i < 2)  # seed2: results from before
    output = str(tmp_path / "out" / "recipes.md")
    args = [f"--results_dirs={','.join(dirs)}", f"--output={output}"]
    assert run_script("experiments/recipe_table.py", *args) == 0
    md = open(output).read()
    cells = table_row(md.split("per seed: n01 / n10 (p)")[1], "paper")
    assert cells[1] == "random_init"
    assert cells[2] == "8 / 2 (p=0.109); 1 / 3 (p=0.625); —"
    assert cells[3:] == ["9 / 5 (2 seeds)", "+16.00", "0.424"]
    assert "t-interval over seeds is the primary statistic" in md
    payload = json.load(open(os.path.splitext(output)[0] + ".json"))
    by_pair = {(m["a"], m["b"]): m for m in payload["mcnemar"]}
    assert set(by_pair) >= {("paper", "random_init"), ("other", "random_init"), ("other", "paper")}
    floor = by_pair[("paper", "random_init")]
    assert [s["source"] for s in floor["per_seed"]] == dirs
    assert floor["per_seed"][0]["result"]["n01"] == 8 and floor["per_seed"][2]["result"] is None
    assert floor["pooled"]["n01"] == 9 and floor["pooled"]["n10"] == 5
    assert floor["pooled"]["p_value"] == pytest.approx(2 * 3473 / 16384)
    vs_paper = by_pair[("other", "paper")]["per_seed"][0]["result"]
    want = mc.mcnemar(*vectors(other[0], RIGHT_A, seed=7))
    assert (vs_paper["n01"], vs_paper["n10"]) == (want.n01, want.n10)
    # The t-interval columns are still there.
    assert "Δ SVM vs random_init" in md and payload["comparisons"]

    # Rows of one seed over different test items: one error line naming the file.
    mc.save_predictions(os.path.join(dirs[0], "predictions", "other.npz"), [0, 1], [0, 1])
    capsys.readouterr()
    args = [f"--results_dirs={','.join(dirs)}", f"--output={tmp_path / 'again.md'}"]
    assert run_script("experiments/recipe_table.py", *args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "not the test items" in err and err.count("\n") == 1


def test_recipe_table_merges_one_subfolder_per_run(tmp_path):
    """The long protocol's layout: seed<N>/<run>/table{1,2}.json, each with the floor."""
    floor = [1, 0, 1, 0, 1, 0, 1, 0, 1, 0]
    dirs = []
    for seed in range(3):
        folder = tmp_path / f"seed{seed}"
        right = [1] * (6 + seed) + [0] * (4 - seed)
        _write_seed(str(folder / "paper"), {"paper": right, "random_init": floor}, True)
        _write_seed(str(folder / "paper_noenh"), {"paper_noenh": floor, "random_init": floor}, True)
        dirs.append(str(folder))
    output = str(tmp_path / "claims.md")
    args = [f"--results_dirs={','.join(dirs)}", f"--output={output}"]
    assert run_script("experiments/recipe_table.py", *args) == 0
    payload = json.load(open(str(tmp_path / "claims.json")))
    summaries = payload["summaries"]
    assert summaries["paper"]["svm"]["values"] == [60.0, 70.0, 80.0]
    assert summaries["random_init"]["svm"]["values"] == [50.0, 50.0, 50.0]  # once per seed
    assert summaries["paper_noenh"]["svm"]["values"] == [50.0, 50.0, 50.0]
    pairs = {(c["a"], c["b"], c["metric"]): c for c in payload["comparisons"]}
    assert pairs[("paper", "random_init", "svm")]["mean_difference"] == pytest.approx(20.0)
    floor_mc = {(m["a"], m["b"]): m for m in payload["mcnemar"]}[("paper", "random_init")]
    assert all(s["result"] is not None for s in floor_mc["per_seed"])
