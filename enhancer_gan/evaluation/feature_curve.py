"""Feature quality along a training run, against the random-weight floor.

For every checkpoint of a run (and for the same DM at its random
initialisation, "step 0", the floor of the same seed), DM features of a
labelled split are scored on a validation split carved from it:

  - linear-SVM accuracy: fitted on the rest of the split (C by 3-fold CV
    there), scored on the validation part;
  - retrieval mAP on the validation part, raw (Euclidean on the features as
    they are), standardised (per-feature mean/std of the fitting part) and
    block-L2 (each of DM's pooled layers scaled to unit norm,
    `diagnostics.block_l2_normalize`);
  - optionally (`SampleReference`), the checkpoint's samples against real
    grids: COV, MMD, 1-NNA and the speckle measures of
    `generation_metrics.generation_report`, beside a ceiling (other real
    grids scored the same way) computed once per curve.

The curves of DM's accuracy and D(real)/D(fake) are read back from the run's
TensorBoard events, so the picture shows feature quality beside how the game
was going. Nothing here looks at the test split: recipes are chosen on these
numbers, and the test split is scored once, at the end, by the table scripts.

This module must not read flags.
"""

from __future__ import annotations

import dataclasses
import glob
import logging
import os
import re
from collections.abc import Callable, Sequence

import numpy as np

# Training scalars drawn beside the feature curves.
TRAIN_TAGS = (
    "voxel/d_accuracy",
    "voxel/d_real",
    "voxel/d_fake",
    "voxel/fake_occupancy",
    "voxel/real_occupancy",
    "gate/voxel_discriminator_skipped",
)

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class ValidationSplit:
    """Row indices of the fitting and validation parts of one labelled split."""

    fit: np.ndarray
    val: np.ndarray


def carve_validation(labels: np.ndarray, fraction: float = 0.2, seed: int = 0) -> ValidationSplit:
    """A stratified `fraction` of the rows for validation, the rest for fitting."""
    from sklearn.model_selection import train_test_split

    labels = np.asarray(labels)
    if not 0 < fraction < 1:
        raise ValueError(f"validation fraction must be in (0, 1), got {fraction}")
    idx = np.arange(len(labels))
    fit, val = train_test_split(idx, test_size=fraction, stratify=labels, random_state=seed)
    return ValidationSplit(np.sort(fit), np.sort(val))


def score_features(
    features: np.ndarray,
    labels: np.ndarray,
    split: ValidationSplit,
    c_values: Sequence[float] | None = None,
    seed: int = 0,
    block_sizes: Sequence[int] | None = None,
) -> dict[str, float]:
    """SVM validation accuracy and validation mAP (raw, standardised, block-L2), in %.

    'map_block_l2' only when `block_sizes` (the feature's layer blocks) is given.
    """
    from enhancer_gan.evaluation import classification
    from enhancer_gan.evaluation.diagnostics import block_l2_normalize
    from enhancer_gan.evaluation.retrieval import retrieval_map

    fx, fy = features[split.fit], labels[split.fit]
    vx, vy = features[split.val], labels[split.val]
    kwargs = {} if c_values is None else {"c_values": tuple(c_values)}
    svm = classification.fit_linear_svm(fx, fy, seed=seed, **kwargs)
    accuracy = float(np.mean(svm.predict(vx) == vy))
    standardized = svm.standardizer.transform(vx)
    scores = {
        "svm_val_accuracy": 100.0 * accuracy,
        "chosen_c": float(svm.c),
        "map_raw": 100.0 * retrieval_map(vx, vy).mean_average_precision,
        "map_standardized": 100.0 * retrieval_map(standardized, vy).mean_average_precision,
    }
    if block_sizes is not None:
        normed = block_l2_normalize(vx, block_sizes)
        scores["map_block_l2"] = 100.0 * retrieval_map(normed, vy).mean_average_precision
    return scores


# The sample measures kept per checkpoint (keys of generation_report).
SAMPLE_KEYS = (
    "cov",
    "mmd",
    "one_nna",
    "generated_components",
    "generated_many_pieces_fraction",
    "generated_largest_share",
    "generated_undecided",
    "generated_occupancy",
)


@dataclasses.dataclass(frozen=True)
class SampleReference:
    """Real grids every checkpoint's samples are scored against, and the ceiling's.

    reference: [M, R, R, R] held-out real grids; ceiling: other real grids
    (as many as the samples), scored against `reference` as if they were
    samples: what a generator that reproduced the data would reach.
    """

    reference: np.ndarray
    ceiling: np.ndarray
    num_samples: int = 128
    seed: int = 0

    def ceiling_scores(self) -> dict[str, float]:
        from enhancer_gan.evaluation.generation_metrics import generation_report

        report = generation_report(self.ceiling, self.reference, seed=self.seed)
        return {k: report[k] for k in SAMPLE_KEYS}

    def scores(self, run_dir: str, checkpoint: str, random_init: bool) -> dict[str, float]:
        """SAMPLE_KEYS of `num_samples` samples (the default sampling, averaged weights)."""
        from enhancer_gan.evaluation.generation_eval import evaluate_run_generation

        report = evaluate_run_generation(
            run_dir,
            self.reference,
            self.num_samples,
            self.seed,
            checkpoint,
            random_init=random_init,
        )
        return {k: report[k] for k in SAMPLE_KEYS}


