"""Generation quality of a run: reference grids, the library call and the tool."""

import json
import os

import numpy as np
import pytest

from enhancer_gan.config import ExperimentConfig
from enhancer_gan.data.archives import archive_to_canonical
from enhancer_gan.errors import ConfigError
from enhancer_gan.evaluation.generation_eval import evaluate_run_generation, reference_grids_for
from tests.test_tables import make_run, run_script, write_archive

QUIET = {"log": lambda *_: None}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return make_run(str(tmp_path_factory.mktemp("gen") / "run"), step=3)


@pytest.fixture(scope="module")
def config(run_dir):
    return ExperimentConfig.load(os.path.join(run_dir, "config.json"))


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    return write_archive(str(tmp_path_factory.mktemp("data") / "mini.npz"), 2, 2)


def _generated(run_dir, num, seed, batch_size=16):
    """The run's samples drawn the way the tools draw them: [num, R, R, R] bool."""
    from enhancer_gan.generation import generate_in_batches, generator_from_run, sample_noise

    generate, latent_dim = generator_from_run(run_dir)
    return generate_in_batches(generate, sample_noise(num, latent_dim, seed), batch_size) > 0.5


def _iou_distance(a, b):
    inter = np.logical_and(a, b).sum()
    union = np.logical_or(a, b).sum()
    return 0.0 if union == 0 else 1.0 - inter / union


def test_samples_against_themselves_and_a_hand_computed_reference(run_dir):
    samples = _generated(run_dir, 6, seed=4)
    assert len({s.tobytes() for s in samples}) == 6  # distinct, so COV can reach 1
    report = evaluate_run_generation(run_dir, samples, num_samples=6, seed=4)
    assert report["cov"] == 1.0 and report["mmd"] == 0.0
    assert report["one_nna"] == 0.0  # each sample's nearest neighbour is its twin
    assert report["generated_mean_occupancy"] == pytest.approx(samples.mean())
    assert report["checkpoint"].endswith("ckpt-3") and report["step"] == 3
    assert report["num_generated"] == 6 and report["resolution"] == 32

    # Another reference: an empty grid, a solid block and one of the samples.
    reference = np.zeros((3, 32, 32, 32), bool)
    reference[1, 8:24, 8:24, 8:24] = True
    reference[2] = samples[1]
    report = evaluate_run_generation(run_dir, reference, num_samples=6, seed=4)
    d = np.array([[_iou_distance(g, r) for r in reference] for g in samples])
    assert report["mmd"] == pytest.approx(d.min(axis=0).mean())
    assert report["cov"] == pytest.approx(np.unique(d.argmin(axis=1)).size / 3)
    assert report["real_empty_fraction"] == pytest.approx(1 / 3)
    # Another seed draws other samples.
    other = evaluate_run_generation(run_dir, samples, num_samples=6, seed=5)
    assert other["mmd"] > 0


def test_bad_requests_are_config_errors(run_dir):
    with pytest.raises(ConfigError, match="16"):
        evaluate_run_generation(run_dir, np.zeros((2, 16, 16, 16), bool), num_samples=2)
    with pytest.raises(ConfigError, match="num_samples"):
        evaluate_run_generation(run_dir, np.zeros((2, 32, 32, 32), bool), num_samples=0)


def test_reference_from_an_archive(archive, config):
    from enhancer_gan.data.archives import load_archive

    raw = load_archive(archive, canonical=False)
    grids = reference_grids_for("archive", archive, "test", 32, config, **QUIET)
    np.testing.assert_array_equal(grids, archive_to_canonical(raw.x_test))  # project frame
    chairs = reference_grids_for("archive", archive, "train", 32, config, categories=["chair"])
    np.testing.assert_array_equal(chairs, archive_to_canonical(raw.x_train[raw.y_train == 2]))
    two = reference_grids_for("archive", archive, "test", 32, config, max_count=2, seed=1)
    assert two.shape == (2, 32, 32, 32)
    assert all(any(np.array_equal(g, h) for h in grids) for g in two)
    with pytest.raises(ConfigError, match="airplane"):
        reference_grids_for("archive", archive, "test", 32, config, categories=["airplane"])
    with pytest.raises(ConfigError, match="32"):
        reference_grids_for("archive", archive, "test", 64, config)
    with pytest.raises(ConfigError, match="split"):
        reference_grids_for("archive", archive, "val", 32, config)


