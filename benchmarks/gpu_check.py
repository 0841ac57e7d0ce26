"""GPU check: step speed, FLOP utilisation, memory, and a short real training, as one JSON.

  bash benchmarks/gpu_check.sh                      # on a GPU machine, from a fresh checkout
  python benchmarks/gpu_check.py --quick --output=/tmp/g.json   # CPU, toy sizes (the test)

Each part is skipped, with the reason in the JSON, when it would pass the deadline
(`--deadline`, a Unix time; else `--budget_seconds` from now):
1. `step`: the train step at 64^3, batch 64, full width in float32 (TF32 where TensorFlow
   enables it), mixed_float16 and float32_xla: s/step, samples/s, model TFLOP per step,
   `mfu` against the GPU's nominal dense peak, `vs_matmul` against a same-run matmul of
   the same precision, peak GPU memory;
2. `training`: experiments/configs/mn10_small.cfg at full width on modelnet10_vox32.npz,
   as many steps as fit `--train_seconds` (SIGTERM at the deadline: the loop saves);
3. `features`: experiments/table1.py --random_baseline on that run (the floor).
`--quick`: all three at toy size on the CPU (32^3, width 1/16, a generated archive).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402  (puts the repository on sys.path)
from absl import app, flags  # noqa: E402

ROOT = common.ROOT
_DATA = os.path.join(os.path.dirname(ROOT), "shared", "data", "modelnet10_vox32.npz")

flags.DEFINE_string("output", "gpu_check.json", "Where the JSON goes.")
flags.DEFINE_string("data", _DATA, "Archive of the training part.")
flags.DEFINE_string("work_dir", "/tmp/enhancer_gan_gpu_check", "Run folder, caches, results.")
flags.DEFINE_float("budget_seconds", 450.0, "Time box from now when --deadline is not given.")
flags.DEFINE_float("deadline", 0.0, "Unix time by which everything must be done (0: budget).")
flags.DEFINE_float("train_seconds", 240.0, "Training time of the real run (at most).")
flags.DEFINE_integer("resolution", 64, "Step benchmark resolution.")
flags.DEFINE_integer("batch_size", 64, "Step benchmark batch size.")
flags.DEFINE_integer("steps", 5, "Timed steps per variant (after 2 warm-up steps).")
flags.DEFINE_list("variants", ["float32", "mixed_float16", "float32_xla"], "Step variants.")
flags.DEFINE_integer("max_per_split", 1000, "Shapes per split for the feature SVM (0 = all).")
flags.DEFINE_bool("quick", False, "CPU toy sizes: checks the script end to end.")
FLAGS = flags.FLAGS

# Nominal dense peaks (TFLOP/s, no sparsity) of the SXM parts; PCIe H100 apart.
NOMINAL_TFLOPS = {
    "H200": {"float32": 67.0, "tf32": 494.7, "float16": 989.4},
    "H100 PCIe": {"float32": 51.2, "tf32": 378.0, "float16": 756.0},
    "H100": {"float32": 67.0, "tf32": 494.7, "float16": 989.4},
    "A100": {"float32": 19.5, "tf32": 156.0, "float16": 312.0},
}


def nominal_peak(device_name: str, precision: str) -> float | None:
    """TFLOP/s of `precision` ('float32', 'tf32', 'float16') for a known GPU, else None."""
    for key, peaks in NOMINAL_TFLOPS.items():
        if all(part in device_name for part in key.split()):
            return peaks[precision]
    return None


def device_info() -> dict:
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    info = {"gpus": len(gpus), "name": "cpu", "tensorflow": tf.__version__}
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        info["name"] = details.get("device_name", "gpu")
        info["compute_capability"] = details.get("compute_capability")
    info["tf32_enabled"] = bool(tf.config.experimental.tensor_float_32_execution_enabled())
    info["machine"] = common.machine_description()
    return info


def matmul_tflops(dtype: str, n: int) -> float:
    """A large n^3 matmul's rate in this process, TFLOP/s."""
    import tensorflow as tf

    a, b = tf.random.normal([n, n], dtype=dtype), tf.random.normal([n, n], dtype=dtype)
    f = tf.function(lambda: tf.reduce_sum(tf.cast(tf.matmul(a, b), tf.float32)))
    return 2 * n**3 / common.time_calls(lambda: f().numpy(), repeats=3).median / 1e12


