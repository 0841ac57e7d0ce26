"""Smoke tests of the benchmark scripts, and of the documents that quote them.

Each script's --quick mode runs in a subprocess (as a user runs it) and must
exit 0 with its required last line `name=<number>`, matching the tables it
prints. The evaluation benchmark must not import TensorFlow (it reports that
itself, as a target). About 5 s for the evaluation benchmark, 15-60 s for
the TensorFlow ones (import and tracing), on 2 CPU cores. The PyTorch side
is in test_bench_vs_pytorch.py.
"""

import math
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def run_quick(script: str, *args: str) -> list[str]:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), "--quick", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout.strip().splitlines()


def table(lines: list[str], title: str) -> list[dict[str, str]]:
    """Rows of the printed table under `== <title>`, as {column: cell}.

    Columns are located by the runs of dashes under the header line.
    """
    start = next(i for i, line in enumerate(lines) if line.startswith(f"== {title}"))
    header, rule = lines[start + 1], lines[start + 2]
    spans = [m.span() for m in re.finditer(r"-+", rule)]
    rows = []
    for line in lines[start + 3 :]:
        if not line.strip():
            break
        line = line.ljust(len(rule))
        # Cells print thousands separators (benchmarks/common.py): 1,111 reads as 1111.
        rows.append({header[a:b].strip(): _digits(line[a:b].strip()) for a, b in spans})
    return rows


def _digits(cell: str) -> str:
    return re.sub(r"(?<=\d),(?=\d{3})", "", cell)


def last_value(lines: list[str], name: str) -> float:
    match = re.fullmatch(rf"{name}=(\S+)", lines[-1])
    assert match, lines[-5:]
    value = float(match.group(1))
    assert math.isfinite(value) and value > 0
    return value


def test_eval_benchmark_numbers_are_consistent_and_plausible():
    lines = run_quick("bench_eval.py")
    seconds = last_value(lines, "map_seconds")
    (retrieval,) = table(lines, "retrieval_map")
    # The last line is the measured median, and it passed its target.
    assert float(retrieval["s (median)"]) == pytest.approx(seconds, rel=1e-3, abs=1e-4)
    targets = {row["target"]: row for row in table(lines, "targets")}
    assert all(row["result"] == "PASS" for row in targets.values()), targets
    assert float(targets["retrieval_map (median)"]["measured"].split()[0]) == pytest.approx(
        seconds, rel=1e-3
    )
    # The synthetic features have class structure: better than chance, below perfect.
    assert float(retrieval["chance mAP~"]) < float(retrieval["mAP"]) < 1.0
    assert int(retrieval["skipped"]) == 0 and int(retrieval["queries"]) > 0
    (fit,) = table(lines, "fit_linear_svm")
    n = int(fit["n x D"].split(" x ")[0])
    assert 0 < int(fit["support vectors"]) <= n
    assert 0.0 < float(fit["best CV acc"]) <= 1.0
    (test,) = table(lines, "evaluate")
    assert float(test["chance (majority)"]) < float(test["accuracy"]) <= 1.0


def test_feature_benchmark_numbers_are_consistent_and_plausible():
    lines = run_quick("bench_train_step.py", "--features")
    ratio = last_value(lines, "features_vs_conv_peak")
    rows = table(lines, "feature extraction")
    assert [int(r["res"]) for r in rows] == [32, 64]
    for row in rows:
        assert row["ok"] == "True"
        # 57,344 numbers at width 1, scaled by the width (docs/DESIGN.md#features).
        assert int(row["features"]) == round(57_344 * float(row["width"]))
        gflops = float(row["shapes/s"]) * float(row["GFLOP/shape"])
        assert float(row["GFLOP/s"]) == pytest.approx(gflops, rel=0.02)
        assert float(row["vs conv"]) == pytest.approx(
            float(row["GFLOP/s"]) / float(row["conv3d GFLOP/s"]), rel=0.02
        )
        assert 0 < float(row["vs conv"]) <= 1.5  # never far above the conv peak
    # The headline is the 64^3 row's ratio.
    assert ratio == pytest.approx(float(rows[-1]["vs conv"]), rel=0.02)