def test_reference_from_the_synthetic_set_and_real_modelnet(tmp_path, config, shared_data):
    from enhancer_gan.data.synthetic import ensure_synthetic_dataset

    root = str(tmp_path / "synthetic")
    ensure_synthetic_dataset(
        root,
        num_per_category=3,
        categories=["chair", "sofa"],
        views_per_model=1,
        render_size=32,
        progress=False,
        workers=1,
    )
    cache = str(tmp_path / "cache")
    grids = reference_grids_for("synthetic", root, "test", 32, config, cache_dir=cache, **QUIET)
    assert grids.shape == (2, 32, 32, 32)  # one test model per category
    assert 0.01 < grids.mean() < 0.5
    sofas = reference_grids_for(
        "synthetic", root, "test", 32, config, categories=["sofa"], cache_dir=cache, **QUIET
    )
    assert sofas.shape == (1, 32, 32, 32)
    assert any(np.array_equal(sofas[0], g) for g in grids)
    # Held out and made like the training grids: the test models' own 3D-R2N2-style
    # binvox, which training never reads.
    from enhancer_gan.config import DataConfig
    from enhancer_gan.data.datasets import load_shapes
    from enhancer_gan.data.synthetic import synthetic_models
    from enhancer_gan.voxels.binvox import read_binvox

    models = synthetic_models(3, 0, ["chair", "sofa"])
    held_out = [read_binvox(m.voxel_path(root)).grid for m in models if m.split == "test"]
    np.testing.assert_array_equal(grids, np.stack(held_out))
    trained = load_shapes(DataConfig(kind="synthetic", data_dir=root), 32, cache, **QUIET)
    assert {r.model_id for r in trained.records} == {
        m.model_id for m in models if m.split == "train"
    }
    # The real ModelNet10 sample: its test split is one toilet.
    toilet = reference_grids_for(
        "modelnet", str(shared_data / "ModelNet10"), "test", 32, config, cache_dir=cache, **QUIET
    )
    assert toilet.shape == (1, 32, 32, 32) and toilet.any()


def test_tool_end_to_end(tmp_path, run_dir, archive, capsys):
    output = str(tmp_path / "gen.json")
    args = [
        f"--run_dir={run_dir}",
        "--reference=archive",
        f"--data_dir={archive}",
        "--num_samples=5",
        "--batch_size=4",
        f"--output={output}",
    ]
    assert run_script("tools/evaluate_generation.py", *args) == 0
    out = capsys.readouterr().out
    for word in ("COV", "MMD", "1-NNA", "components", "> 3 pieces", "undecided", "ceiling"):
        assert word in out
    report = json.load(open(output))
    for key in ("cov", "mmd", "one_nna", "generated_mean_occupancy", "generated_largest_share"):
        assert 0.0 <= report[key] <= 1.0
    assert report["num_generated"] == 5 and report["num_real"] == 20
    # The ceiling: 5 training grids of the archive scored against the same reference.
    ceiling = report["ceiling"]
    assert ceiling["num_generated"] == 5 and ceiling["num_real"] == 20
    assert ceiling["generated_components"] >= 1 and ceiling["generated_undecided"] == 0.0
    assert report["sampling"] == "recalibrated"
    assert report["reference"]["dataset"] == "archive" and report["step"] == 3
    # The same call in the library gives the same numbers.
    reference = reference_grids_for(
        "archive", archive, "test", 32, ExperimentConfig.load(f"{run_dir}/config.json")
    )
    direct = evaluate_run_generation(run_dir, reference, num_samples=5, batch_size=4)
    assert direct["mmd"] == pytest.approx(report["mmd"])
    assert direct["cov"] == report["cov"]

    before = open(output).read()
    assert run_script("tools/evaluate_generation.py", *args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "--overwrite" in err
    assert open(output).read() == before
    assert run_script("tools/evaluate_generation.py", *args, "--seed=1", "--overwrite") == 0
    assert json.load(open(output))["seed"] == 1
    not_a_run = [*args[1:], f"--run_dir={tmp_path}", "--overwrite"]
    assert run_script("tools/evaluate_generation.py", *not_a_run) == 2
    assert "not a run folder" in capsys.readouterr().err
