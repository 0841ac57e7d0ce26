"""The long protocol (issue 19): block-L2 retrieval, sample measures along a run,
provenance, and experiments/reproduce_mn10_long.sh end to end at toy size."""

import json
import os
import pathlib
import subprocess

import numpy as np
import pytest

from enhancer_gan.evaluation import feature_curve as fc
from enhancer_gan.evaluation.diagnostics import block_l2_normalize, retrieval_scalings
from tests.test_tables import write_archive

ROOT = pathlib.Path(__file__).resolve().parents[1]


def toy_driver(tmp_path, per_class_test: int, **env):
    """A call of reproduce_mn10_long.sh on a tiny archive, 2 steps at toy width:
    returns a function that runs it (asserting success) and returns its stdout."""
    archive = write_archive(
        str(tmp_path / "mini.npz"), per_class_train=5, per_class_test=per_class_test
    )
    env = dict(
        os.environ,
        STEPS="2",
        DATA=archive,
        RUNS=str(tmp_path / "runs"),
        CACHE=str(tmp_path / "cache"),
        EXTRA="--width_multiplier=0.0625 --batch_size=4 --image_size=32 --views_per_model=1",
        **env,
    )
    script = str(ROOT / "experiments" / "reproduce_mn10_long.sh")

    def run():
        proc = subprocess.run(
            ["bash", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900
        )
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        return proc.stdout

    return run


def test_block_l2_gives_every_block_unit_norm_and_keeps_directions():
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(5, 9)).astype(np.float32)
    feats[:, 2:6] *= 1000.0  # a block on another scale
    feats[3, 6:] = 0.0  # a zero block stays zero
    out = block_l2_normalize(feats, (2, 4, 3))
    for start, stop in ((0, 2), (2, 6), (6, 9)):
        norms = np.linalg.norm(out[:, start:stop], axis=1)
        expected = np.ones(5)
        if start == 6:
            expected[3] = 0.0
        np.testing.assert_allclose(norms, expected, rtol=1e-5)
    # Same direction within each block: out = feats / norm.
    np.testing.assert_allclose(
        out[0, 2:6], feats[0, 2:6] / np.linalg.norm(feats[0, 2:6]), rtol=1e-5
    )
    with pytest.raises(ValueError, match="add up"):
        block_l2_normalize(feats, (2, 4))


def test_block_l2_map_recovers_a_class_signal_drowned_by_a_loud_block():
    """One informative block beside a 1000x louder noise block: raw mAP sees noise,
    block-L2 sees the classes."""
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(4), 30)
    centres = rng.normal(0, 1, (4, 10)) * 3
    informative = centres[labels] + rng.normal(0, 0.5, (120, 10))
    loud = rng.normal(0, 1000, (120, 10))
    feats = np.concatenate([informative, loud], axis=1).astype(np.float32)
    split = fc.carve_validation(labels, 0.25, seed=0)
    scores = fc.score_features(feats, labels, split, c_values=[1.0], block_sizes=(10, 10))
    assert scores["map_block_l2"] > scores["map_raw"] + 20
    assert "map_block_l2" not in fc.score_features(feats, labels, split, c_values=[1.0])


def test_read_provenance_keeps_every_line(tmp_path):
    assert fc.read_provenance(str(tmp_path)) == []
    (tmp_path / "provenance.jsonl").write_text(
        '{"commit": "abc", "from_step": 0}\n\nnot json\n{"commit": "def", "from_step": 500}\n'
    )
    lines = fc.read_provenance(str(tmp_path))
    assert [p.get("commit") for p in lines] == ["abc", None, "def"]
    assert lines[1] == {"unreadable": "not json"}


def test_sample_ceiling_of_the_reference_itself_is_perfect_coverage():
    rng = np.random.default_rng(2)
    grids = rng.random((6, 8, 8, 8)) > 0.7
    ref = fc.SampleReference(reference=grids, ceiling=grids.copy(), num_samples=6)
    scores = ref.ceiling_scores()
    assert scores["cov"] == 1.0 and scores["mmd"] == 0.0
    assert set(scores) == set(fc.SAMPLE_KEYS)


