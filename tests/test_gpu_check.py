"""benchmarks/gpu_check.py --quick: the GPU check's JSON, end to end at toy size on the CPU.

The real check (benchmarks/gpu_check.sh) needs an H100/H200; this runs the
same code on a tiny config (32^3, width 1/16, batch 2, a generated 10-class
archive, 2 training steps, the features against the random-weight floor)
and checks that every part of the report is there.
"""

import json
import math
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_quick_mode_writes_the_report(tmp_path):
    out = tmp_path / "gpu_check.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "gpu_check.py"),
            "--quick",
            f"--output={out}",
            f"--work_dir={tmp_path / 'work'}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert {"device", "config", "step", "training", "features", "total_seconds"} <= set(report)
    assert set(report["step"]) == {"float32", "mixed_float16", "float32_xla"}
    for variant in ("float32", "mixed_float16"):
        row = report["step"][variant]
        for key in ("s_per_step", "samples_per_s", "model_tflop_per_step", "achieved_tflops"):
            assert math.isfinite(row[key]) and row[key] > 0, (variant, key, row)
        assert {"mfu", "vs_matmul", "peak_memory_gib", "nominal_peak_tflops"} <= set(row)
        assert row["vs_matmul"] > 0 and row["finite"]
    assert "skipped" in report["step"]["float32_xla"]
    training = report["training"]
    assert training["steps_done"] == training["num_steps"] == 2, training
    feats = report["features"]
    for key in ("accuracy_pct", "random_floor_accuracy_pct", "points_above_floor"):
        assert math.isfinite(feats[key]), feats
