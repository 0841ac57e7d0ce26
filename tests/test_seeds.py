"""Mean and spread over seeds (evaluation/seeds.py, experiments/summarize_seeds.py)."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from enhancer_gan.errors import DataError
from enhancer_gan.evaluation import seeds

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write_table(folder, table, values, metric=None):
    metric = metric or seeds.TABLE_METRICS[table][0]
    os.makedirs(folder, exist_ok=True)
    payload = {
        "table": table,
        "order": list(values),
        "runs": {label: {metric: v} for label, v in values.items()},
    }
    with open(os.path.join(folder, f"{table}.json"), "w") as f:
        json.dump(payload, f)
    return str(folder)


def test_summaries_are_grouped_by_label_with_hand_worked_spread(tmp_path):
    dirs = [
        write_table(tmp_path / "s0", "table1", {"with_enhancer": 90.0, "random_init": 87.0}),
        write_table(tmp_path / "s1", "table1", {"with_enhancer": 92.0, "random_init": 87.5}),
        write_table(tmp_path / "s2", "table1", {"with_enhancer": 91.0, "random_init": 88.0}),
    ]
    (we, ri) = seeds.summarize(dirs, "table1")
    assert we.label == "with_enhancer" and ri.label == "random_init"
    assert we.values == (90.0, 92.0, 91.0) and we.sources == tuple(dirs)
    assert we.mean == pytest.approx(91.0) and we.std == pytest.approx(1.0)
    assert ri.mean == pytest.approx(87.5) and ri.std == pytest.approx(0.5)
    # Paired by folder, by hand: d = (3, 4.5, 3), mean 3.5, sd = sqrt(0.75),
    # t_{0.975, 2} = 4.302653 (printed t tables), half width 4.302653 * 0.5 = 2.1513.
    c = seeds.paired(we, ri)
    assert c.differences == pytest.approx((3.0, 4.5, 3.0)) and c.sources == tuple(dirs)
    assert c.n == 3 and c.mean_difference == pytest.approx(3.5)
    assert c.ci_low == pytest.approx(3.5 - 2.1513, abs=1e-3)
    assert c.ci_high == pytest.approx(3.5 + 2.1513, abs=1e-3)
    assert c.resolved and c.verdict.startswith("with_enhancer higher")
    assert seeds.paired(ri, we).verdict.startswith("random_init lower")


def test_pairing_follows_the_folder_not_the_position():
    """Seed-to-seed variation shared by both labels cancels in a paired test:
    a is b + 1 in every folder, so the interval is [1, 1] even though the
    two columns overlap heavily (an unpaired test would call this noise)."""
    b = seeds.Summary("b", (80.0, 90.0, 85.0), ("s0", "s1", "s2"))
    a = seeds.Summary("a", (86.0, 81.0, 91.0), ("s2", "s0", "s1"))  # same seeds, other order
    c = seeds.paired(a, b)
    assert c.differences == pytest.approx((1.0, 1.0, 1.0)) and c.sources == ("s2", "s0", "s1")
    assert (c.ci_low, c.ci_high) == pytest.approx((1.0, 1.0)) and c.resolved


def test_an_interval_containing_zero_is_unresolved_never_the_same():
    a = seeds.Summary("a", (90.0, 92.0, 88.0), ("x", "y", "z"))
    b = seeds.Summary("b", (91.0, 89.0, 90.5), ("x", "y", "z"))
    c = seeds.paired(a, b)
    assert c.ci_low < 0 < c.ci_high and not c.resolved
    assert "unresolved" in c.verdict and "same" not in c.verdict
    d = c.to_dict()
    assert d["n"] == 3 and d["differences"] == pytest.approx([-1.0, 3.0, -2.5])
    assert d["ci95"] == pytest.approx([c.ci_low, c.ci_high])
    single = seeds.Summary("c", (95.0,), ("x",))
    assert math.isnan(single.std) and single.to_dict()["std"] is None
    one = seeds.paired(single, a)
    assert one.n == 1 and math.isnan(one.ci_low) and not one.resolved
    assert one.to_dict()["ci95"] == [None, None] and "no interval" in one.verdict
    # Folders holding only one of the two labels are not paired.
    assert seeds.paired(seeds.Summary("e", (1.0,), ("w",)), a).n == 0


def test_a_folder_without_results_names_the_file(tmp_path):
    good = write_table(tmp_path / "s0", "table2", {"with_enhancer": 50.0})
    with pytest.raises(DataError, match="table2.json"):
        seeds.summarize([good, str(tmp_path / "missing")], "table2")
    bad = write_table(tmp_path / "s1", "table2", {"with_enhancer": float("nan")})
    with pytest.raises(DataError, match="no finite map_pct"):
        seeds.summarize([bad], "table2")
    wrong = write_table(tmp_path / "s2", "table1", {"with_enhancer": 50.0})
    os.rename(os.path.join(wrong, "table1.json"), os.path.join(wrong, "table2.json"))
    with pytest.raises(DataError, match="not a table2 results file"):
        seeds.summarize([wrong], "table2")


def test_script_writes_markdown_and_json_and_refuses_to_overwrite(tmp_path):
    dirs = []
    rng = np.random.default_rng(0)
    for s in range(3):
        folder = tmp_path / f"seed{s}"
        write_table(folder, "table1", {"with_enhancer": 90 + rng.random(), "random_init": 87.0})
        write_table(folder, "table2", {"with_enhancer": 60 + rng.random(), "random_init": 48.0})
        dirs.append(str(folder))
    output = tmp_path / "out" / "summary.md"
    cmd = [
        sys.executable,
        os.path.join(ROOT, "experiments", "summarize_seeds.py"),
        f"--results_dirs={','.join(dirs)}",
        f"--output={output}",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    text = output.read_text()
    assert "## table1" in text and "## table2" in text and "with_enhancer − random_init" in text
    assert "95% CI" in text and "Welch" not in text
    payload = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert payload["tables"]["table2"]["summaries"][1]["mean"] == pytest.approx(48.0)
    (comparison,) = payload["tables"]["table2"]["comparisons"]
    assert comparison["n"] == 3 and len(comparison["differences"]) == 3
    assert comparison["resolved"]  # 60-61 against 48 in every seed
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert again.returncode == 2 and "--overwrite" in again.stderr
    assert again.stderr.count("\n") == 1


def test_feature_diagnostics_scalings(tmp_path):
    """A feature whose class signal hides under one huge noisy dimension:
    raw retrieval misses it, standardised retrieval finds it."""
    from enhancer_gan.evaluation.features import save_features

    rng = np.random.default_rng(0)
    for label in ("hidden", "plain"):
        for split, n in (("train", 60), ("test", 40)):
            y = np.arange(n) % 2
            x = np.zeros((n, 3), np.float32)
            x[:, 0] = y * 0.1 + rng.normal(0, 0.01, n)  # the class, small scale
            x[:, 1] = rng.normal(0, 100.0 if label == "hidden" else 0.01, n)  # loud noise
            x[:, 2] = rng.normal(0, 0.01, n)
            save_features(
                str(tmp_path / "r" / "features" / label / f"{split}.npz"),
                x,
                y,
                ("a", "b"),
                [f"m{i}" for i in range(n)],
                {"step": 1},
            )
    output = tmp_path / "diag.md"
    proc = subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "experiments", "feature_diagnostics.py"),
            f"--results_dirs={tmp_path / 'r'}",
            f"--output={output}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = {
        line.split("|")[2].strip(): [float(c) for c in line.split("|")[4:7]]
        for line in output.read_text().splitlines()
        if line.startswith("|") and ("hidden" in line or "plain" in line)
    }
    raw, standardized, _ = rows["hidden"]
    assert raw < 70 and standardized > 80  # the loud dimension hid the class
    assert min(rows["plain"][:2]) > 80
