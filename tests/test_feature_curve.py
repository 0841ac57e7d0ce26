"""Feature quality along a run (evaluation/feature_curve.py, experiments/feature_curve.py)
and the recipe scripts end to end at toy size."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from enhancer_gan.evaluation import feature_curve as fc
from tests.test_tables import table_row, write_archive

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_validation_split_is_stratified_disjoint_and_seeded():
    labels = np.repeat(np.arange(5), [10, 20, 30, 40, 50])
    split = fc.carve_validation(labels, 0.2, seed=3)
    assert len(np.intersect1d(split.fit, split.val)) == 0
    assert len(split.fit) + len(split.val) == len(labels)
    np.testing.assert_array_equal(np.bincount(labels[split.val]), [2, 4, 6, 8, 10])
    again = fc.carve_validation(labels, 0.2, seed=3)
    np.testing.assert_array_equal(split.val, again.val)
    assert not np.array_equal(split.val, fc.carve_validation(labels, 0.2, seed=4).val)
    with pytest.raises(ValueError, match="fraction"):
        fc.carve_validation(labels, 1.5)


def test_scores_tell_informative_features_from_noise():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 30)
    centres = rng.normal(0, 1, (4, 20)) * 5
    informative = centres[labels] + rng.normal(0, 1, (120, 20))
    noise = rng.normal(0, 1, (120, 20))
    split = fc.carve_validation(labels, 0.25, seed=0)
    good = fc.score_features(informative.astype(np.float32), labels, split, c_values=[1.0])
    bad = fc.score_features(noise.astype(np.float32), labels, split, c_values=[1.0])
    assert good["svm_val_accuracy"] == 100.0 and good["map_raw"] > 95
    assert bad["svm_val_accuracy"] < 60 and bad["map_raw"] < 50  # chance: 25%, about 27%
    assert good["chosen_c"] == 1.0


@pytest.mark.slow
def test_reproduction_script_end_to_end_at_toy_size(tmp_path):
    """experiments/reproduce_mn10_small.sh on a tiny archive: every table, curve and sheet."""
    # 5 per class: the validation fifth of the curves holds one of each class.
    archive = write_archive(str(tmp_path / "mini.npz"), per_class_train=5, per_class_test=2)
    env = dict(
        os.environ,
        SEEDS="0 1",
        STEPS="2",
        ROWS="augment",
        BEST="augment",
        DATA=archive,
        RUNS=str(tmp_path / "runs"),
        CACHE=str(tmp_path / "cache"),
        RESULTS=str(tmp_path / "results"),
        EXTRA="--width_multiplier=0.0625 --batch_size=4 --image_size=32 --views_per_model=1",
    )
    proc = subprocess.run(
        ["bash", str(ROOT / "experiments" / "reproduce_mn10_small.sh")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = tmp_path / "results"
    text = (results / "recipes.md").read_text()
    for label in ("augment", "augment_no_enhancer", "random_init"):
        row = table_row(text, label)
        assert row[1] == "2"  # two seeds
    summary = json.loads((results / "recipes.json").read_text())
    svm = summary["summaries"]["augment"]["svm"]["values"]
    t1 = [json.loads((results / f"seed{s}" / "table1.json").read_text()) for s in (0, 1)]
    assert svm == [t["runs"]["augment"]["accuracy_pct"] for t in t1]
    cov = summary["summaries"]["random_init"]["cov"]["values"]
    assert len(cov) == 2 and all(0 <= c <= 1 for c in cov)
    curve = json.loads((results / "curves" / "augment_s1.json").read_text())
    assert curve["floor"]["step"] == 0 and [c["step"] for c in curve["checkpoints"]] == [2]
    assert curve["train_config"]["discriminator_augment"] is True
    assert (results / "curves" / "augment_s1.png").stat().st_size > 10_000
    assert (results / "curves" / "together.png").stat().st_size > 10_000
    assert any((results / "samples").iterdir())


def test_screen_refuses_an_unknown_recipe(tmp_path):
    proc = subprocess.run(
        ["bash", str(ROOT / "experiments" / "screen_recipes.sh")],
        cwd=ROOT,
        env=dict(os.environ, RECIPES="paper_typo", RUNS=str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "unknown recipe paper_typo" in proc.stderr
    assert not any(tmp_path.iterdir())


def test_recipe_flags_are_accepted_by_train_py():
    """Every recipe's flags parse into a config (train.py --dry_run), paper = defaults."""
    script = 'source experiments/recipes.sh; for r in ${!RECIPE[@]}; do echo "$r|$(recipe_flags $r)"; done'
    out = subprocess.run(
        ["bash", "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    recipes = dict(line.split("|", 1) for line in out.strip().splitlines())
    assert len(recipes) >= 8
    configs = {}
    for name, flags in recipes.items():
        proc = subprocess.run(
            [sys.executable, "experiments/train.py", "--dry_run", *flags.split()],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, (name, proc.stderr)
        parsed = json.loads(proc.stdout)
        configs[name] = {"model": parsed["model"], "train": parsed["train"]}
    default = json.loads(
        subprocess.run(
            [sys.executable, "experiments/train.py", "--dry_run"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    assert configs["paper"] == {"model": default["model"], "train": default["train"]}
    assert configs["augment"]["train"]["discriminator_augment"] is True
    assert configs["3dgan"]["train"]["discriminator_gate"] == 0.8
    assert configs["3dgan"]["train"]["generator_learning_rate"] == 2.5e-3
    assert configs["sn"]["model"]["dm_spectral_norm"] is True
    assert configs["mbstd"]["model"]["dm_minibatch_std"] is True
    assert configs["rotation"]["model"]["dm_rotation_head"] is True
    assert configs["rotation"]["train"]["rotation_weight"] == 1.0
    assert configs["wgan_gp"]["train"]["gan_loss"] == "wgan_gp"
    assert configs["wgan_gp"]["model"]["dm_batch_norm"] is False
    tv = configs["r1_10+rotation+tv30"]["train"]
    assert tv["voxel_tv_weight"] == 30.0 and tv["r1_gamma"] == 10.0 and tv["rotation_weight"] == 1.0
    # PAPER resets what a flag file sets (demo.cfg sets the penalty to 30).
    proc = subprocess.run(
        [
            sys.executable,
            "experiments/train.py",
            "--dry_run",
            "--flagfile=experiments/configs/demo.cfg",
            *recipes["r1_10"].split(),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["train"]["voxel_tv_weight"] == 0.0
    assert len({json.dumps(c, sort_keys=True) for c in configs.values()}) == len(configs)
