"""Wrong flags of experiments/train.py fail at start: exit 2, one `error:` line, nothing written.

Each case runs the real script in a subprocess. Every case but the last fails
before TensorFlow is imported, so they take about a second each. The last one
(a batch that does not split over the devices) needs a distribution strategy
over two logical CPUs, which only a fresh process can set up.
"""

import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "experiments" / "train.py"


def run_script(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.parametrize(
    "args, problem",
    [
        (["--dataset=r2n2", "--data_dir={data}", "--categories=chair,sofas"], "sofas"),
        (["--categories=chiar"], "unknown ShapeNet category chiar"),
        (["--resolution=48"], "--resolution=48"),
        (["--resolution=sixty-four"], "--resolution=sixty-four"),
        (["--enhancer_layer=4"], "enhancer_layer must be 1, 2 or 3, got 4"),
        (["--enhancer_layer=0"], "enhancer_layer must be 1, 2 or 3, got 0"),
        (["--batch_size=0"], "batch_size must be positive"),
        (["--batch_size=two"], "--batch_size=two"),
        (["--dataset=r2n2", "--resolution=32", "--data_dir={missing}"], "no such file or folder"),
        (["--dataset=r2n2_v2", "--voxel_dir={missing}", "--render_dir={data}"], "--voxel_dir"),
        # ShapeNetVox32 has 32^3 grids only: refused at once, naming what works.
        (["--dataset=r2n2", "--data_dir={data}"], "32^3 grids only, the model needs 64^3"),
        (["--dataset=archive"], "needs a data_dir"),
        (["--dataset=pointclouds"], "--dataset=pointclouds"),
        (["--image_size=100"], "image_size must be 32, 64 or 128"),
        (["--learning_rate=-1"], "learning_rate must be > 0"),
        (["--no_such_flag=1"], "no_such_flag"),
        (["--flagfile={missing}"], "flagfile"),
    ],
)
def test_bad_flag_is_one_error_line_and_writes_nothing(tmp_path, args, problem):
    run_dir = tmp_path / "run"
    names = {"data": str(tmp_path), "missing": str(tmp_path / "no" / "such")}
    args = [a.format(**names) for a in args]
    result = run_script(*args, f"--run_dir={run_dir}", "--num_steps=1")
    lines = result.stderr.splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and problem in lines[0], lines[0]
    assert not run_dir.exists()
    assert result.stdout == ""


def test_missing_run_dir_is_an_error():
    result = run_script("--num_steps=1")
    assert result.returncode == 2
    assert result.stderr.splitlines() == ["error: --run_dir is required (the folder of this run)"]


def test_dry_run_prints_the_config_and_writes_nothing(tmp_path):
    run_dir = tmp_path / "run"
    result = run_script("--dry_run", f"--run_dir={run_dir}", "--resolution=32")
    assert result.returncode == 0, result.stderr
    assert '"resolution": 32' in result.stdout
    assert not run_dir.exists()


# The check itself lives in loop.train (a strategy is only known there); it
# must come before the run folder is created.
_DEVICE_CHECK = textwrap.dedent(
    """
    import sys
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2
    )
    from enhancer_gan.errors import ConfigError
    from enhancer_gan.training.loop import train
    from tests.helpers import tiny_experiment, tiny_train_config

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert strategy.num_replicas_in_sync == 2
    config = tiny_experiment(sys.argv[1], train=tiny_train_config(batch_size=3))
    try:
        train(config, strategy=strategy, progress=False)
    except ConfigError as e:
        print(f"REFUSED {e}")
    """
)


def test_batch_not_divisible_by_devices_is_refused_before_the_run_folder(tmp_path):
    run_dir = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-c", _DEVICE_CHECK, str(run_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (line,) = [ln for ln in result.stdout.splitlines() if ln.startswith("REFUSED")]
    assert "batch_size 3 is not divisible by the 2 devices" in line
    assert not run_dir.exists()


def test_evaluate_generation_after_training_writes_a_report_once(tmp_path):
    import json

    run_dir = tmp_path / "run"
    args = [
        f"--run_dir={run_dir}",
        f"--data_dir={tmp_path / 'synthetic'}",
        "--dataset=synthetic",
        "--categories=chair",
        "--num_synthetic_per_category=4",
        "--views_per_model=1",
        "--resolution=32",
        "--image_size=32",
        "--width_multiplier=0.0625",
        "--batch_size=2",
        "--num_steps=2",
        "--num_samples=2",
        "--evaluate_generation",
        "--evaluation_samples=4",
    ]
    proc = run_script(*args, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    report = json.loads((run_dir / "generation_step2.json").read_text())
    assert report["num_generated"] == 4 and report["step"] == 2
    assert 0 <= report["cov"] <= 1 and 0 <= report["one_nna"] <= 1
    assert report["reference"]["split"] == "test" and report["num_real"] == 1  # 1 of 4 held out
    assert report["ceiling"]["num_generated"] == 3  # the 3 training chairs
    assert "ceiling" in proc.stdout and "components" in proc.stdout
    assert "Generation quality" in proc.stdout
    again = run_script(*args, timeout=300)  # finished run: nothing new, report kept
    assert again.returncode == 0 and "already computed" in again.stdout
    # The library's log lines reach the user as plain lines on stdout (the
    # script shows the `enhancer_gan` loggers there), the progress bar stays
    # on stderr.
    checkpoint = run_dir / "checkpoints" / "ckpt-2"
    assert f"Resumed {run_dir} from {checkpoint} at step 2." in again.stdout.splitlines()
    assert "Resumed" not in again.stderr
    assert "2/2" in proc.stderr and "2/2" not in proc.stdout


def test_flags_parser_shows_library_log_lines_on_stdout_once(capsys):
    import logging

    from absl import flags

    from experiments._cli import flags_parser

    logger = logging.getLogger("enhancer_gan")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    values = flags.FlagValues()
    flags.DEFINE_integer("steps", 1, "Steps.", flag_values=values)
    parse = flags_parser(values)
    try:
        assert parse(["prog", "--steps=3"]) == ["prog"] and values.steps == 3
        parse(["prog"])  # a second parse adds no second handler
        logging.getLogger("enhancer_gan.training.loop").info("Resumed run from ckpt-3 at step 3.")
        logging.getLogger("enhancer_gan.data").debug("not shown")
        logging.getLogger("elsewhere").warning("not ours")
        out, err = capsys.readouterr()
        assert out == "Resumed run from ckpt-3 at step 3.\n"
        assert "Resumed" not in err
    finally:
        logger.handlers[:] = saved[0]
        logger.setLevel(saved[1])
        logger.propagate = saved[2]
    with pytest.raises(SystemExit) as info:
        flags_parser(values)(["prog", "--steps=many"])
    assert info.value.code == 2
    out, err = capsys.readouterr()
    assert err.startswith("error: ") and "--steps=many" in err and err.count("\n") == 1


def test_scripts_hide_tensorflow_cpp_lines_unless_asked():
    """experiments/_cli.py: TF_CPP_MIN_LOG_LEVEL=2 by default, a user's value kept."""
    import subprocess
    import sys

    code = "import os, experiments._cli; print(os.environ['TF_CPP_MIN_LOG_LEVEL'])"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    out = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True)
    assert out.stdout.decode().strip() == "2"
    env["TF_CPP_MIN_LOG_LEVEL"] = "0"
    out = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True)
    assert out.stdout.decode().strip() == "0"
