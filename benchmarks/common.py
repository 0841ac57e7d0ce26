"""Shared helpers of the benchmark scripts: set-up, timing, peaks, machine, output.

Every ratio a benchmark reports is against work done in the SAME process (a
peak kernel just before and after, or the other side timed interleaved), so
a machine shared with other jobs slows both sides alike. Every script prints
`machine_description()` first (date, commit, CPU, load, TensorFlow, oneDNN),
which benchmarks/RESULTS.md quotes. No flags are defined here, and
TensorFlow is imported only where needed (bench_eval.py must not need it).
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

# The scripts run as `python benchmarks/bench_x.py` from anywhere: make the
# repository importable without an install (as tools/ does).
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

# Before any benchmark imports TensorFlow (or Keras): the package sets
# TensorFlow's defaults, oneDNN on among them (benchmarks/RESULTS.md#onednn).
import enhancer_gan  # noqa: E402, F401


@dataclasses.dataclass(frozen=True)
class Timing:
    """Wall times of repeated calls, and the process's CPU time (all threads) of each (on a
    shared machine it grows much less than wall time with the others' load)."""

    seconds: tuple[float, ...]
    cpu_seconds: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def spread(self) -> float:
        """(max - min) / median: how noisy the repeats were."""
        return (max(self.seconds) - min(self.seconds)) / self.median if self.median else 0.0

    @property
    def cpu_median(self) -> float:
        return statistics.median(self.cpu_seconds)


def time_calls(fn: Callable[[], object], repeats: int, warmup: int = 1) -> Timing:
    """Calls `fn` warmup + repeats times (it must block until done); times the last `repeats`."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    for _ in range(warmup):
        fn()
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return Timing(tuple(wall), tuple(cpu))


def interleaved(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median wall time of each fn (warm, blocking), calling them in turn for `repeats` rounds."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(v) for name, v in times.items()}


def max_rss_gib() -> float:
    """The process's peak resident set so far, GiB (scripts run their cheapest config first)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return peak * (1 if sys.platform == "darwin" else 1024) / 2**30


# -- the machine -------------------------------------------------------------


def git_commit() -> str:
    """HEAD's short hash, '+uncommitted' when tracked files differ; 'unknown' without git."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout

    try:
        head, dirty = git("rev-parse", "--short", "HEAD").strip(), git("status", "-suno").strip()
    except OSError:
        return "unknown"
    return head + ("+uncommitted" if dirty else "") if head else "unknown"


def onednn_state() -> str:
    """'on'/'off' as TensorFlow reports it once imported, else what TF_ENABLE_ONEDNN_OPTS asks."""
    if "tensorflow" in sys.modules:
        from tensorflow.python.util import _pywrap_util_port

        return "on" if _pywrap_util_port.IsMklEnabled() else "off"
    flag = os.environ.get("TF_ENABLE_ONEDNN_OPTS", "TensorFlow's default")
    return {"1": "on (asked)", "0": "off (asked)"}.get(flag, flag)


def machine_description() -> dict[str, str]:
    """Date, commit, CPU, cores, memory, load, Python, TensorFlow, oneDNN: for RESULTS.md."""
    cpu, memory = platform.processor() or "unknown", "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((x.split(":", 1)[1].strip() for x in f if x.startswith("model name")), cpu)
        with open("/proc/meminfo") as f:
            memory = f"{int(f.readline().split()[1]) / 2**20:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": git_commit(),
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "memory": memory,
        "load_1_5_15_min": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "python": platform.python_version(),
        "tensorflow": getattr(sys.modules.get("tensorflow"), "__version__", "not imported"),
        "onednn": onednn_state(),
    }


def gpu_visible() -> bool:
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


# -- peaks measured in this process -----------------------------------------


@dataclasses.dataclass(frozen=True)
class Peak:
    """A reference kernel's rate: its name, FLOPs of one call (2 x MACs), call times."""

    name: str
    flops: int
    timing: Timing

    @property
    def gflops(self) -> float:
        return self.flops / self.timing.median / 1e9

    @property
    def gflops_per_cpu_second(self) -> float:
        return self.flops / self.timing.cpu_median / 1e9


@functools.lru_cache(maxsize=2)
def _conv_fn(batch: int, side: int, c: int, k: int):
    """A traced float32 stride-1 'same' Conv3D (cached: each later measurement reuses it)."""
    import tensorflow as tf

    rng = tf.random.Generator.from_seed(0)
    x, w = rng.normal([batch, side, side, side, c]), rng.normal([k, k, k, c, c]) * 0.01
    conv = tf.nn.conv3d
    return tf.function(lambda: tf.reduce_sum(conv(x, w, [1] * 5, "SAME")), jit_compile=False)


