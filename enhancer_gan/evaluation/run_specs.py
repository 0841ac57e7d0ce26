"""Which runs a table compares: '--runs=label:run_dir,...' parsed into RunSpecs.

Also the reserved floor row (`with_random_baseline`: DM with random weights)
and the Table 3 rule that each row's label names its run's GE layer.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Sequence

from enhancer_gan.errors import ConfigError
from enhancer_gan.evaluation.paper import TABLE3_LABELS, paper_key

RANDOM_BASELINE_LABEL = "random_init"
_LABEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """One row of a table: a label and where its features come from.

    Attributes:
      label: row name, also the folder/file name part (letters, digits, _ . -).
      run_dir: the training run folder.
      random_init: use DM's random initialisation (the feature floor).
      checkpoint: checkpoint name or path ('' = the latest).
    """

    label: str
    run_dir: str
    random_init: bool = False
    checkpoint: str = ""


def parse_runs(text: str | Sequence[str], allowed_labels: Sequence[str] | None = None):
    """Parses 'label:run_dir,label:run_dir' (or a list of 'label:run_dir').

    Returns:
      tuple of RunSpec, in the given order.

    Raises:
      ConfigError: empty, malformed, duplicate or (with `allowed_labels`)
        unknown labels.
    """
    items = text.split(",") if isinstance(text, str) else list(text)
    items = [s.strip() for s in items if s.strip()]
    if not items:
        raise ConfigError("--runs is empty; give label:run_dir[,label:run_dir...]")
    specs = []
    for item in items:
        label, sep, run_dir = item.partition(":")
        label, run_dir = label.strip(), run_dir.strip()
        if not sep or not label or not run_dir:
            raise ConfigError(f"--runs: {item!r} is not label:run_dir")
        if not _LABEL_RE.match(label):
            raise ConfigError(
                f"--runs: label {label!r} may hold only letters, digits, '_', '.' and '-'"
            )
        if label == RANDOM_BASELINE_LABEL:
            raise ConfigError(
                f"--runs: the label {RANDOM_BASELINE_LABEL!r} is reserved for --random_baseline"
            )
        if allowed_labels is not None and label not in allowed_labels:
            raise ConfigError(f"--runs: label {label!r} is not one of {', '.join(allowed_labels)}")
        specs.append(RunSpec(label, run_dir))
    labels = [s.label for s in specs]
    dup = sorted({x for x in labels if labels.count(x) > 1})
    if dup:
        raise ConfigError(f"--runs: label(s) {', '.join(dup)} given more than once")
    return tuple(specs)


def with_random_baseline(specs: Sequence[RunSpec]) -> tuple[RunSpec, ...]:
    """Appends the floor: a randomly initialised DM of the first run's config."""
    return (*specs, RunSpec(RANDOM_BASELINE_LABEL, specs[0].run_dir, random_init=True))


def check_table3_labels(specs: Sequence[RunSpec]) -> None:
    """Each Table 3 row label must name its run's layer (before any work is done).

    Raises:
      ConfigError: an unknown label, a run folder without config.json, or a
        label that is not the run's ('none' for use_enhancer=False, else
        'layer<enhancer_layer>').
    """
    from enhancer_gan.config import ExperimentConfig

    for s in specs:
        if s.random_init:
            continue
        if s.label not in TABLE3_LABELS:
            raise ConfigError(f"--runs: label {s.label!r} is not one of {', '.join(TABLE3_LABELS)}")
        path = os.path.join(s.run_dir, "config.json")
        if not os.path.exists(path):
            raise ConfigError(f"--runs: {s.run_dir}: not a run folder (no config.json)")
        key = paper_key(dataclasses.asdict(ExperimentConfig.load(path).model), "table3")
        if key != s.label:
            raise ConfigError(
                f"--runs: row {s.label!r} is {s.run_dir}, whose config is {key!r} "
                f"(use_enhancer / enhancer_layer); label it {key}"
            )