def list_checkpoints(run_dir: str) -> list[tuple[int, str]]:
    """(step, path prefix) of every checkpoint in run_dir/checkpoints, by step."""
    found = []
    for index in glob.glob(os.path.join(run_dir, "checkpoints", "ckpt-*.index")):
        m = re.fullmatch(r"ckpt-(\d+)\.index", os.path.basename(index))
        if m:
            found.append((int(m.group(1)), index[: -len(".index")]))
    return sorted(found)


def read_train_scalars(run_dir: str, tags: Sequence[str] = TRAIN_TAGS) -> dict[str, list]:
    """{tag: [[step, value], ...]} from the run's TensorBoard events (train/)."""
    import tensorflow as tf

    out: dict[str, dict[int, float]] = {t: {} for t in tags}
    for path in sorted(glob.glob(os.path.join(run_dir, "train", "events.out.tfevents.*"))):
        try:
            for event in tf.compat.v1.train.summary_iterator(path):
                for value in event.summary.value:
                    if value.tag in out:
                        out[value.tag][int(event.step)] = float(tf.make_ndarray(value.tensor))
        except tf.errors.DataLossError:  # a run still being written: keep what was read
            continue
    return {t: sorted([s, v] for s, v in d.items()) for t, d in out.items() if d}


def read_provenance(run_dir: str) -> list[dict]:
    """The run's provenance.jsonl (one line per training start: commit, machine, step), if any.

    Written by experiments/reproduce_mn10_long.sh; a line that is not JSON is
    kept as {'unreadable': line}, so a figure never loses where it came from.
    """
    import json

    path = os.path.join(run_dir, "provenance.jsonl")
    if not os.path.isfile(path):
        return []
    out = []
    with open(path) as f:
        for line in f:
            if line.strip():
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    out.append({"unreadable": line.strip()})
    return out


def feature_curve(
    run_dir: str,
    grids: np.ndarray,
    labels: np.ndarray,
    split: ValidationSplit,
    previous: dict | None = None,
    c_values: Sequence[float] | None = None,
    batch_size: int = 64,
    last_only: bool = False,
    log: Callable[[str], None] = logger.info,
    samples: SampleReference | None = None,
) -> dict:
    """Scores the floor and every checkpoint of `run_dir`; reuses `previous` results.

    `last_only` scores the floor and the latest checkpoint only (a cheaper
    end point without the curve); checkpoints in `previous` are kept.
    `samples` adds each checkpoint's sample measures ('samples') and the
    ceiling ('sample_ceiling'); a previous result without them is rescored.

    Returns a JSON-ready dict: run_dir, train config, floor, checkpoints
    ([{step, checkpoint, scores...}] by step), train_scalars, validation
    sizes and, with `samples`, sample_ceiling.
    """
    from enhancer_gan.evaluation.features import FeatureExtractor, feature_block_sizes
    from enhancer_gan.training.runs import load_run

    done = {}
    if previous:
        done = {c["step"]: c for c in previous.get("checkpoints", [])}
        if "floor" in previous:
            done[0] = previous["floor"]
    needed = {"map_block_l2"} | ({"samples"} if samples is not None else set())

    def scored(step: int, checkpoint: str, random_init: bool) -> dict:
        if step in done and needed <= set(done[step]):
            return done[step]
        run = load_run(run_dir, checkpoint, random_init=random_init)
        dm = run.networks.voxel_discriminator
        feats = FeatureExtractor(dm, batch_size=batch_size)(grids)
        result = {"step": step, "checkpoint": checkpoint or "random_init"}
        result.update(
            score_features(feats, labels, split, c_values, block_sizes=feature_block_sizes(dm))
        )
        if samples is not None:
            result["samples"] = samples.scores(run_dir, checkpoint, random_init)
        log(
            f"{run_dir} step {step}: SVM {result['svm_val_accuracy']:.2f}  "
            f"mAP raw {result['map_raw']:.2f}  std {result['map_standardized']:.2f}  "
            f"block-L2 {result['map_block_l2']:.2f}"
            + (f"  COV {result['samples']['cov']:.3f}" if samples is not None else "")
        )
        return result

    from enhancer_gan.config import ExperimentConfig

    config = ExperimentConfig.load(os.path.join(run_dir, "config.json"))
    floor = scored(0, "", True)
    found = list_checkpoints(run_dir)
    if last_only:  # the latest, and whatever `previous` already scored
        found = [f for f in found if f[0] in done or f == found[-1]]
    checkpoints = [scored(step, path, False) for step, path in found]
    return {
        "run_dir": run_dir,
        "train_config": dataclasses.asdict(config.train),
        "use_enhancer": config.model.use_enhancer,
        "floor": floor,
        "checkpoints": checkpoints,
        "train_scalars": read_train_scalars(run_dir),
        "validation": {"num_fit": int(len(split.fit)), "num_val": int(len(split.val))},
        "provenance": read_provenance(run_dir),
        **({"sample_ceiling": samples.ceiling_scores()} if samples is not None else {}),
    }


