"""Benchmark: linear-SVM fit and retrieval mAP on features of ModelNet40's size (no TensorFlow).

  python benchmarks/bench_eval.py                 # 9,843 train + 2,468 test rows x 57,344
  python benchmarks/bench_eval.py --num_train=3991 --num_test=908 --num_classes=10
  python benchmarks/bench_eval.py --quick         # tiny, seconds (smoke test)

Random float32 features (fixed seed), weakly class-dependent (N(0, 1) noise plus a class
mean ~ N(0, --class_shift^2) per feature), class sizes rising 1 : 10. `fit_linear_svm`
with its defaults, per stage, then `evaluate` on the test split; `retrieval_map` over every
test item (median of `--map_repeats`), then its Gram part alone. Rates are against a numpy
matmul measured before and after (a Gram matrix: n(n+1)D FLOPs, syrk). Peak memory: the
process's after each part. Targets (PASS/FAIL): retrieval under 5 s, SVM fit under 5 min
and 8 GiB, TensorFlow never imported.

Last line: `map_seconds=<number>` (the median retrieval time).
"""

from __future__ import annotations

import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402  (puts the repository on sys.path)
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

flags.DEFINE_integer("num_train", 9843, "Train rows (ModelNet40: 9,843).")
flags.DEFINE_integer("num_test", 2468, "Test rows = retrieval queries (ModelNet40: 2,468).")
flags.DEFINE_integer("num_features", 57344, "Feature size (DM's pooled features: 57,344).")
flags.DEFINE_integer("num_classes", 40, "Classes (ModelNet40: 40).")
flags.DEFINE_float("class_shift", 0.025, "Std of the class means per feature, in noise units.")
flags.DEFINE_integer("seed", 0, "Seed of the features and labels.")
flags.DEFINE_integer("map_repeats", 3, "Timed retrieval_map calls (the median is reported).")
flags.DEFINE_bool("quick", False, "Tiny sizes: checks the script end to end in seconds.")
FLAGS = flags.FLAGS
TARGETS = {"map_s": 5.0, "svm_s": 300.0, "svm_gib": 8.0}


def make_features(num_train, num_test, num_features, num_classes, class_shift, seed):
    """(train_x, train_y, test_x, test_y), made in chunks (no temporary as large as x)."""
    rng = np.random.default_rng(seed)
    weights = rng.permutation(np.linspace(1.0, 10.0, num_classes))
    weights /= weights.sum()
    means = (class_shift * rng.standard_normal((num_classes, num_features))).astype(np.float32)

    def split(n):
        y = rng.choice(num_classes, size=n, p=weights).astype(np.int64)
        x = np.empty((n, num_features), np.float32)
        chunk = max(1, (64 * 2**20) // (4 * num_features))
        for lo in range(0, n, chunk):
            part = x[lo : lo + chunk]
            rng.standard_normal(part.shape, dtype=np.float32, out=part)
            part += means[y[lo : lo + chunk]]
        return x, y

    return (*split(num_train), *split(num_test))


def bench_retrieval(test_x, test_y, repeats: int) -> dict:
    from enhancer_gan.evaluation.retrieval import retrieval_map, squared_distances

    reports = []
    timing = common.time_calls(lambda: reports.append(retrieval_map(test_x, test_y)), repeats, 0)
    gram = common.time_calls(lambda: squared_distances(test_x), max(1, min(repeats, 2)), 0)
    n, d = test_x.shape
    return {
        "queries": reports[-1].num_queries,
        "skipped": reports[-1].num_skipped,
        "mAP": reports[-1].mean_average_precision,
        "chance mAP~": float(np.mean([(np.sum(test_y == c) - 1) / (n - 1) for c in test_y])),
        "s (median)": timing.median,
        "spread": timing.spread,
        "cpu-s": timing.cpu_median,
        "Gram s": gram.median,
        "Gram GFLOP/s": n * (n + 1) * d / gram.median / 1e9,
        "peak RSS GiB": common.max_rss_gib(),
    }


def bench_svm(train_x, train_y, test_x, test_y) -> tuple[dict, dict]:
    from enhancer_gan.evaluation.classification import evaluate, fit_linear_svm

    start = time.perf_counter()
    result = fit_linear_svm(train_x, train_y)
    seconds = time.perf_counter() - start
    n, d = train_x.shape
    fit = {
        "n x D": f"{n} x {d}",
        "chosen C": result.c,
        "best CV acc": max((float(np.mean(s)) for s in result.cv_scores.values()), default=0.0),
        "support vectors": int(result.model.support_.size),
        "s": seconds,
        **{f"{k} s": v for k, v in result.timings.items()},
        "Gram GFLOP/s": n * (n + 1) * d / result.timings["kernel"] / 1e9,
        "peak RSS GiB": common.max_rss_gib(),
    }
    report = evaluate(result, test_x, test_y)
    test = {
        "test rows": report.num_test,
        "accuracy": report.accuracy,
        "chance (majority)": float(np.max(np.bincount(test_y)) / test_y.size),
        "predict s": report.predict_seconds,
    }
    return fit, test


def target_row(what: str, value: float, unit: str, limit: float) -> dict:
    ok = math.isfinite(value) and value < limit
    return {
        "target": what,
        "measured": f"{value:.4g} {unit}",
        "limit": f"< {limit:g} {unit}",
        "result": "PASS" if ok else "FAIL",
    }


def main(argv):
    del argv
    if FLAGS.quick:
        sizes, shift, repeats, peak_n = (300, 120, 1024, 6), 0.1, 1, 512
    else:
        sizes = (FLAGS.num_train, FLAGS.num_test, FLAGS.num_features, FLAGS.num_classes)
        shift, repeats, peak_n = FLAGS.class_shift, FLAGS.map_repeats, 4096
    common.print_machine()
    print(f"numpy {np.__version__}; features (train, test, D, classes): {sizes}", flush=True)
    train_x, train_y, test_x, test_y = make_features(*sizes, shift, FLAGS.seed)

    before = common.numpy_matmul_peak(peak_n)
    print("measuring retrieval, then the SVM fit ...", flush=True)
    retrieval = bench_retrieval(test_x, test_y, repeats)
    fit, test = bench_svm(train_x, train_y, test_x, test_y)
    after = common.numpy_matmul_peak(peak_n)
    peak = (before.gflops + after.gflops) / 2
    retrieval["Gram vs matmul"] = retrieval["Gram GFLOP/s"] / peak
    fit["Gram vs matmul"] = fit["Gram GFLOP/s"] / peak
    print(f"reference: {before.name}: {before.gflops:.1f} GFLOP/s before, {after.gflops:.1f} after")
    common.print_table("retrieval_map, every test item queries all others", [retrieval])
    common.print_table("fit_linear_svm (defaults), train split", [fit])
    common.print_table("evaluate, test split (not a target)", [test])
    targets = [
        target_row("retrieval_map (median)", retrieval["s (median)"], "s", TARGETS["map_s"]),
        target_row("fit_linear_svm time", fit["s"], "s", TARGETS["svm_s"]),
        target_row("fit_linear_svm peak RSS", fit["peak RSS GiB"], "GiB", TARGETS["svm_gib"]),
        target_row("TensorFlow imported", float("tensorflow" in sys.modules), "times", 1),
    ]
    common.print_table("targets", targets)
    common.final_line("map_seconds", retrieval["s (median)"])


if __name__ == "__main__":
    app.run(main)