def conv3d_peak(small: bool = False, repeats: int = 3) -> Peak:
    """Forward rate of DM's costliest kind of layer at stride 1 (every MAC useful): batch 8,
    16^3, 256 -> 256 channels, kernel 4; `small` for smoke tests (batch 2, 8^3, 32)."""
    batch, side, c, k = shape = (2, 8, 32, 4) if small else (8, 16, 256, 4)
    fn, macs = _conv_fn(*shape), batch * side**3 * k**3 * c * c
    timing = time_calls(lambda: fn().numpy(), repeats)
    return Peak(f"Conv3D [{batch},{side}^3,{c}] k{k} -> {c}", 2 * macs, timing)


def numpy_matmul_peak(n: int = 4096, repeats: int = 3) -> Peak:
    """Rate of an n^3 float32 matmul through numpy's BLAS (the evaluation's; no TensorFlow)."""
    import numpy as np

    rng = np.random.default_rng(1)
    a, b = (rng.standard_normal((n, n), dtype=np.float32) for _ in range(2))
    out = np.empty((n, n), np.float32)
    timing = time_calls(lambda: np.matmul(a, b, out=out), repeats)
    return Peak(f"numpy matmul {n}^3 float32", 2 * n**3, timing)


def peaks_around(work: Callable[[], object], small: bool, repeats: int = 3):
    """(work(), peaks): the Conv3D peak measured just before and after `work`, averaged:
    {"conv": GFLOP/s, "conv_per_cpu_second": GFLOP per CPU second, "conv_name"}."""
    c0, result, c1 = conv3d_peak(small, repeats), work(), conv3d_peak(small, repeats)
    return result, {
        "conv": (c0.gflops + c1.gflops) / 2,
        "conv_per_cpu_second": (c0.gflops_per_cpu_second + c1.gflops_per_cpu_second) / 2,
        "conv_name": c0.name,
    }


# -- the train step ------------------------------------------------------------


@dataclasses.dataclass
class StepSetup:
    """A `GanTrainer` at the paper's recipe (seed 0), one fixed random batch of the right
    kind, and the step's model FLOPs over that batch (`train_step_flops` x batch size)."""

    trainer: object
    model_config: object
    train_config: object
    batch: dict
    flops: float
    losses: list = dataclasses.field(default_factory=list)

    def step(self) -> float:
        """One train step on the batch; blocks until done. Its DM loss."""
        self.losses.append(float(self.trainer.train_step(self.batch)["loss/voxel_discriminator"]))
        return self.losses[-1]


def train_step_setup(res, batch_size, width=1.0, image_size=128, jit=False, mixed=False):
    import keras
    import tensorflow as tf

    from enhancer_gan.config import ModelConfig, TrainConfig
    from enhancer_gan.models.flops import train_step_flops
    from enhancer_gan.training.trainer import GanTrainer

    keras.utils.set_random_seed(0)
    model_config = ModelConfig(resolution=res, width_multiplier=width, image_size=image_size)
    train_config = TrainConfig(batch_size=batch_size, jit_compile=jit, mixed_precision=mixed)
    n_g = train_config.generator_steps_per_discriminator_step
    trainer = GanTrainer(model_config, train_config)
    rng, b, s = tf.random.Generator.from_seed(0), batch_size, image_size
    batch = {
        "voxels": tf.cast(rng.uniform([b, res, res, res, 1]) < 0.2, tf.uint8),
        "image": rng.uniform([b, s, s, 3], -1.0, 1.0),
        "z": rng.uniform([b, 1 + n_g, model_config.latent_dim], -1.0, 1.0),
        "index": tf.range(b, dtype=tf.int64),
    }
    flops = train_step_flops(model_config, trainer.networks, n_g)["train_step_flops"] * b
    return StepSetup(trainer, model_config, train_config, batch, flops)


def finite(values) -> bool:
    return all(math.isfinite(x) for x in values)


def n_params(model) -> int:
    """Trainable parameters of a Keras model."""
    return sum(int(math.prod(v.shape)) for v in model.trainable_variables)


# -- output ------------------------------------------------------------------


def print_table(title: str, rows: list[dict[str, object]]) -> None:
    """Prints rows (dicts with the same keys; keys starting with _ hidden) as a text table."""
    print(f"\n== {title}")
    keys = [k for k in rows[0] if not k.startswith("_")] if rows else []
    cells = [[_fmt(r.get(k, "")) for k in keys] for r in rows]
    widths = [max(len(k), *(len(c[i]) for c in cells)) for i, k in enumerate(keys)]
    for line in (keys, ["-" * w for w in widths], *cells):
        print("  ".join(v.ljust(w) for v, w in zip(line, widths)))
    print(flush=True)


def print_machine() -> None:
    """The first table of every benchmark's output (call it after importing TensorFlow)."""
    print_table("machine", [machine_description()])


def _fmt(v: object) -> str:
    if not isinstance(v, float):
        return str(v)
    if v != v:  # NaN
        return "nan"
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.1f}" if abs(v) >= 10 else f"{v:.3g}"


def final_line(name: str, value: float) -> str:
    """The required last line `name=<number>`, printed and flushed."""
    line = f"{name}={value:.6g}"
    print(line, flush=True)
    return line
