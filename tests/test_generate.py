"""Generation: noise, writing shapes, and tools/generate.py end to end."""

import os
import subprocess
import sys

import numpy as np
import pytest
import trimesh

from enhancer_gan import generation
from enhancer_gan.io_utils import OutputExistsError
from enhancer_gan.training.loop import train
from enhancer_gan.voxels.binvox import read_binvox
from tests.helpers import tiny_experiment, tiny_source, tiny_train_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_noise_is_uniform_and_reproducible():
    z = generation.sample_noise(2000, 100, seed=3)
    assert z.shape == (2000, 100) and z.dtype == np.float32
    assert -1 <= z.min() < -0.99 and 0.99 < z.max() <= 1
    assert abs(z.mean()) < 0.02 and abs(z.var() - 1 / 3) < 0.01  # U[-1,1], not N(0,1)
    np.testing.assert_array_equal(z, generation.sample_noise(2000, 100, seed=3))


def test_interpolation_has_the_two_ends():
    z = generation.interpolate_noise(5, 7, seed=1)
    a, b = generation.sample_noise(2, 7, seed=1)
    np.testing.assert_allclose(z[0], a)
    np.testing.assert_allclose(z[-1], b)
    np.testing.assert_allclose(z[2], (a + b) / 2, rtol=1e-6)


def test_write_shapes_files_and_refusal(tmp_path):
    occ = np.zeros((2, 16, 16, 16), np.float32)
    occ[0, 4:12, 4:12, 4:12] = 0.9
    occ[1, 2:6, 2:14, 2:6] = 0.7
    out = str(tmp_path / "out")
    written = generation.write_shapes(occ, out, mesh_format="ply")
    np.testing.assert_array_equal(read_binvox(written["binvox"][0]).grid, occ[0] > 0.5)
    mesh = trimesh.load(written["mesh"][1])
    assert mesh.is_watertight and len(mesh.faces) > 0
    assert os.path.getsize(written["sheet"][0]) > 1000
    with pytest.raises(OutputExistsError, match="--overwrite"):
        generation.write_shapes(occ, out, mesh_format="ply")
    generation.write_shapes(occ, out, mesh_format="ply", overwrite=True)


def test_generate_tool_from_a_run_and_from_its_export(tmp_path):
    source, _ = tiny_source(str(tmp_path / "views"), n=4, res=32, views=1)
    run_dir = str(tmp_path / "run")
    train(
        tiny_experiment(run_dir, train=tiny_train_config(num_steps=1)),
        source=source,
        progress=False,
        log=lambda *_: None,
    )
    out = str(tmp_path / "gen")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    cmd = [
        sys.executable,
        os.path.join(ROOT, "tools", "generate.py"),
        f"--run_dir={run_dir}",
        f"--output_dir={out}",
        "--num_samples=3",
        "--export",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Wrote 3 shapes" in proc.stdout
    assert sorted(f for f in os.listdir(out) if f.endswith(".binvox")) == [
        "sample_0000.binvox",
        "sample_0001.binvox",
        "sample_0002.binvox",
    ]
    # The same z through the exported SavedModel gives the same shapes.
    out2 = str(tmp_path / "gen2")
    cmd2 = [
        sys.executable,
        os.path.join(ROOT, "tools", "generate.py"),
        f"--export_dir={os.path.join(out, 'export')}",
        f"--output_dir={out2}",
        "--num_samples=3",
    ]
    proc = subprocess.run(cmd2, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for i in range(3):
        a = read_binvox(os.path.join(out, f"sample_{i:04d}.binvox")).grid
        b = read_binvox(os.path.join(out2, f"sample_{i:04d}.binvox")).grid
        assert (a != b).mean() < 0.001
    # Running again refuses to overwrite, with one clear line.
    proc = subprocess.run(cmd[:-1], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 2 and "error:" in proc.stderr and "--overwrite" in proc.stderr
    # --largest_component (display post-processing) keeps one piece of each shape.
    from enhancer_gan.evaluation.shape_stats import per_grid_stats

    out3 = str(tmp_path / "gen3")
    cmd3 = [*cmd[:3], f"--output_dir={out3}", "--num_samples=3", "--largest_component"]
    proc = subprocess.run(cmd3, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "post-processing" in proc.stdout
    raw = np.stack(
        [read_binvox(os.path.join(out, f"sample_{i:04d}.binvox")).grid for i in range(3)]
    )
    kept = np.stack(
        [read_binvox(os.path.join(out3, f"sample_{i:04d}.binvox")).grid for i in range(3)]
    )
    assert per_grid_stats(kept)["components"].max() <= 1
    assert not (kept & ~raw).any()  # only removes voxels