def measure_variant(variant, res, batch, width, image, steps, info, mm_peaks) -> dict:
    import keras
    import tensorflow as tf

    gpu, mixed = info["gpus"] > 0, variant.startswith("mixed")
    keras.backend.clear_session()
    keras.mixed_precision.set_global_policy("mixed_float16" if mixed else "float32")
    if gpu:
        tf.config.experimental.reset_memory_stats("GPU:0")
    try:
        setup = common.train_step_setup(res, batch, width, image, variant.endswith("_xla"), mixed)
        t0 = time.perf_counter()
        setup.step()
        first = time.perf_counter() - t0
        timing = common.time_calls(setup.step, repeats=steps, warmup=1)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    achieved = setup.flops / timing.median / 1e12
    precision = "float16" if mixed else ("tf32" if info["tf32_enabled"] and gpu else "float32")
    peak = nominal_peak(info["name"], precision) if gpu else None
    mm = mm_peaks["float16" if mixed else "float32"]
    memory = tf.config.experimental.get_memory_info("GPU:0")["peak"] if gpu else None
    return {
        "s_per_step": timing.median,
        "first_step_s": first,
        "samples_per_s": batch / timing.median,
        "model_tflop_per_step": setup.flops / 1e12,
        "achieved_tflops": achieved,
        "peak_precision": precision,
        "nominal_peak_tflops": peak,
        "mfu": achieved / peak if peak else None,
        "matmul_tflops": mm,
        "vs_matmul": achieved / mm if mm else None,
        "peak_memory_gib": memory / 2**30 if gpu else common.max_rss_gib(),
        "finite": common.finite(setup.losses),
    }