def test_plain_keras_benchmark_ratios_and_parameter_counts():
    """bench_vs_plain: the plain Keras networks mirror ours; every ratio is a positive number."""
    lines = run_quick("bench_vs_plain.py")
    step_vs_plain = last_value(lines, "step_vs_plain")
    assert "params_match=True" in lines, lines
    counts = [x.split() for x in lines if x.startswith("params ") and " res=" in x]
    assert len(counts) == 4, lines
    for c in counts:
        assert c[3].startswith("ours=") and c[4].startswith("plain=") and len(c) == 5, c
        assert int(c[3].split("=")[1]) == int(c[4].split("=")[1]) > 0, c
    ratios = dict(x[len("ratio ") :].split("=", 1) for x in lines if x.startswith("ratio "))
    assert {
        "step_project_over_plain",
        "step_project_over_old_bn",
        "features_project_over_plain",
    } <= set(ratios), lines
    for name, value in ratios.items():
        assert math.isfinite(float(value)) and float(value) > 0, (name, value)
    assert float(ratios["step_project_over_plain"]) == pytest.approx(step_vs_plain, rel=1e-3)
    steps = {r["step"]: float(r["s/step"]) for r in table(lines, "train step")}
    assert set(steps) == {"project", "project (old BN)", "plain keras"}, steps
    # The table and the last line are the same measurement (3 printed digits).
    assert steps["project"] / steps["plain keras"] == pytest.approx(step_vs_plain, rel=0.02)


def test_strided_benchmark_times_every_stride2_layer_and_marks_the_chosen_ones():
    """bench_strided: one row per conv layer, both sides timed, the rule's choices listed."""
    lines = run_quick("bench_strided.py")
    speedup = last_value(lines, "chosen_speedup")
    rows = table(lines, "stride-2 layers")
    names = {r["layer"] for r in rows}
    # Every conv layer of the four networks at 32^3 with 32x32 images: GE 2 +
    # image, DE 4, GM 3, DM 3.
    assert len(rows) == 13, names
    chosen = {r["layer"] for r in rows if r["chosen"] == "yes"}
    assert {"enhancer_generator/deconv2", "voxel_generator/to_voxels"} <= chosen, chosen
    assert "voxel_discriminator/conv16_128" in chosen, chosen
    for r in rows:
        stock, rewrite = float(r["stock s"]), float(r["rewrite s"])
        assert stock > 0 and rewrite > 0
        assert float(r["speedup"]) == pytest.approx(stock / rewrite, rel=0.02, abs=0.01)
    assert speedup > 0


def test_profile_times_every_layer_and_splits_the_step_by_op_kind():
    """bench_train_step --profile: the layers table, the step against them, the op kinds."""
    lines = run_quick("bench_train_step.py", "--profile", "--noxla_compare")
    ratio = last_value(lines, "step_vs_layers_alone")
    step = table(lines, "the step against its layers")[0]
    assert float(step["step vs layers alone"]) == pytest.approx(ratio, rel=0.01)
    assert float(step["step vs layers alone"]) == pytest.approx(
        float(step["step GFLOP/s (model count)"]) / float(step["layers-alone GFLOP/s"]), rel=0.02
    )
    layers = table(lines, "layers alone")
    # Every MAC-bearing layer: the 13 convolutions, GE's dense and DE's and DM's logits.
    assert len(layers) == 16, [r["layer"] for r in layers]
    assert sum(float(r["share of time"]) for r in layers) == pytest.approx(1.0, abs=0.01)
    kinds = {r["kind"]: r for r in table(lines, "one step under the profiler")}
    assert {"convolution", "batch norm", "Adam update"} <= set(kinds), kinds
    shares = [float(r["share"]) for r in kinds.values()]
    assert sum(shares) == pytest.approx(1.0, abs=0.01)
    assert int(kinds["Adam update"]["ops run"]) > 0
    outside = next(x for x in lines if x.startswith("ratio op_share_outside_conv_and_matmul="))
    assert 0 < float(outside.split("=")[1]) < 1


