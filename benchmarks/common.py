"""Shared helpers of the benchmark scripts: timing, peaks, memory, machine, output.

Every ratio a benchmark reports is measured against peaks taken in the SAME
process (`conv3d_peak`, `matmul_peak`, `numpy_matmul_peak`), so that a machine
shared with other jobs slows numerator and denominator alike and the ratio
keeps its meaning.

This module never defines flags; the scripts do. TensorFlow is imported only
inside the functions that need it, so the evaluation benchmark (which must not
need TensorFlow) stays light.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import platform
import resource
import statistics
import sys
import threading
import time
from collections.abc import Callable

# The scripts run as `python benchmarks/bench_x.py` from anywhere: make the
# repository importable without an install (as tools/ does).
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

# Before any benchmark imports TensorFlow (or Keras, which imports it): the
# package sets TensorFlow's defaults, oneDNN on among them. Without this a
# benchmark that imports keras first ran TensorFlow without oneDNN on AMD
# CPUs, 1.5x slower than training does (benchmarks/RESULTS.md).
import enhancer_gan  # noqa: E402, F401

# -- timing ------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Timing:
    """Wall times of repeated calls.

    Attributes:
      seconds: every measured call's wall time, in order.
      cpu_seconds: the process's CPU time (all threads) of each call. On a
        machine shared with other jobs, wall time grows with their load but
        CPU time much less, so rates per CPU second compare code, not load.
    """

    seconds: tuple[float, ...]
    cpu_seconds: tuple[float, ...] = ()

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def best(self) -> float:
        return min(self.seconds)

    @property
    def spread(self) -> float:
        """(max - min) / median: how noisy the repeats were."""
        return (max(self.seconds) - min(self.seconds)) / self.median if self.median else 0.0

    @property
    def cpu_median(self) -> float:
        return statistics.median(self.cpu_seconds) if self.cpu_seconds else float("nan")


def time_calls(fn: Callable[[], object], repeats: int, warmup: int = 1) -> Timing:
    """Calls `fn` warmup + repeats times; times the last `repeats` calls.

    `fn` must block until its work is done (call `.numpy()` on a TensorFlow
    result), or the timer measures only the dispatch.
    """
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
    """Median wall time of each fn, calling them in turn for `repeats` rounds.

    Interleaving (a, b, a, b, ...) makes a machine shared with other jobs slow
    every side alike. Each fn must block until its work is done and be warm
    (traced) already.
    """
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(v) for name, v in times.items()}


# -- memory ------------------------------------------------------------------


def max_rss_bytes() -> int:
    """The process's peak resident set so far (getrusage; Linux reports KiB)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) * (1 if sys.platform == "darwin" else 1024)