@pytest.mark.slow
def test_long_protocol_script_end_to_end_at_toy_size(tmp_path):
    """reproduce_mn10_long.sh on a tiny archive: trains, scores every checkpoint with
    samples and provenance, skips the finished row on a second call."""
    results = tmp_path / "results"
    run = toy_driver(tmp_path, 1, ROWS="r1_10", EVERY="1", SAMPLES="4", RESULTS=str(results))
    run()
    curve = json.loads((results / "r1_10_s0.json").read_text())
    assert [c["step"] for c in curve["checkpoints"]] == [1, 2]
    for point in [curve["floor"], *curve["checkpoints"]]:
        assert {"svm_val_accuracy", "map_raw", "map_standardized", "map_block_l2"} <= set(point)
        assert point["samples"]["cov"] > 0
        assert 0 < point["samples"]["cov"] <= 1
    assert curve["train_config"]["r1_gamma"] == 10
    assert curve["sample_ceiling"]["generated_components"] >= 1
    assert len(curve["provenance"]) == 1 and len(curve["provenance"][0]["commit"]) >= 7
    assert (results / "r1_10_s0.png").stat().st_size > 0
    assert "r1_10_s0" in (results / "r1_10_s0.md").read_text()
    assert (results / "r1_10_s0_samples.png").stat().st_size > 0  # the last step's sheet
    assert "trained in" in (results / "r1_10_s0_wall_time.txt").read_text()
    assert json.loads((results / "r1_10_s0_provenance.jsonl").read_text())["from_step"] == 0
    assert "skipped" in run()


def test_block_l2_retrieval_is_not_drowned_by_a_loud_block():
    """One block holds the classes, a 1000x louder block noise: raw mAP is near chance,
    block-L2 mAP high (the noise block still weighs as much as the signal)."""
    rng = np.random.default_rng(4)

    def split(n):
        labels = np.arange(n) % 3
        signal = np.eye(3)[labels] + 0.05 * rng.standard_normal((n, 3))
        noise = 1000 * rng.standard_normal((n, 5))
        return {"features": np.hstack([signal, noise]).astype(np.float32), "labels": labels}

    train, test = split(60), split(30)
    scal = retrieval_scalings(train, test, block_sizes=(3, 5))
    assert scal["raw"] < 60 and scal["block_l2"] > 85  # the noise block still counts
    assert "block_l2" not in retrieval_scalings(train, test)


@pytest.mark.slow
def test_long_claims_score_each_run_on_its_own_and_skip_scored_runs(tmp_path):
    """PART=claims on a tiny archive: each run's tables beside its seed's floor in its own
    folder, then the table over seeds from those folders; a second call trains nothing."""
    claims = tmp_path / "claims"
    env = dict(PART="claims", SEEDS="0", WINNER="paper", LAYERS="3", EVERY="2", SAMPLES="2")
    run = toy_driver(tmp_path, 2, CLAIMS=str(claims), **env)
    run()
    runs = {"paper": (True, 1), "paper_noenh": (False, 1), "paper_layer3": (True, 3)}
    for label, (enhancer, layer) in runs.items():
        out = claims / "seed0" / label
        t1 = json.loads((out / "table1.json").read_text())
        t2 = json.loads((out / "table2.json").read_text())
        assert t1["order"] == [label, "random_init"] == t2["order"]
        for key in ("map_std_pct", "map_block_l2_pct"):
            assert 0 < t2["runs"][label][key] <= 100
        assert (out / "predictions" / f"{label}.npz").is_file()
        assert json.loads((out / f"generation_{label}.json").read_text())["cov"] > 0
        assert json.loads((out / "provenance.jsonl").read_text())["from_step"] == 0
        config = json.loads(
            (tmp_path / "runs" / "claims" / f"{label}_s0" / "config.json").read_text()
        )
        assert (config["model"]["use_enhancer"], config["model"]["enhancer_layer"]) == (
            enhancer,
            layer,
        )
    summary = json.loads((claims / "claims.json").read_text())
    assert set(summary["summaries"]) == {*runs, "random_init"}
    floors = {
        label: json.loads((claims / "seed0" / label / "table1.json").read_text())["runs"][
            "random_init"
        ]["accuracy_pct"]
        for label in runs
    }
    # The same floor beside every run of a seed with the enhancer, and in the merged
    # table (without GE, DM's initial weights are other draws of the same seed).
    assert floors["paper"] == floors["paper_layer3"]
    assert summary["summaries"]["random_init"]["svm"]["values"] == [floors["paper"]]
    again = run()
    assert again.count("skipped") == 3 and "trained in" not in again
