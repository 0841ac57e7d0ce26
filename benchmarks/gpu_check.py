"""GPU check: step speed, FLOP utilisation, memory, and a short real training, as one JSON.

  bash benchmarks/gpu_check.sh                      # on a GPU machine, from a fresh checkout
  python benchmarks/gpu_check.py --output=gpu_check.json
  python benchmarks/gpu_check.py --quick --output=/tmp/g.json   # CPU, toy sizes (the test)

What it measures, in this order, each bounded by a deadline (`--deadline`,
a Unix time; `--budget_seconds` from now when not given) so the whole check
fits its time box (gpu_check.sh: 8 minutes with the install):

1. `step`: the full train step (`GanTrainer`, one D update + two G updates)
   at 64^3, batch 64, full width, image 128, on one fixed in-memory batch:
   `float32` (TensorFloat-32 matmuls/convs as TensorFlow enables them by
   default on Ampere and later), `mixed_float16` and `float32_xla`
   (jit_compile). For each: seconds per step, samples/s, the model's FLOPs
   (`enhancer_gan.models.flops.train_step_flops`, backward = 2 x forward),
   achieved TFLOP/s, model FLOP utilisation (`mfu`) against the device's
   nominal dense peak for that precision (H100/H200 table below; TF32 for
   float32 when TF32 is on) and against a large matmul measured in this
   process in the same precision (`vs_matmul`), and the peak GPU memory of
   that variant (`tf.config.experimental.get_memory_info`).
2. `training`: the preset experiments/configs/mn10_small.cfg at full width
   (`--width_multiplier=1`) on ../shared/data/modelnet10_vox32.npz, through
   experiments/train.py: its step time measured first in this process, then
   `--num_steps` = what fits `--train_seconds`; the run is also sent
   SIGTERM at the deadline (the loop then saves a checkpoint and exits).
3. `features`: experiments/table1.py on that run with `--random_baseline`:
   linear-SVM accuracy of its DM features against a randomly initialised DM
   (the floor), `--max_per_split` shapes per split.

`--quick`: CPU-sized toy version of all three (32^3, width 1/16, batch 2, a
tiny generated archive, 2 training steps) that checks the JSON end to end.
"""

from __future__ import annotations

import json
import math
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

flags.DEFINE_string("output", "gpu_check.json", "Where the JSON goes.")
flags.DEFINE_string(
    "data",
    os.path.join(os.path.dirname(ROOT), "shared", "data", "modelnet10_vox32.npz"),
    "Archive.",
)
flags.DEFINE_string("work_dir", "/tmp/enhancer_gan_gpu_check", "Run folder, caches, results.")
flags.DEFINE_float("budget_seconds", 450.0, "Time box from now when --deadline is not given.")
flags.DEFINE_float("deadline", 0.0, "Unix time by which everything must be done (0: budget).")
flags.DEFINE_float("train_seconds", 240.0, "Training time of the real run (at most).")
flags.DEFINE_integer("resolution", 64, "Step benchmark resolution.")
flags.DEFINE_integer("batch", 64, "Step benchmark batch size.")
flags.DEFINE_integer("steps", 5, "Timed steps per variant (after 2 warm-up steps).")
flags.DEFINE_list("variants", ["float32", "mixed_float16", "float32_xla"], "Step variants.")
flags.DEFINE_integer("max_per_split", 1000, "Shapes per split for the feature SVM (0 = all).")
flags.DEFINE_bool("quick", False, "CPU toy sizes: checks the script end to end.")
FLAGS = flags.FLAGS

# Nominal dense peaks (TFLOP/s, no sparsity) of the SXM parts; PCIe H100 below.
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


class Clock:
    def __init__(self, deadline: float):
        self.deadline = deadline
        self.start = time.time()

    def left(self) -> float:
        return self.deadline - time.time()


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

    a = tf.random.normal([n, n], dtype=dtype)
    b = tf.random.normal([n, n], dtype=dtype)
    f = tf.function(lambda: tf.reduce_sum(tf.cast(tf.matmul(a, b), tf.float32)))
    t = common.time_calls(lambda: f().numpy(), repeats=3, warmup=1)
    return 2 * n**3 / t.median / 1e12


def _memory_reset(gpu: bool):
    import tensorflow as tf

    if gpu:
        tf.config.experimental.reset_memory_stats("GPU:0")


def _memory_peak_gib(gpu: bool) -> float:
    import tensorflow as tf

    if gpu:
        return tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**30
    return common.gib(common.max_rss_bytes())


