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
    # Welch by hand: t = 3.5 / sqrt(1/3 + 0.25/3), df = (5/12)^2 / ((1/3)^2/2 + (1/12)^2/2).
    se2 = 1 / 3 + 0.25 / 3
    t = 3.5 / math.sqrt(se2)
    df = se2**2 / ((1 / 3) ** 2 / 2 + (0.25 / 3) ** 2 / 2)
    from scipy import stats

    c = seeds.welch(we, ri)
    assert c.difference == pytest.approx(3.5)
    assert c.p_value == pytest.approx(2 * stats.t.sf(t, df))
    assert not c.within_noise  # p is about 0.02


def test_overlapping_seeds_are_within_the_noise_and_one_seed_has_no_spread(tmp_path):
    a = seeds.Summary("a", (90.0, 92.0, 88.0), ("x", "y", "z"))
    b = seeds.Summary("b", (91.0, 89.0, 90.5), ("x", "y", "z"))
    assert seeds.welch(a, b).within_noise
    single = seeds.Summary("c", (95.0,), ("x",))
    assert math.isnan(single.std)
    c = seeds.welch(single, a)
    assert math.isnan(c.p_value) and c.within_noise
    assert single.to_dict()["std"] is None


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
    payload = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert payload["tables"]["table2"]["summaries"][1]["mean"] == pytest.approx(48.0)
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
