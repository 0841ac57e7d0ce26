"""benchmarks/bench_vs_pytorch.py --quick: ratios are numbers, the mirror is faithful.

The PyTorch mirror must have exactly the project's trainable parameter count
in every network at both resolutions (a real check that the layer shapes
match), and the printed step and feature ratios must be positive finite
numbers. Skipped when PyTorch is not installed (it is an optional `bench`
extra: pip install -e ".[bench]"); .ci/run does not install it.
"""

import math
import pathlib
import re
import subprocess
import sys

import pytest

pytest.importorskip("torch", reason='PyTorch not installed (pip install -e ".[bench]")')

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _quick(script: str) -> list[str]:
    """Runs benchmarks/<script> --quick; its stdout lines (it must exit 0)."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout.strip().splitlines()


def test_quick_run_ratios_and_parameter_counts():
    lines = _quick("bench_vs_pytorch.py")

    params = [re.fullmatch(r"params (\w+) res=(\d+) ours=(\d+) torch=(\d+)", x) for x in lines]
    params = [m for m in params if m]
    networks = {(m.group(1), m.group(2)) for m in params}
    assert networks == {
        (n, r)
        for n in (
            "enhancer_generator",
            "enhancer_discriminator",
            "voxel_generator",
            "voxel_discriminator",
        )
        for r in ("32", "64")
    }, lines
    for m in params:
        assert int(m.group(3)) == int(m.group(4)) > 0, m.group(0)
    assert "params_match=True" in lines

    ratios = [
        re.fullmatch(r"ratio res=\d+ step_torch_over_ours=(\S+) features_torch_over_ours=(\S+)", x)
        for x in lines
    ]
    ratios = [m for m in ratios if m]
    assert ratios, lines
    for m in ratios:
        for value in m.groups():
            assert math.isfinite(float(value)) and float(value) > 0, m.group(0)

    last = re.fullmatch(r"tf_vs_torch=(\S+)", lines[-1])
    assert last, lines[-5:]
    assert math.isfinite(float(last.group(1))) and float(last.group(1)) > 0


def test_layer_by_layer_comparison_pairs_every_convolution():
    """bench_layers_vs_pytorch --quick: one row per convolution of the four networks, both timed."""
    lines = _quick("bench_layers_vs_pytorch.py")
    last = re.fullmatch(r"layers_torch_over_ours=(\S+)", lines[-1])
    assert last and float(last.group(1)) > 0, lines[-3:]
    rows = [x.split() for x in lines if re.match(r"(enhancer|voxel)_\w+/\w+ ", x)]
    # GE 2 + image, DE 4, GM 3, DM 3 at 32^3 with 32x32 images.
    assert len(rows) == 13, rows
    names = {r[0] for r in rows}
    assert {"enhancer_generator/deconv2", "voxel_discriminator/conv16_128"} <= names
    for r in rows:
        ours, theirs, ratio = (float(v) for v in r[-3:])
        assert ours > 0 and theirs > 0
        assert ratio == pytest.approx(theirs / ours, rel=0.02, abs=6e-3)
    total = next(x.split() for x in lines if x.startswith("all "))
    # The table prints 3 significant digits.
    assert float(total[-1]) == pytest.approx(float(last.group(1)), rel=6e-3)
