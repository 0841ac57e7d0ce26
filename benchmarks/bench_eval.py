"""Benchmark: evaluation of shape features, linear-SVM fit and retrieval mAP (no TensorFlow).

  python benchmarks/bench_eval.py                 # ModelNet40's size: 9,843 + 2,468 x 57,344
  python benchmarks/bench_eval.py --num_train=3991 --num_test=908 --num_classes=10
  python benchmarks/bench_eval.py --quick         # tiny, seconds (smoke test)

Features: random float32 of ModelNet40's size (9,843 train and 2,468 test
rows, 57,344 columns, 40 classes; fixed seed), made weakly class-dependent
so that there is something to learn: x = noise + mu[class], noise ~ N(0, 1)
and every class mean mu[c] ~ N(0, --class_shift^2) per feature. Class sizes
are unequal (probabilities rising 1 : 10 across the classes, as ModelNet40's
sizes vary ~14-fold). About 2.8 GB of features are held in memory.

1. SVM: `enhancer_gan.evaluation.classification.fit_linear_svm` with its
   defaults (standardisation, precomputed Gram matrix K = Z Z^T built in
   float32 column blocks, C in 1e-5 .. 1 chosen by 3-fold stratified CV on
   train, refit on all of train), timed per stage, with the peak resident
   set while it runs (`common.RssSampler`: the features it is given count,
   as they would in a real evaluation). Then `evaluate` on the test split
   (its test kernel and prediction; timed, not a target) shows that the SVM
   learned something.
2. Retrieval: `enhancer_gan.evaluation.retrieval.retrieval_map` over all
   test items as queries (mAP, interpolated PR curve and per-rank curves),
   timed `--map_repeats` times (median; the first call is cold), then its
   squared-distance matrix (`squared_distances`: the Gram matrix of the
   centred features) alone, to split the time into Gram and ranking.

Targets, printed with PASS/FAIL: retrieval under 5 s; SVM fit under 5 min
and under 8 GB peak RSS; TensorFlow never imported.

Reference: a float32 numpy matmul (`common.numpy_matmul_peak`, numpy's BLAS,
the one the evaluation uses) measured just before and just after the timed
work; the Gram matrices' achieved GFLOP/s are divided by its rate. The Gram
matrix is a symmetric rank-k update (BLAS syrk), counted as the n(n+1)/2
dot products of length D it must compute: n(n+1) D FLOPs.

Last line: `map_seconds=<number>` (the median retrieval time).
"""

from __future__ import annotations

import gc
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
flags.DEFINE_bool("evaluate", True, "Also apply the fitted SVM to the test split.")
flags.DEFINE_integer("peak_n", 4096, "Side of the reference numpy matmul.")
flags.DEFINE_integer("peak_repeats", 3, "Timed calls of the reference matmul per measurement.")
flags.DEFINE_float("map_target_s", 5.0, "Retrieval target, seconds.")
flags.DEFINE_float("svm_target_s", 300.0, "SVM fit target, seconds.")
flags.DEFINE_float("svm_target_gib", 8.0, "SVM fit target, peak RSS in GiB (GB as 2^30 bytes).")
flags.DEFINE_bool("quick", False, "Tiny sizes: checks the script end to end in seconds.")
FLAGS = flags.FLAGS