def make_toy_archive(path: str) -> str:
    """A tiny 10-class 32^3 archive of boxes (the --quick mode's data)."""
    import numpy as np

    rng = np.random.default_rng(0)

    def grids(labels):
        g = np.zeros((len(labels), 32, 32, 32), np.uint8)
        for x, c in zip(g, labels):
            size = np.array([4 + 2 * (c % 5), 4 + 4 * (c // 5), 6]) + rng.integers(0, 2, 3)
            lo = rng.integers(1, 32 - size)
            x[lo[0] : lo[0] + size[0], lo[1] : lo[1] + size[1], lo[2] : lo[2] + size[2]] = 1
        return g

    y_train, y_test = np.repeat(np.arange(10), 4), np.repeat(np.arange(10), 3)
    np.savez(path, X_train=grids(y_train), y_train=y_train, X_test=grids(y_test), y_test=y_test)
    return path


def run_with_deadline(cmd, seconds: float, log_path: str) -> tuple[int, float]:
    """Runs cmd; SIGTERM after `seconds` (then SIGKILL 60 s later). (returncode, wall s)."""
    start = time.time()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        try:
            proc.wait(timeout=max(seconds, 1.0))
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return proc.returncode, time.time() - start


def train(report, data, width, image, batch, seconds, left) -> str:
    """Part 2: the preset's training for what fits; returns its run folder."""
    import keras
    import tensorflow as tf

    run_dir, log = os.path.join(FLAGS.work_dir, "run"), os.path.join(FLAGS.work_dir, "train.log")
    part = report["training"] = {"preset": "experiments/configs/mn10_small.cfg"}
    part["width_multiplier"] = width
    if not os.path.exists(data):
        part["skipped"] = f"no data at {data}"
        return run_dir
    setup = common.train_step_setup(32, batch, width, image)  # the preset's step, timed here
    step_s = common.time_calls(setup.step, repeats=2 if report["device"]["gpus"] else 1).median
    keras.backend.clear_session()
    num_steps = 2 if FLAGS.quick else max(1, int(max(1.0, min(seconds, left() - 150)) / step_s))
    cmd = [
        *(sys.executable, "experiments/train.py", "--flagfile=experiments/configs/mn10_small.cfg"),
        *(f"--data_dir={data}", f"--run_dir={run_dir}", f"--width_multiplier={width}"),
        f"--cache_dir={os.path.join(FLAGS.work_dir, 'cache')}",
        *(f"--num_steps={num_steps}", f"--checkpoint_every={max(1, num_steps // 4)}"),
        *(f"--sample_every={num_steps}", f"--summary_every={min(50, num_steps)}", "--seed=0"),
    ]
    if FLAGS.quick:
        cmd += [f"--image_size={image}", f"--batch_size={batch}"]
    # Data loading and view rendering come first: allow for them.
    rc, wall = run_with_deadline(cmd, 600.0 if FLAGS.quick else left() - 100, log)
    latest = tf.train.latest_checkpoint(os.path.join(run_dir, "checkpoints"))
    part.update(
        step_seconds_estimate=step_s,
        num_steps=num_steps,
        steps_done=int(latest.rsplit("-", 1)[1]) if latest else 0,
        seconds=wall,
        returncode=rc,
        run_dir=run_dir,
        log=log,
    )
    return run_dir


def features(report, run_dir, data, left) -> None:
    """Part 3: the trained DM's features against the random-weight floor."""
    from enhancer_gan.evaluation.run_specs import RANDOM_BASELINE_LABEL

    part = report["features"] = {}
    if not report["training"].get("steps_done"):
        part["skipped"] = "no trained steps"
        return
    results = os.path.join(FLAGS.work_dir, "table1")
    cmd = [
        *(sys.executable, "experiments/table1.py", f"--runs=trained:{run_dir}"),
        *("--random_baseline", "--dataset=archive", f"--data_dir={data}"),
        f"--results_dir={results}",
        f"--max_per_split={0 if FLAGS.quick else FLAGS.max_per_split}",
        *("--overwrite", "--noprogress"),
    ]
    log = os.path.join(FLAGS.work_dir, "table1.log")
    rc, wall = run_with_deadline(cmd, max(left() - 5, 30), log)
    part.update(returncode=rc, seconds=wall)
    try:
        with open(os.path.join(results, "table1.json")) as f:
            runs = json.load(f)["runs"]
        ours, floor = runs["trained"], runs[RANDOM_BASELINE_LABEL]
        part.update(
            accuracy_pct=ours["accuracy_pct"],
            random_floor_accuracy_pct=floor["accuracy_pct"],
            points_above_floor=ours["accuracy_pct"] - floor["accuracy_pct"],
            mean_class_accuracy_pct=ours.get("mean_class_accuracy_pct"),
            random_floor_mean_class_accuracy_pct=floor.get("mean_class_accuracy_pct"),
        )
    except (OSError, KeyError, ValueError) as e:
        part["error"] = f"{type(e).__name__}: {e}"


def main(argv):
    del argv
    import tensorflow as tf

    start = time.time()
    deadline = FLAGS.deadline or start + FLAGS.budget_seconds

    def left() -> float:
        return deadline - time.time()

    os.makedirs(FLAGS.work_dir, exist_ok=True)
    info = device_info()
    report: dict = {"device": info, "quick": FLAGS.quick, "step": {}}
    if FLAGS.quick:
        res, batch, width, image, steps, mm_n = 32, 2, 1 / 16, 32, 1, 256
        train_args = (1 / 16, 32, 2, 1.0)
        data = make_toy_archive(os.path.join(FLAGS.work_dir, "toy.npz"))
        variants = [v for v in FLAGS.variants if not v.endswith("_xla")]
        # XLA on CPU is far slower than the default kernels (benchmarks/RESULTS.md).
        report["step"]["float32_xla"] = {"skipped": "XLA not timed in --quick (CPU)"}
    else:
        res, batch, width, image = FLAGS.resolution, FLAGS.batch_size, 1.0, 128
        steps, mm_n, data, variants = FLAGS.steps, 8192, FLAGS.data, FLAGS.variants
        train_args = (1.0, 64, 32, FLAGS.train_seconds)
    report["config"] = {"resolution": res, "batch": batch, "width": width, "image_size": image}
    print(json.dumps(info), flush=True)

    mm_peaks = {d: matmul_tflops(d, mm_n) for d in ("float32", "float16")}
    reserve = 0.0 if FLAGS.quick else 120.0 + 150.0  # training and features still fit after
    for v in variants:
        if left() < reserve + 30:
            report["step"][v] = {"skipped": f"out of time ({left():.0f} s left)"}
            continue
        print(f"step variant {v} ...", flush=True)
        try:
            report["step"][v] = measure_variant(v, res, batch, width, image, steps, info, mm_peaks)
        except (tf.errors.OpError, ValueError, RuntimeError) as e:
            report["step"][v] = {"error": f"{type(e).__name__}: {str(e)[:300]}"}
        print(json.dumps(report["step"][v]), flush=True)
    peaks = [r["peak_memory_gib"] for r in report["step"].values() if "peak_memory_gib" in r]
    report["peak_gpu_memory_gib" if info["gpus"] else "peak_rss_gib"] = max(peaks, default=None)

    run_dir = train(report, data, *train_args, left)
    features(report, run_dir, data, left)
    report["total_seconds"] = time.time() - start
    with open(FLAGS.output, "w") as f:
        json.dump(report, f, indent=2)
    print(json.dumps(report, indent=2))
    print(f"wrote {FLAGS.output}")
    return 0


if __name__ == "__main__":
    app.run(main)