def plot_feature_curve(curve: dict, path: str, title: str = "") -> None:
    """Panels against the step: SVM accuracy, mAP, DM's game (and samples, when scored)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    checkpoints, floor = curve["checkpoints"], curve["floor"]
    steps = [c["step"] for c in checkpoints]
    with_samples = "sample_ceiling" in curve
    fig, axes = plt.subplots(1, 4 if with_samples else 3, figsize=(20 if with_samples else 15, 4))
    ax = axes[0]
    ax.plot(steps, [c["svm_val_accuracy"] for c in checkpoints], "o-", label="trained")
    ax.axhline(floor["svm_val_accuracy"], color="gray", ls="--", label="random DM (floor)")
    ax.set(xlabel="step", ylabel="SVM accuracy, validation (%)", title="classification")
    ax.legend()
    ax = axes[1]
    for key, colour in (("map_raw", "C0"), ("map_standardized", "C1"), ("map_block_l2", "C2")):
        if not all(key in c for c in [floor, *checkpoints]):
            continue
        name = key[len("map_") :]
        ax.plot(steps, [c[key] for c in checkpoints], "o-", color=colour, label=name)
        ax.axhline(floor[key], color=colour, ls="--", alpha=0.6, label=f"{name}, floor")
    ax.set(xlabel="step", ylabel="mAP, validation (%)", title="retrieval")
    ax.legend(fontsize=8)
    ax = axes[2]
    for tag, values in curve["train_scalars"].items():
        if tag.startswith(("voxel/d_", "gate/")):
            arr = np.asarray(values)
            ax.plot(arr[:, 0], arr[:, 1], label=tag)
    ax.set(xlabel="step", ylim=(-0.02, 1.02), title="DM during training")
    ax.legend(fontsize=8)
    if with_samples:
        _plot_samples(axes[3], steps, checkpoints, curve["sample_ceiling"])
    fig.suptitle(title or curve["run_dir"])
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _plot_samples(ax, steps, checkpoints, ceiling) -> None:
    """COV and 1-NNA (left axis, ceiling dashed) and pieces per sample (right axis)."""
    scored = [(s, c["samples"]) for s, c in zip(steps, checkpoints) if "samples" in c]
    xs = [s for s, _ in scored]
    for key, colour in (("cov", "C0"), ("one_nna", "C3")):
        ax.plot(xs, [m[key] for _, m in scored], "o-", color=colour, label=key)
        ax.axhline(ceiling[key], color=colour, ls="--", alpha=0.6, label=f"{key}, real vs real")
    ax.set(xlabel="step", ylim=(-0.02, 1.02), title="samples")
    right = ax.twinx()
    right.plot(xs, [m["generated_components"] for _, m in scored], "s:", color="C4")
    right.axhline(ceiling["generated_components"], color="C4", ls="--", alpha=0.6)
    right.set_ylabel("pieces per sample (purple; dashed: real)")
    ax.legend(fontsize=7, loc="upper left")


def plot_curves_together(curves: Sequence[dict], path: str) -> None:
    """All runs on one figure, each metric as the difference to its own floor."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = (
        ("svm_val_accuracy", "SVM accuracy − floor"),
        ("map_raw", "mAP raw − floor"),
        ("map_standardized", "mAP standardised − floor"),
    )
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    for k, curve in enumerate(curves):
        name = os.path.basename(os.path.normpath(curve["run_dir"]))
        steps = [0] + [c["step"] for c in curve["checkpoints"]]
        for ax, (key, _) in zip(axes, keys):
            values = [0.0] + [c[key] - curve["floor"][key] for c in curve["checkpoints"]]
            style = "o-" if len(steps) > 2 else "s"
            ax.plot(steps, values, style, color=f"C{k % 10}", label=name, ms=4)
    for ax, (_, label) in zip(axes, keys):
        ax.axhline(0, color="gray", ls="--", lw=1)
        ax.set(xlabel="step", ylabel=f"{label} (points, validation)")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
