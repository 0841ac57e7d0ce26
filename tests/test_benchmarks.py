"""Smoke tests of the benchmark scripts: each one's --quick mode runs end to end.

Each script runs in a subprocess (as a user runs it) and must exit 0 with
its required last line `name=<number>`. The evaluation benchmark must not
import TensorFlow (it reports that itself, as a target). About 5 s for the
evaluation benchmark and 20 s for the feature benchmark (TensorFlow's
import and tracing), on 2 CPU cores.
"""

import math
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def run_quick(script: str) -> list[str]:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout.strip().splitlines()


@pytest.mark.parametrize(
    "script, name",
    [("bench_eval.py", "map_seconds"), ("bench_features.py", "features_vs_conv_peak")],
)
def test_quick_mode_ends_with_its_line(script, name):
    lines = run_quick(script)
    match = re.fullmatch(rf"{name}=(\S+)", lines[-1])
    assert match, lines[-5:]
    value = float(match.group(1))
    assert math.isfinite(value) and value > 0
    if script == "bench_eval.py":
        assert any(
            "TensorFlow not imported" in line and line.rstrip().endswith("PASS") for line in lines
        ), lines