def make_features(num_train, num_test, num_features, num_classes, class_shift, seed):
    """(train_x, train_y, test_x, test_y): float32 features, int64 labels.

    Rows are generated in chunks so that no temporary is as large as the
    features themselves.
    """
    rng = np.random.default_rng(seed)
    weights = np.linspace(1.0, 10.0, num_classes)
    weights = rng.permutation(weights) / weights.sum()
    means = (class_shift * rng.standard_normal((num_classes, num_features))).astype(np.float32)

    def split(n):
        y = rng.choice(num_classes, size=n, p=weights).astype(np.int64)
        x = np.empty((n, num_features), np.float32)
        chunk = max(1, (64 * 2**20) // (4 * num_features))
        for lo in range(0, n, chunk):
            hi = min(lo + chunk, n)
            rng.standard_normal((hi - lo, num_features), dtype=np.float32, out=x[lo:hi])
            x[lo:hi] += means[y[lo:hi]]
        return x, y

    train_x, train_y = split(num_train)
    test_x, test_y = split(num_test)
    return train_x, train_y, test_x, test_y


def gram_flops(n: int, d: int) -> int:
    """FLOPs of a symmetric n x n Gram matrix of length-d rows (syrk)."""
    return n * (n + 1) * d


def bench_retrieval(test_x, test_y, repeats: int) -> dict:
    from enhancer_gan.evaluation.retrieval import retrieval_map, squared_distances

    with common.RssSampler() as memory:
        reports = []
        timing = common.time_calls(
            lambda: reports.append(retrieval_map(test_x, test_y)), repeats=repeats, warmup=0
        )
    # Its first part alone, after it (warm, as in the median above).
    dist_timing = common.time_calls(
        lambda: squared_distances(test_x), repeats=max(1, min(repeats, 2)), warmup=0
    )
    report = reports[-1]
    n, d = test_x.shape
    chance = float(np.mean([(np.sum(test_y == c) - 1) / (n - 1) for c in test_y]))
    return {
        "queries": report.num_queries,
        "skipped": report.num_skipped,
        "mAP": report.mean_average_precision,
        "chance mAP~": chance,
        "P@R=0.5": float(np.interp(0.5, *report.pr_curve())),
        "s (median)": timing.median,
        "spread": timing.spread,
        "cpu-s": timing.cpu_median,
        "distances s": dist_timing.median,
        "ranking+AP s~": timing.median - dist_timing.median,
        "Gram GFLOP/s~": gram_flops(n, d) / dist_timing.median / 1e9,
        "peak RSS GiB": common.gib(memory.peak_bytes),
        "RSS rise GiB": common.gib(memory.rise_bytes),
    }


def bench_svm(train_x, train_y, test_x, test_y, evaluate: bool) -> tuple[dict, dict | None]:
    from enhancer_gan.evaluation.classification import evaluate as evaluate_svm
    from enhancer_gan.evaluation.classification import fit_linear_svm

    with common.RssSampler() as memory:
        start, start_cpu = time.perf_counter(), time.process_time()
        result = fit_linear_svm(train_x, train_y)
        seconds = time.perf_counter() - start
        cpu = time.process_time() - start_cpu
    n, d = train_x.shape
    fit = {
        "n x D": f"{n} x {d}",
        "chosen C": result.c,
        "best CV acc": max(float(np.mean(s)) for s in result.cv_scores.values())
        if result.cv_scores
        else float("nan"),
        "support vectors": int(result.model.support_.size),
        "s": seconds,
        "cpu-s": cpu,
        **{f"{k} s": v for k, v in result.timings.items()},
        "Gram GFLOP/s": gram_flops(n, d) / result.timings["kernel"] / 1e9,
        "peak RSS GiB": common.gib(memory.peak_bytes),
        "RSS rise GiB": common.gib(memory.rise_bytes),
    }
    test = None
    if evaluate:
        with common.RssSampler() as memory:
            report = evaluate_svm(result, test_x, test_y)
        test = {
            "test rows": report.num_test,
            "accuracy": report.accuracy,
            "mean class acc": report.mean_class_accuracy,
            "chance (majority)": float(np.max(np.bincount(test_y)) / test_y.size),
            "predict s": report.predict_seconds,
            "peak RSS GiB": common.gib(memory.peak_bytes),
        }
    del result
    gc.collect()
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
        sizes = dict(num_train=300, num_test=120, num_features=1024, num_classes=6)
        class_shift, map_repeats, peak_n, peak_repeats = 0.1, 1, 512, 2
    else:
        sizes = dict(
            num_train=FLAGS.num_train,
            num_test=FLAGS.num_test,
            num_features=FLAGS.num_features,
            num_classes=FLAGS.num_classes,
        )
        class_shift, map_repeats = FLAGS.class_shift, FLAGS.map_repeats
        peak_n, peak_repeats = FLAGS.peak_n, FLAGS.peak_repeats
    common.print_machine()
    print(f"numpy {np.__version__}; features: {sizes}, class_shift={class_shift}", flush=True)

    start = time.perf_counter()
    train_x, train_y, test_x, test_y = make_features(
        **sizes, class_shift=class_shift, seed=FLAGS.seed
    )
    print(
        f"features made in {time.perf_counter() - start:.1f} s "
        f"({common.gib(train_x.nbytes + test_x.nbytes):.2f} GiB float32); "
        f"smallest class: {np.bincount(train_y).min()} train, {np.bincount(test_y).min()} test",
        flush=True,
    )

    peak_before = common.numpy_matmul_peak(peak_n, repeats=peak_repeats)
    print("measuring retrieval ...", flush=True)
    retrieval = bench_retrieval(test_x, test_y, map_repeats)
    print("measuring the SVM fit ...", flush=True)
    fit, test = bench_svm(train_x, train_y, test_x, test_y, FLAGS.evaluate)
    peak_after = common.numpy_matmul_peak(peak_n, repeats=peak_repeats)
    peak = (peak_before.gflops + peak_after.gflops) / 2

    retrieval["Gram vs matmul"] = retrieval["Gram GFLOP/s~"] / peak
    fit["Gram vs matmul"] = fit["Gram GFLOP/s"] / peak
    print(
        f"\nreference: {peak_before.name}: {peak_before.gflops:.1f} GFLOP/s before, "
        f"{peak_after.gflops:.1f} after (Gram FLOPs = n(n+1)D, syrk)"
    )
    common.print_table("retrieval_map, every test item queries all others", [retrieval])
    common.print_table("fit_linear_svm (defaults), train split", [fit])
    if test is not None:
        common.print_table("evaluate, test split (not a target)", [test])

    tf_imported = "tensorflow" in sys.modules
    targets = [
        target_row("retrieval_map (median)", retrieval["s (median)"], "s", FLAGS.map_target_s),
        target_row("fit_linear_svm time", fit["s"], "s", FLAGS.svm_target_s),
        target_row("fit_linear_svm peak RSS", fit["peak RSS GiB"], "GiB", FLAGS.svm_target_gib),
        {
            "target": "TensorFlow not imported",
            "measured": f"imported: {tf_imported}",
            "limit": "not imported",
            "result": "FAIL" if tf_imported else "PASS",
        },
    ]
    common.print_table("targets", targets)
    print(f"\nprocess peak RSS (ru_maxrss): {common.gib(common.max_rss_bytes()):.2f} GiB")
    common.final_line("map_seconds", retrieval["s (median)"])


if __name__ == "__main__":
    app.run(main)
