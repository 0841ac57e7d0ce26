"""The PyTorch side of the benchmarks: benchmarks/torch_mirror.py and the --torch runs.

The mirror translates the plain Keras networks (benchmarks/plain_keras.py) layer by
layer and copies their weights, so it must have the project's parameter count in every
network at both resolutions and compute what Keras computes (exactly for GM and DM,
whose kernel-4 padding is symmetric). The --quick runs of bench_vs_plain.py --torch and
bench_strided.py --torch must print positive ratios that match their tables. Skipped
when PyTorch is not installed (the optional `bench` extra: pip install -e ".[bench]");
.ci/run does not install it.
"""

import math
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason='PyTorch not installed (pip install -e ".[bench]")')

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
NETWORKS = (
    "enhancer_generator",
    "enhancer_discriminator",
    "voxel_generator",
    "voxel_discriminator",
)


def _quick(script: str, *args: str) -> list[str]:
    """Runs benchmarks/<script> --quick <args>; its stdout lines (it must exit 0)."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), "--quick", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout.strip().splitlines()


@pytest.mark.parametrize("resolution", [32, 64])
def test_mirror_has_the_projects_parameters_and_computes_what_keras_computes(resolution):
    import plain_keras
    from torch_mirror import TorchStep, torch_module

    from enhancer_gan.config import ModelConfig
    from enhancer_gan.models import build_networks

    config = ModelConfig(resolution=resolution, width_multiplier=1 / 16, image_size=32)
    plain = plain_keras.plain_networks(config)
    mirror = {name: torch_module(model) for name, model in plain.items()}
    project = build_networks(config)
    for name in NETWORKS:
        ours = sum(int(np.prod(v.shape)) for v in getattr(project, name).trainable_variables)
        assert sum(p.numel() for p in mirror[name].parameters()) == ours > 0, name
    rng = np.random.default_rng(0)
    step = TorchStep(mirror, memory_format="contiguous")
    grids = (rng.random((2, resolution, resolution, resolution, 1)) < 0.2).astype(np.float32)
    volume = rng.standard_normal((2, *plain["voxel_generator"].inputs[0].shape[1:]))
    z = rng.uniform(-1, 1, (2, config.latent_dim)).astype(np.float32)
    cases = [
        ("voxel_discriminator", grids, step.tensor(grids)),  # 3 feature maps and the logit
        ("voxel_generator", volume.astype(np.float32), step.tensor(volume.astype(np.float32))),
        ("enhancer_generator", z, torch.from_numpy(z)),  # GM's input volume, and the image
    ]
    for name, x, tx in cases:
        expected = plain[name](x, training=False)
        expected = expected if isinstance(expected, list) else [expected]
        with torch.no_grad():
            got = mirror[name].eval()(tx)
        got = got if isinstance(got, list) else [got]
        assert len(got) == len(expected), name
        for e, g in zip(expected, got):
            g = g.movedim(1, -1) if g.dim() > 2 else g
            assert tuple(g.shape[1:]) == tuple(e.shape[1:]), name
            if name != "enhancer_generator" or g.dim() == 5:  # GE's image: shifted padding
                np.testing.assert_allclose(g.numpy(), np.asarray(e), atol=1e-5, err_msg=name)


def test_quick_run_ratios_and_parameter_counts():
    lines = _quick("bench_vs_plain.py", "--torch")
    params = [
        re.fullmatch(r"params (\w+) res=32 ours=(\d+) plain=(\d+) torch=(\d+)", x) for x in lines
    ]
    params = [m for m in params if m]
    assert {m.group(1) for m in params} == set(NETWORKS), lines
    for m in params:
        assert int(m.group(2)) == int(m.group(3)) == int(m.group(4)) > 0, m.group(0)
    assert "params_match=True" in lines
    ratio = re.fullmatch(r"tf_vs_torch=(\S+)", lines[-1])
    assert ratio and math.isfinite(float(ratio.group(1))) and float(ratio.group(1)) > 0, lines[-5:]
    steps = {}
    start = next(i for i, x in enumerate(lines) if x.startswith("== train step"))
    for x in lines[start + 3 :]:
        if not x.strip():
            break
        name, seconds = x.rsplit(maxsplit=2)[:2]
        steps[name.strip()] = float(seconds)
    assert set(steps) == {"project", "project (old BN)", "plain keras", "torch"}, steps
    assert steps["torch"] / steps["project"] == pytest.approx(float(ratio.group(1)), rel=0.02)
    features = next(x for x in lines if x.startswith("ratio features_torch_over_ours="))
    assert float(features.split("=")[1]) > 0


def test_layer_by_layer_comparison_pairs_every_convolution():
    """bench_strided --torch --quick: one row per convolution of the four networks, all timed."""
    lines = _quick("bench_strided.py", "--torch")
    last = re.fullmatch(r"layers_torch_over_ours=(\S+)", lines[-1])
    assert last and float(last.group(1)) > 0, lines[-3:]
    rows = [x.split() for x in lines if re.match(r"(enhancer|voxel)_\w+/\w+ ", x)]
    # GE 2 + image, DE 4, GM 3, DM 3 at 32^3 with 32x32 images.
    assert len(rows) == 13, rows
    names = {r[0] for r in rows}
    assert {"enhancer_generator/deconv2", "voxel_discriminator/conv16_128"} <= names
    ours_total = theirs_total = 0.0
    for r in rows:
        stock, rewrite, chosen, theirs, ratio = float(r[-6]), float(r[-5]), r[-3], *r[-2:]
        ours = rewrite if chosen == "yes" else stock
        assert ours > 0 and float(theirs) > 0
        assert float(ratio) == pytest.approx(float(theirs) / ours, rel=0.02, abs=6e-3)
        ours_total, theirs_total = ours_total + ours, theirs_total + float(theirs)
    # The table prints 3 significant digits.
    assert theirs_total / ours_total == pytest.approx(float(last.group(1)), rel=0.02)