def measure_variant(variant, res, batch, width, image, steps, gpu, device_name, tf32, mm_peaks):
    import keras

    from enhancer_gan.config import ModelConfig, TrainConfig
    from enhancer_gan.models.flops import train_step_flops
    from enhancer_gan.training.trainer import GanTrainer

    mixed = variant.startswith("mixed")
    xla = variant.endswith("_xla")
    keras.backend.clear_session()
    keras.mixed_precision.set_global_policy("mixed_float16" if mixed else "float32")
    _memory_reset(gpu)
    try:
        keras.utils.set_random_seed(0)
        model_config = ModelConfig(resolution=res, width_multiplier=width, image_size=image)
        train_config = TrainConfig(batch_size=batch, mixed_precision=mixed, jit_compile=xla)
        trainer = GanTrainer(model_config, train_config)
        n_g = train_config.generator_steps_per_discriminator_step
        data = common.synthetic_batch(batch, res, image, model_config.latent_dim, 1 + n_g)
        losses = []

        def step():
            losses.append(float(trainer.train_step(data)["loss/voxel_discriminator"]))

        t0 = time.perf_counter()
        step()
        first = time.perf_counter() - t0
        timing = common.time_calls(step, repeats=steps, warmup=1)
        flops = train_step_flops(model_config, trainer.networks, n_g)["train_step_flops"] * batch
    finally:
        keras.mixed_precision.set_global_policy("float32")
    sec = timing.median
    achieved = flops / sec / 1e12
    precision = "float16" if mixed else ("tf32" if tf32 and gpu else "float32")
    peak = nominal_peak(device_name, precision) if gpu else None
    mm = mm_peaks["float16" if mixed else "float32"]
    return {
        "s_per_step": sec,
        "first_step_s": first,
        "samples_per_s": batch / sec,
        "model_tflop_per_step": flops / 1e12,
        "achieved_tflops": achieved,
        "peak_precision": precision,
        "nominal_peak_tflops": peak,
        "mfu": achieved / peak if peak else None,
        "matmul_tflops": mm,
        "vs_matmul": achieved / mm if mm else None,
        "peak_memory_gib": _memory_peak_gib(gpu),
        "finite": all(math.isfinite(x) for x in losses),
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


def preset_step_seconds(width, image, batch, steps) -> float:
    """Step time of the training preset's config (32^3), measured here."""
    import keras

    from enhancer_gan.config import ModelConfig, TrainConfig
    from enhancer_gan.training.trainer import GanTrainer

    keras.backend.clear_session()
    model_config = ModelConfig(resolution=32, width_multiplier=width, image_size=image)
    trainer = GanTrainer(model_config, TrainConfig(batch_size=batch))
    data = common.synthetic_batch(batch, 32, image, model_config.latent_dim, 3)
    t = common.time_calls(
        lambda: float(trainer.train_step(data)["loss/voxel_discriminator"]),
        repeats=steps,
        warmup=1,
    )
    keras.backend.clear_session()
    return t.median


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


def main(argv):
    del argv
    import tensorflow as tf

    deadline = FLAGS.deadline or time.time() + FLAGS.budget_seconds
    clock = Clock(deadline)
    os.makedirs(FLAGS.work_dir, exist_ok=True)
    info = device_info()
    gpu = info["gpus"] > 0
    report: dict = {"device": info, "quick": FLAGS.quick, "step": {}}
    if FLAGS.quick:
        res, batch, width, image, steps, mm_n = 32, 2, 1 / 16, 32, 1, 256
        train_width, train_image, train_batch, train_seconds = 1 / 16, 32, 2, 1.0
        data = make_toy_archive(os.path.join(FLAGS.work_dir, "toy.npz"))
        variants = [v for v in FLAGS.variants if not v.endswith("_xla")]
        # XLA on CPU runs 3D transposed convolutions ~50x slower (RESULTS.md).
        report["step"]["float32_xla"] = {"skipped": "XLA not timed in --quick (CPU)"}
    else:
        res, batch, width, image, steps, mm_n = FLAGS.resolution, FLAGS.batch, 1.0, 128, 5, 8192
        train_width, train_image, train_batch = 1.0, 64, 32
        train_seconds = FLAGS.train_seconds
        steps = FLAGS.steps
        data = FLAGS.data
        variants = FLAGS.variants
    report["config"] = {"resolution": res, "batch": batch, "width": width, "image_size": image}
    print(json.dumps(info), flush=True)

    mm_peaks = {d: matmul_tflops(d, mm_n) for d in ("float32", "float16")}
    # 1. Step variants, while at least 2 minutes of training and the
    # evaluation still fit after them (training takes what is left, up to
    # --train_seconds).
    reserve = 0.0 if FLAGS.quick else 120.0 + 150.0
    for v in variants:
        if clock.left() < reserve + 30:
            report["step"][v] = {"skipped": f"out of time ({clock.left():.0f} s left)"}
            continue
        print(f"step variant {v} ...", flush=True)
        try:
            report["step"][v] = measure_variant(
                v,
                res,
                batch,
                width,
                image,
                steps,
                gpu,
                info["name"],
                info["tf32_enabled"],
                mm_peaks,
            )
        except (tf.errors.OpError, ValueError, RuntimeError) as e:
            report["step"][v] = {"error": f"{type(e).__name__}: {str(e)[:300]}"}
        print(json.dumps(report["step"][v]), flush=True)
    peaks = [r["peak_memory_gib"] for r in report["step"].values() if "peak_memory_gib" in r]
    report["peak_gpu_memory_gib" if gpu else "peak_rss_gib"] = max(peaks) if peaks else None

    # 2. The real training, fixed time budget.
    run_dir = os.path.join(FLAGS.work_dir, "run")
    train = {"preset": "experiments/configs/mn10_small.cfg", "width_multiplier": train_width}
    report["training"] = train
    if not os.path.exists(data):
        train["skipped"] = f"no data at {data}"
    else:
        step_s = preset_step_seconds(train_width, train_image, train_batch, 2 if gpu else 1)
        budget = max(1.0, min(train_seconds, clock.left() - 150.0))
        num_steps = 2 if FLAGS.quick else max(1, int(budget / step_s))
        cmd = [
            sys.executable,
            "experiments/train.py",
            "--flagfile=experiments/configs/mn10_small.cfg",
            f"--data_dir={data}",
            f"--run_dir={run_dir}",
            f"--cache_dir={os.path.join(FLAGS.work_dir, 'cache')}",
            f"--width_multiplier={train_width}",
            f"--num_steps={num_steps}",
            f"--checkpoint_every={max(1, num_steps // 4)}",
            f"--sample_every={max(1, num_steps)}",
            f"--summary_every={max(1, min(50, num_steps))}",
            "--seed=0",
        ]
        if FLAGS.quick:
            cmd += [f"--image_size={train_image}", f"--batch_size={train_batch}"]
        # Data loading and view rendering come first: allow for them.
        limit = clock.left() - 100.0 if not FLAGS.quick else 600.0
        rc, wall = run_with_deadline(cmd, limit, os.path.join(FLAGS.work_dir, "train.log"))
        steps_done = _run_step(run_dir)
        train.update(
            step_seconds_estimate=step_s,
            num_steps=num_steps,
            steps_done=steps_done,
            seconds=wall,
            returncode=rc,
            run_dir=run_dir,
            log=os.path.join(FLAGS.work_dir, "train.log"),
        )

    # 3. Features against the random-weight floor.
    feats: dict = {}
    report["features"] = feats
    if train.get("steps_done"):
        results = os.path.join(FLAGS.work_dir, "table1")
        cmd = [
            sys.executable,
            "experiments/table1.py",
            f"--runs=trained:{run_dir}",
            "--random_baseline",
            "--dataset=archive",
            f"--data_dir={data}",
            f"--results_dir={results}",
            f"--max_per_split={0 if FLAGS.quick else FLAGS.max_per_split}",
            "--overwrite",
            "--noprogress",
        ]
        rc, wall = run_with_deadline(
            cmd, max(clock.left() - 5, 30), os.path.join(FLAGS.work_dir, "table1.log")
        )
        feats.update(returncode=rc, seconds=wall)
        try:
            with open(os.path.join(results, "table1.json")) as f:
                payload = json.load(f)
            from enhancer_gan.evaluation.run_specs import RANDOM_BASELINE_LABEL

            ours = payload["runs"]["trained"]
            floor = payload["runs"][RANDOM_BASELINE_LABEL]
            feats.update(
                accuracy_pct=ours["accuracy_pct"],
                random_floor_accuracy_pct=floor["accuracy_pct"],
                points_above_floor=ours["accuracy_pct"] - floor["accuracy_pct"],
                mean_class_accuracy_pct=ours.get("mean_class_accuracy_pct"),
                random_floor_mean_class_accuracy_pct=floor.get("mean_class_accuracy_pct"),
            )
        except (OSError, KeyError, ValueError) as e:
            feats["error"] = f"{type(e).__name__}: {e}"
    else:
        feats["skipped"] = "no trained steps"

    report["total_seconds"] = time.time() - clock.start
    with open(FLAGS.output, "w") as f:
        json.dump(report, f, indent=2)
    print(json.dumps(report, indent=2))
    print(f"wrote {FLAGS.output}")
    return 0


def _run_step(run_dir: str) -> int:
    """The step of the run's latest checkpoint (0 if none)."""
    import tensorflow as tf

    latest = tf.train.latest_checkpoint(os.path.join(run_dir, "checkpoints"))
    if not latest:
        return 0
    return int(latest.rsplit("-", 1)[1])


if __name__ == "__main__":
    app.run(main)