def test_train_step_benchmark_reports_its_ratio_to_the_conv_peak():
    """bench_train_step: the README's first benchmark, with the machine table RESULTS.md quotes."""
    lines = run_quick("bench_train_step.py")
    ratio = last_value(lines, "train_step_vs_conv_peak")
    (row,) = table(lines, "train step (1 D + 2 G updates)")
    assert row["finite"] == "True"
    gflops = float(row["TFLOP/step"]) * 1e3 / float(row["s/step"])
    assert float(row["GFLOP/s"]) == pytest.approx(gflops, rel=0.02)
    assert float(row["vs conv"]) == pytest.approx(ratio, rel=1e-2)
    xla = {r["xla"]: float(r["s/step"]) for r in table(lines, "train step, XLA off and on")}
    assert set(xla) == {"False", "True"} and min(xla.values()) > 0
    (machine,) = table(lines, "machine")
    assert machine["onednn"] == "on" and machine["tensorflow"] != "not imported", machine
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    if head:  # a checkout without git history says "unknown"
        assert machine["commit"].split("+")[0] == head, machine


def test_data_benchmark_reports_pairs_per_second():
    """bench_data: the cached pipeline and the PNG one both deliver pairs in range."""
    lines = run_quick("bench_data.py")
    pairs = last_value(lines, "pairs_per_s")
    rows = {r["views"]: r for r in table(lines, "pipeline (warm)")}
    assert set(rows) == {"decoded-view cache", "PNG decoded every time"}, rows
    assert all(r["image range ok"] == "True" for r in rows.values())
    assert float(rows["decoded-view cache"]["pairs/s"].replace(",", "")) == pytest.approx(
        pairs, rel=0.01
    )


@pytest.mark.parametrize("setting, expected", [(None, "on"), ("0", "off")])
def test_benchmarks_run_tensorflow_with_the_projects_defaults(setting, expected):
    """Importing benchmarks/common (every script does, first) switches oneDNN on before TF
    loads, unless asked not to; the machine table reports what TensorFlow says."""
    import os

    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    if setting is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = setting
    code = (
        "import sys; sys.path.insert(0, 'benchmarks'); import common, keras; "
        "print(common.machine_description()['onednn'])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == expected
    for script in (ROOT / "benchmarks").glob("*.py"):
        text = script.read_text()
        first_tf = min(
            (text.find(s) for s in ("import keras", "import tensorflow") if s in text),
            default=len(text),
        )
        if script.name not in ("common.py", "plain_keras.py", "torch_mirror.py"):
            assert text.find("import common") < first_tf, f"{script.name} imports TF first"


def _lines(paths) -> int:
    return sum(len(p.read_text().splitlines()) for p in paths)


def test_benchmarks_stay_in_proportion_to_the_library():
    """The benchmark scripts are at most 15% of the library's lines (issue 20)."""
    benchmarks = _lines((ROOT / "benchmarks").glob("*.py"))
    library = _lines((ROOT / "enhancer_gan").rglob("*.py"))
    assert benchmarks <= 0.15 * library, (benchmarks, library)


def test_every_benchmark_command_in_the_docs_names_a_script_and_its_flags():
    """Each `python benchmarks/<script> --flag ...` of RESULTS.md, README and DESIGN exists as
    written (a renamed script or flag breaks the command that makes a figure), and every
    benchmarks/RESULTS.md#<anchor> cited in the repository exists."""
    docs = [ROOT / "benchmarks" / "RESULTS.md", ROOT / "README.md", ROOT / "docs" / "DESIGN.md"]
    commands = []
    for doc in docs:
        for m in re.finditer(
            r"(?:python|bash) benchmarks/(\w+\.(?:py|sh))([^`\n#|]*)", doc.read_text()
        ):
            commands.append((doc.name, m.group(1), m.group(2)))
    assert len(commands) >= 12, commands
    for doc, script, args in commands:
        path = ROOT / "benchmarks" / script
        assert path.is_file(), (doc, script)
        defined = set(re.findall(r'DEFINE_\w+\(\s*"(\w+)"', path.read_text()))
        for flag in re.findall(r"--(\w+)", args):
            name = flag[2:] if flag.startswith("no") and flag[2:] in defined else flag
            assert name in defined, (doc, script, flag)
    results = (ROOT / "benchmarks" / "RESULTS.md").read_text()
    ids = set(re.findall(r'<a id="([a-z0-9-]+)"></a>', results))
    for path in ROOT.rglob("*"):
        if path.suffix in (".py", ".md") and ".git" not in path.parts:
            for anchor in re.findall(r"benchmarks/RESULTS\.md#([a-z0-9-]+)", path.read_text()):
                assert anchor in ids, (str(path), anchor)