def current_rss_bytes() -> int:
    """The process's resident set now (/proc/self/statm), or the peak if unknown."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return max_rss_bytes()


class RssSampler:
    """Peak resident set while a `with` block runs, sampled every `interval` s.

    `ru_maxrss` only ever grows over the whole process; this gives the peak of
    one phase (and its rise over the RSS at entry). Sampling can miss a spike
    shorter than the interval, so the result is a lower bound; `peak` also
    takes ru_maxrss into account when the process peak was set in this phase.
    """

    def __init__(self, interval: float = 0.02):
        self.interval = interval
        self.start_bytes = 0
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._maxrss_at_start = 0

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak_bytes = max(self.peak_bytes, current_rss_bytes())

    def __enter__(self) -> RssSampler:
        self._maxrss_at_start = max_rss_bytes()
        self.start_bytes = self.peak_bytes = current_rss_bytes()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_bytes = max(self.peak_bytes, current_rss_bytes())
        # A new process-wide peak was set inside this phase: it is exact.
        maxrss = max_rss_bytes()
        if maxrss > self._maxrss_at_start:
            self.peak_bytes = max(self.peak_bytes, maxrss)

    @property
    def rise_bytes(self) -> int:
        return self.peak_bytes - self.start_bytes


def gib(num_bytes: float) -> float:
    return num_bytes / 2**30


# -- the machine -------------------------------------------------------------


def machine_description() -> dict[str, str]:
    """CPU model, core count, memory and load, for the tables and RESULTS.md."""
    model = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        with open("/proc/meminfo") as f:
            mem_kib = int(f.readline().split()[1])
        memory = f"{mem_kib / 2**20:.1f} GiB"
    except (OSError, ValueError, IndexError):
        memory = "unknown"
    try:
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        load = "unknown"
    return {
        "cpu": model,
        "cores": str(os.cpu_count()),
        "memory": memory,
        "load_1_5_15_min": load,
        "python": platform.python_version(),
    }


# -- peaks measured in this process -----------------------------------------


@dataclasses.dataclass(frozen=True)
class Peak:
    """A reference kernel's rate.

    Attributes:
      name: what was measured, with its shape.
      flops: FLOPs of one call (2 x MACs).
      timing: wall times of the calls.
    """

    name: str
    flops: int
    timing: Timing

    @property
    def gflops(self) -> float:
        """GFLOP/s at the median call time."""
        return self.flops / self.timing.median / 1e9

    @property
    def gflops_per_cpu_second(self) -> float:
        """GFLOP per CPU second (all threads), at the median."""
        return self.flops / self.timing.cpu_median / 1e9


@functools.lru_cache(maxsize=8)
def _conv3d_fn(batch: int, side: int, channels: int, kernel: int):
    # Cached: each later measurement of the same shape reuses the trace.
    import tensorflow as tf

    rng = tf.random.Generator.from_seed(0)
    x = rng.normal([batch, side, side, side, channels])
    w = rng.normal([kernel, kernel, kernel, channels, channels]) * 0.01
    return tf.function(
        lambda: tf.reduce_sum(tf.nn.conv3d(x, w, strides=[1] * 5, padding="SAME")),
        jit_compile=False,
    )


@functools.lru_cache(maxsize=8)
def _matmul_fn(n: int):
    import tensorflow as tf

    rng = tf.random.Generator.from_seed(1)
    a = rng.normal([n, n])
    b = rng.normal([n, n])
    return tf.function(lambda: tf.reduce_sum(tf.matmul(a, b)), jit_compile=False)


def conv3d_peak(
    batch: int = 8, side: int = 16, channels: int = 256, kernel: int = 4, repeats: int = 5
) -> Peak:
    """Forward rate of a large Conv3D, default (oneDNN) kernels, float32.

    The default shape is DM's costliest kind of layer (kernel 4, channels in
    the hundreds) at stride 1, so every MAC is useful work: batch 8, 16^3,
    256 -> 256 channels, 'same' = 8 * 4096 * 64 * 256 * 256 = 137 G MACs.
    """
    conv = _conv3d_fn(batch, side, channels, kernel)
    macs = batch * side**3 * kernel**3 * channels * channels
    timing = time_calls(lambda: conv().numpy(), repeats=repeats, warmup=1)
    name = f"Conv3D [{batch},{side}^3,{channels}] k{kernel} -> {channels}"
    return Peak(name, 2 * macs, timing)


def matmul_peak(n: int = 4096, repeats: int = 5) -> Peak:
    """Rate of an n x n x n float32 matmul (MKL/Eigen through TensorFlow)."""
    mm = _matmul_fn(n)
    timing = time_calls(lambda: mm().numpy(), repeats=repeats, warmup=1)
    return Peak(f"matmul {n}x{n}x{n}", 2 * n**3, timing)


@functools.lru_cache(maxsize=4)
def _numpy_operands(n: int):
    import numpy as np

    rng = np.random.default_rng(1)
    return (
        rng.standard_normal((n, n), dtype=np.float32),
        rng.standard_normal((n, n), dtype=np.float32),
    )


def numpy_matmul_peak(n: int = 4096, repeats: int = 5) -> Peak:
    """Rate of an n x n x n float32 matmul through numpy's BLAS (no TensorFlow).

    The reference for numpy/scikit-learn code (the evaluation benchmark),
    whose BLAS (OpenBLAS in numpy's wheels) is not TensorFlow's.
    """
    import numpy as np

    a, b = _numpy_operands(n)
    out = np.empty((n, n), np.float32)
    timing = time_calls(lambda: np.matmul(a, b, out=out), repeats=repeats, warmup=1)
    return Peak(f"numpy matmul {n}x{n}x{n} float32", 2 * n**3, timing)


# -- inputs ------------------------------------------------------------------


def synthetic_batch(batch_size: int, resolution: int, image_size: int, latent_dim: int, n_z: int):
    """One batch in the pipeline's format, random but of the right dtypes/ranges."""
    import tensorflow as tf

    rng = tf.random.Generator.from_seed(0)
    r, s = resolution, image_size
    voxels = tf.cast(rng.uniform([batch_size, r, r, r, 1]) < 0.2, tf.uint8)
    return {
        "voxels": voxels,
        "image": rng.uniform([batch_size, s, s, 3], -1.0, 1.0),
        "z": rng.uniform([batch_size, n_z, latent_dim], -1.0, 1.0),
        "index": tf.range(batch_size, dtype=tf.int64),
    }


# -- layers alone ------------------------------------------------------------


def layer_rows(networks, batch_size: int, repeats: int, conv_gflops: float) -> list[dict]:
    """Forward + backward time and rate of every MAC-bearing layer, alone."""
    import tensorflow as tf

    from enhancer_gan.models.flops import _sublayers, layer_macs

    rows = []
    for model in (*networks.generators, *networks.discriminators):
        for layer in _sublayers(model):
            macs = layer_macs(layer)
            if not macs:
                continue
            shape = [batch_size, *layer.get_build_config()["input_shape"][1:]]
            x = tf.random.stateless_uniform(shape, seed=[1, 2], minval=-1.0, maxval=1.0)
            weights = layer.trainable_weights

            @tf.function(jit_compile=False)
            def fwd_bwd(x, layer=layer, weights=weights):
                with tf.GradientTape() as tape:
                    tape.watch(x)
                    y = layer(x, training=True)
                    loss = tf.reduce_sum(y * y)
                grads = tape.gradient(loss, [x, *weights])
                return tf.add_n([tf.reduce_sum(g) for g in grads if g is not None])

            timing = time_calls(lambda f=fwd_bwd, x=x: f(x).numpy(), repeats=repeats)
            flops = 2 * 3 * macs * batch_size  # forward + input grads + weight grads
            gflops = flops / timing.median / 1e9
            rows.append(
                {
                    "network": model.name,
                    "layer": f"{type(layer).__name__} {layer.name}",
                    "input": "x".join(str(d) for d in shape[1:]),
                    "strides": str(getattr(layer, "strides", "-")),
                    "GFLOP": flops / 1e9,
                    "s (fwd+bwd)": timing.median,
                    "GFLOP/s": gflops,
                    "vs conv": gflops / conv_gflops,
                    "_flops": flops,
                    "_seconds": timing.median,
                }
            )
    return rows


# -- output ------------------------------------------------------------------


def print_table(title: str, rows: list[dict[str, object]]) -> None:
    """Prints rows (dicts with the same keys) as an aligned text table."""
    print(f"\n== {title}")
    if not rows:
        print("(no rows)")
        return
    keys = list(rows[0])
    cells = [[_fmt(r.get(k, "")) for k in keys] for r in rows]
    widths = [max(len(k), *(len(c[i]) for c in cells)) for i, k in enumerate(keys)]
    print("  ".join(k.ljust(w) for k, w in zip(keys, widths)))
    print("  ".join("-" * w for w in widths))
    for c in cells:
        print("  ".join(v.ljust(w) for v, w in zip(c, widths)))


def print_machine() -> None:
    print_table("machine", [machine_description()])


def _fmt(v: object) -> str:
    if isinstance(v, float):
        if v != v:  # NaN
            return "nan"
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        if abs(v) >= 10:
            return f"{v:.1f}"
        return f"{v:.3g}"
    return str(v)


def final_line(name: str, value: float) -> str:
    """The required last line `name=<number>`, printed and flushed."""
    line = f"{name}={value:.6g}"
    print(line, flush=True)
    return line
