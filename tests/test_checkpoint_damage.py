"""Damaged checkpoints: training resumes from the newest whole one, tools name the damage.

A tiny no-enhancer run (3 steps, a checkpoint after each: ckpt-1..3, each
with its checksum file ckpt-N.sha256.json) is trained once per module (per
xdist worker); each case copies it and damages the latest checkpoint, or the
`checkpoint` state file, in one way: cut at seeded random offsets, flipped
bytes, missing or empty files, and the same without the checksum file (a
checkpoint written before the project wrote them), where only TensorFlow's
own checks (the sstable's block CRCs, each tensor's CRC-32C) apply.

Every case checks both sides:
  - the tools' path (`find_checkpoint`, which `load_run`, generate,
    extract_features, the tables and export go through) raises a
    DamagedCheckpointError naming the damaged file and the checkpoints that
    read whole; never another exception, never a silent fall-back;
  - resuming (`prepare_resume`, what `train` runs first) picks the newest
    checkpoint that reads whole, moves the damaged files into
    checkpoints/damaged/ byte for byte, and leaves a state file that
    CheckpointManager reads consistently.
A subset resumes for real through `train()` and reaches the requested step
with max_to_keep still working; one runs `tools/generate.py` end to end.
"""

from __future__ import annotations

import glob
import hashlib
import os
import random
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from enhancer_gan.training import checkpoints as ckpts
from tests.helpers import tiny_experiment, tiny_model_config, tiny_source, tiny_train_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEED = 14
LATEST = "ckpt-3"
DATA = f"{LATEST}.data-00000-of-00001"
INDEX = f"{LATEST}.index"
SUM = f"{LATEST}{ckpts.CHECKSUM_SUFFIX}"


def _config(run_dir: str, num_steps: int):
    return tiny_experiment(
        run_dir,
        model=tiny_model_config(use_enhancer=False),
        train=tiny_train_config(
            num_steps=num_steps,
            checkpoint_every=1,
            summary_every=1000,
            sample_every=1000,
            max_checkpoints=3,
        ),
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(run_dir, source): a finished 3-step run with ckpt-1, ckpt-2, ckpt-3."""
    from enhancer_gan.training.loop import train

    base = tmp_path_factory.mktemp("damage")
    source, _ = tiny_source(str(base / "views"), n=4, res=32, views=1)
    run_dir = str(base / "run")
    result = train(_config(run_dir, 3), source=source, progress=False, log=lambda *_: None)
    assert result.step == 3
    return run_dir, source


@pytest.fixture
def run(trained, tmp_path):
    """A fresh copy of the trained run."""
    run_dir = str(tmp_path / "run")
    shutil.copytree(trained[0], run_dir)
    return run_dir


def _folder(run_dir: str) -> str:
    return os.path.join(run_dir, "checkpoints")


def _digest(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


# ---------------------------------------------------------------------------
# The damages. Each takes the checkpoints folder and returns nothing.


def _cut(name, fraction):
    def damage(folder):
        path = os.path.join(folder, name)
        with open(path, "rb") as f:
            data = f.read()
        with open(path, "wb") as f:
            f.write(data[: int(fraction * len(data))])

    return damage


def _flip(name, fraction, count=1):
    def damage(folder):
        path = os.path.join(folder, name)
        with open(path, "rb") as f:
            data = bytearray(f.read())
        rng = random.Random(f"{name}{fraction}")
        start = int(fraction * len(data))
        for k in range(count):
            data[min(start + k, len(data) - 1)] ^= 1 << rng.randrange(8)
        with open(path, "wb") as f:
            f.write(bytes(data))

    return damage


def _remove(*names):
    def damage(folder):
        for name in names:
            os.remove(os.path.join(folder, name))

    return damage


def _write(name, text: bytes):
    def damage(folder):
        with open(os.path.join(folder, name), "wb") as f:
            f.write(text)

    return damage


def _old(damage):
    """The same damage to a checkpoint without a checksum file (TensorFlow's checks only)."""

    def old(folder):
        os.remove(os.path.join(folder, SUM))
        damage(folder)

    return old


_rng = random.Random(SEED)
_fractions = [round(_rng.random(), 4) for _ in range(60)]

# (id, damage, what is damaged: "ckpt" (ckpt-3), "state" (the state file),
#  "state?" (a state file edit that may still read as the same state),
#  "ckpt?" (an edit TensorFlow may not see, without a checksum file),
#  a regex the problem sentence must match)
CASES = []
for f in [0.0, 0.5, 0.999999, *_fractions[:9]]:
    CASES.append((f"data-cut-{f}", _cut(DATA, f), "ckpt", r"data shard .* cut short \(read \d+ of"))
for f in [0.0, 0.5, *_fractions[9:15]]:
    CASES.append((f"index-cut-{f}", _cut(INDEX, f), "ckpt", r"index file .* (empty|cut short)"))
for f in [0.0, 0.999999, *_fractions[15:23]]:
    CASES.append((f"data-flip-{f}", _flip(DATA, f), "ckpt", r"data shard .* changed since"))
for f in [0.0, 0.999999, *_fractions[23:29]]:
    CASES.append((f"index-flip-{f}", _flip(INDEX, f), "ckpt", r"index file .* changed since"))
CASES += [
    ("data-missing", _remove(DATA), "ckpt", r"data shard .* is missing"),
    ("index-missing", _remove(INDEX), "ckpt", r"index file .* is missing"),
    ("index-and-data-missing", _remove(INDEX, DATA), "ckpt", r"missing"),
    ("index-empty", _write(INDEX, b""), "ckpt", r"index file .* is empty"),
    ("data-replaced-by-7-bytes", _write(DATA, b"\0" * 7), "ckpt", r"data shard .* cut short"),
    ("checksum-file-garbage", _write(SUM, b"{not json"), "ckpt", r"checksum file .* unreadable"),
    (
        "checksum-file-flip",
        _flip(SUM, 0.6, 3),
        "ckpt",
        r"checksum file|changed since|bytes|missing",
    ),
]
# Without checksum files: TensorFlow's own checks.
for f in [0.0, 0.5, *_fractions[29:33]]:
    CASES.append((f"old-data-cut-{f}", _old(_cut(DATA, f)), "ckpt", r"data shard .* cut short"))
for f in _fractions[33:38]:
    CASES.append((f"old-data-flip-{f}", _old(_flip(DATA, f)), "ckpt", r"CRC-32C"))
for f in [0.0, 0.5, *_fractions[38:40]]:
    CASES.append((f"old-index-cut-{f}", _old(_cut(INDEX, f)), "ckpt", r"index file .* (empty|dam)"))
for f in _fractions[40:45]:
    CASES.append((f"old-index-flip-{f}", _old(_flip(INDEX, f)), "ckpt?", r"index file .* damaged"))
CASES += [
    ("old-data-missing", _old(_remove(DATA)), "ckpt", r"data shard .* is missing"),
    ("old-index-missing", _old(_remove(INDEX)), "ckpt", r"index file .* is missing"),
]
# The state file.
CASES += [
    ("state-missing", _remove("checkpoint"), "state", r"is missing"),
    ("state-empty", _write("checkpoint", b""), "state", r"names no checkpoint"),
    ("state-garbage", _write("checkpoint", b"\x89PNG\r\n\x1a\n\0\0"), "state", r"unreadable"),
    (
        "state-names-a-lost-checkpoint",
        _write("checkpoint", b'model_checkpoint_path: "ckpt-9"\n'),
        "ckpt9",
        r"missing",
    ),
    (
        "state-inconsistent",
        _write(
            "checkpoint",
            b'model_checkpoint_path: "ckpt-1"\nall_model_checkpoint_paths: "ckpt-3"\n'
            b'all_model_checkpoint_paths: "ckpt-1"\n',
        ),
        "state",
        r"inconsistent",
    ),
]
for f in [0.3, 0.6, *_fractions[45:48]]:
    CASES.append((f"state-cut-{f}", _cut("checkpoint", f), "state?", r"state file"))
for f in _fractions[48:53]:
    CASES.append((f"state-flip-{f}", _flip("checkpoint", f, 2), "state?", r"state file"))


@pytest.mark.parametrize("damage,kind,problem", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_tools_name_the_damage_and_resume_falls_back(trained, run, damage, kind, problem):
    from enhancer_gan.training.runs import find_checkpoint

    folder = _folder(run)
    damage(folder)
    before = {p: _digest(p) for p in glob.glob(os.path.join(folder, "*")) if os.path.isfile(p)}

    # The tools: the latest checkpoint is refused with the file and the problem.
    try:
        found = find_checkpoint(run)
    except ckpts.DamagedCheckpointError as e:
        message = str(e)
        assert "\n" not in message
        if kind == "ckpt9":
            assert e.path.endswith("ckpt-9") and re.search(problem, e.problem), message
            assert "--checkpoint=): ckpt-3, ckpt-2, ckpt-1" in message, message
        elif kind.startswith("ckpt"):
            assert e.path.endswith(LATEST) and f"{LATEST}: damaged: " in message, message
            assert re.search(problem, e.problem), e.problem
            assert "(select one with --checkpoint=): ckpt-2, ckpt-1" in message, message
        else:
            assert e.path.endswith(os.path.join("checkpoints", "checkpoint")), message
            assert re.search(problem, e.problem), e.problem
            assert "--checkpoint=): ckpt-3, ckpt-2, ckpt-1" in message, message
        found = None
    if found is not None:
        # Only edits that leave the bytes TensorFlow uses intact may pass.
        assert kind in ("state?", "ckpt?"), found
        assert ckpts.verify(found).whole
        if kind == "ckpt?":  # the tensors are the ones that were saved
            _assert_same_tensors(found, os.path.join(_folder(trained[0]), LATEST))
    # The other checkpoints stay selectable by name; a damaged one by name is refused.
    assert find_checkpoint(run, "ckpt-2").endswith("ckpt-2")
    if kind == "ckpt":
        with pytest.raises(ckpts.DamagedCheckpointError, match=f"{LATEST}: damaged"):
            find_checkpoint(run, LATEST)
    assert before == {p: _digest(p) for p in before}, "the tools changed a file"

    # Resuming: the newest whole checkpoint, the damaged files set aside untouched.
    resume = ckpts.prepare_resume(folder)
    assert resume.prefix is not None and ckpts.verify(resume.prefix).whole
    want = "ckpt-2" if kind in ("ckpt", "ckpt?") and found is None else LATEST
    assert os.path.basename(resume.prefix) == want, resume
    assert resume.step == int(want.split("-")[1])
    if found is None:
        assert resume.notice and "\n" not in resume.notice
    moved = glob.glob(os.path.join(folder, ckpts.DAMAGED_DIR, "*"))
    for path in moved:
        original = os.path.join(folder, os.path.basename(path))
        assert before[original] == _digest(path), f"{path} was changed when moved"
    if want == "ckpt-2":
        assert not glob.glob(os.path.join(folder, f"{LATEST}.*")), os.listdir(folder)
        assert {os.path.basename(p) for p in moved} == {
            os.path.basename(p) for p in before if os.path.basename(p).startswith(f"{LATEST}.")
        }
    for name in ("ckpt-1", "ckpt-2"):  # older checkpoints are never touched
        for path in glob.glob(os.path.join(folder, f"{name}.*")):
            assert before[path] == _digest(path)
    _assert_manager_consistent(folder, resume.prefix)
    # Resuming again finds nothing wrong.
    again = ckpts.prepare_resume(folder)
    assert again.prefix == resume.prefix and again.notice == ""


def _assert_same_tensors(prefix: str, original: str) -> None:
    import tensorflow as tf

    got, want = tf.train.load_checkpoint(prefix), tf.train.load_checkpoint(original)
    keys = want.get_variable_to_shape_map()
    assert set(got.get_variable_to_shape_map()) == set(keys)
    for key in keys:
        np.testing.assert_array_equal(got.get_tensor(key), want.get_tensor(key))


def _assert_manager_consistent(folder: str, latest: str) -> None:
    import tensorflow as tf

    state = tf.train.get_checkpoint_state(folder)
    assert state is not None and state.model_checkpoint_path == latest
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(), folder, max_to_keep=3)
    assert manager.latest_checkpoint == latest
    assert manager.checkpoints and manager.checkpoints[-1] == latest
    for path in manager.checkpoints:
        assert os.path.exists(path + ".index"), manager.checkpoints


def test_index_edits_tensorflow_misses_are_harmless_and_the_checksum_catches_them(run):
    """Without a checksum file some index bytes can change unseen; they change no tensor."""
    import tensorflow as tf

    folder = _folder(run)
    path = os.path.join(folder, INDEX)
    with open(path, "rb") as f:
        original = f.read()
    reader = tf.train.load_checkpoint(os.path.join(folder, LATEST))
    want = {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()}
    missed = []
    for offset in range(len(original) - 120, len(original)):
        data = bytearray(original)
        data[offset] ^= 0x10
        with open(path, "wb") as f:
            f.write(bytes(data))
        with_sum = ckpts.verify(os.path.join(folder, LATEST))
        assert not with_sum.whole and "changed since it was saved" in with_sum.problem
        shutil.move(os.path.join(folder, SUM), os.path.join(folder, "sum"))
        without = ckpts.verify(os.path.join(folder, LATEST))
        shutil.move(os.path.join(folder, "sum"), os.path.join(folder, SUM))
        if without.whole:
            missed.append(offset)
            got = tf.train.load_checkpoint(os.path.join(folder, LATEST))
            for key, value in want.items():
                np.testing.assert_array_equal(got.get_tensor(key), value)
    with open(path, "wb") as f:
        f.write(original)
    print(f"index flips TensorFlow missed (harmless): {len(missed)} of 120")


# ---------------------------------------------------------------------------
# Real resumes through train().

# Each costs a trace of the train step (about 10 s of CPU), so they are few.
TRAIN_CASES = {
    "data-cut-in-half": _cut(DATA, 0.5),
    "state-garbage-and-data-missing": lambda f: (
        _write("checkpoint", b"garbage {")(f),
        _remove(DATA)(f),
    ),
    "two-damaged-old-checkpoints": lambda f: (
        _old(_flip(DATA, _fractions[55]))(f),
        os.remove(os.path.join(f, "ckpt-2.sha256.json")),
        _cut("ckpt-2.index", _fractions[56])(f),
    ),
}


@pytest.mark.parametrize("name", list(TRAIN_CASES))
def test_training_resumes_from_the_newest_whole_checkpoint(run, trained, name):
    from enhancer_gan.training.loop import train

    folder = _folder(run)
    TRAIN_CASES[name](folder)
    lines = []
    result = train(_config(run, 4), source=trained[1], progress=False, log=lines.append)
    assert result.step == 4 and not result.interrupted
    start = 1 if name.startswith("two") else 2
    resumed = [ln for ln in lines if ln.startswith("Resumed")]
    assert len(resumed) == 1, lines
    assert f"ckpt-{start} at step {start} after checking the checkpoints: damaged" in resumed[0]
    assert "ckpt-3" in resumed[0] and ckpts.DAMAGED_DIR in resumed[0], resumed[0]
    assert [ln for ln in lines if "damaged" in ln] == resumed, lines
    # max_to_keep=3 still holds; every checkpoint left reads whole and has its checksums.
    import tensorflow as tf

    state = tf.train.get_checkpoint_state(folder)
    names = [os.path.basename(p) for p in state.all_model_checkpoint_paths]
    assert names == ["ckpt-2", "ckpt-3", "ckpt-4"], names
    on_disk = sorted(os.path.basename(p) for p in ckpts.on_disk(folder))
    assert on_disk == ["ckpt-2", "ckpt-3", "ckpt-4"], os.listdir(folder)
    for prefix in ckpts.on_disk(folder):
        assert ckpts.verify(prefix).whole
        assert os.path.exists(ckpts.checksum_path(prefix))
    assert ckpts.verify(os.path.join(folder, "ckpt-4")).step == 4
    assert os.listdir(os.path.join(folder, ckpts.DAMAGED_DIR))


def test_resume_removes_the_shard_folders_of_interrupted_saves(run, trained):
    """A save killed half-way leaves `ckpt-N_temp/`; resuming removes it, and only it."""
    from enhancer_gan.training.loop import train

    folder = _folder(run)
    for n in (4, 9):  # the save that the kill interrupted, and one never re-saved
        part = os.path.join(folder, f"ckpt-{n}_temp")
        os.makedirs(part)
        with open(os.path.join(part, "part-00000-of-00001.data-00000-of-00001"), "wb") as f:
            f.write(b"\0" * 100)
    kept = {p: _digest(p) for p in glob.glob(os.path.join(folder, "ckpt-[123].*"))}
    lines = []
    result = train(_config(run, 4), source=trained[1], progress=False, log=lines.append)
    assert result.step == 4
    assert lines and lines[0].startswith("Resumed") and "ckpt-3 at step 3." in lines[0], lines
    assert not glob.glob(os.path.join(folder, "*_temp*")), os.listdir(folder)
    assert ckpts.verify(os.path.join(folder, "ckpt-4")).whole
    # The whole checkpoints were not touched (ckpt-1 is swept by max_to_keep=3).
    for path, digest in kept.items():
        if "ckpt-1." not in path:
            assert _digest(path) == digest, path


def test_no_readable_checkpoint_stops_unless_restart_is_asked(run, trained):
    from enhancer_gan.training.loop import train

    folder = _folder(run)
    for n in (1, 2, 3):
        _cut(f"ckpt-{n}.data-00000-of-00001", 0.5)(folder)
    before = {p: _digest(p) for p in glob.glob(os.path.join(folder, "*")) if os.path.isfile(p)}
    with pytest.raises(ckpts.NoReadableCheckpointError) as info:
        train(_config(run, 1), source=trained[1], progress=False, log=lambda *_: None)
    message = str(info.value)
    for n in (3, 2, 1):
        assert f"ckpt-{n}: data shard ckpt-{n}.data-00000-of-00001 cut short" in message
    assert "--restart_if_damaged" in message and "Nothing was moved" in message
    after = {p: _digest(p) for p in glob.glob(os.path.join(folder, "*")) if os.path.isfile(p)}
    assert before == after
    lines = []
    result = train(
        _config(run, 1),
        source=trained[1],
        progress=False,
        log=lines.append,
        restart_if_damaged=True,
    )
    assert result.step == 1
    assert len(lines) == 1 and "starting again from step 0" in lines[0], lines
    damaged = sorted(os.listdir(os.path.join(folder, ckpts.DAMAGED_DIR)))
    assert len(damaged) == 10, damaged  # 3 x (index, data, checksums) and the state file
    assert [os.path.basename(p) for p in ckpts.on_disk(folder)] == ["ckpt-1"]


# ---------------------------------------------------------------------------
# The tools end to end.


def test_load_run_and_extract_features_refuse_a_damaged_checkpoint(run, tmp_path):
    from enhancer_gan.evaluation.extract import extract_dataset_features
    from enhancer_gan.training.runs import RunError, load_run

    _cut(DATA, 0.5)(_folder(run))
    with pytest.raises(ckpts.DamagedCheckpointError, match=r"ckpt-3: damaged: data shard .* cut"):
        load_run(run)
    assert load_run(run, "ckpt-2").step == 2
    with pytest.raises(ckpts.DamagedCheckpointError, match=r"--checkpoint=\): ckpt-2, ckpt-1"):
        extract_dataset_features(
            run_dir=run, dataset="synthetic", data_dir="", output_dir=str(tmp_path / "f")
        )
    assert not os.path.exists(tmp_path / "f" / "train.npz")
    # Made for another configuration: a different message.
    other = str(tmp_path / "other")
    shutil.copytree(run, other)
    cfg = _config(other, 3)
    import dataclasses

    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, use_enhancer=True))
    with open(os.path.join(other, "config.json"), "w") as f:
        f.write(cfg.to_json())
    with pytest.raises(RunError, match="another configuration") as info:
        load_run(other, "ckpt-2")
    assert not isinstance(info.value, ckpts.DamagedCheckpointError)


def test_generate_tool_prints_one_error_line(run, tmp_path):
    _cut(INDEX, 0.5)(_folder(run))
    out = subprocess.run(
        [sys.executable, "tools/generate.py", f"--run_dir={run}", f"--output_dir={tmp_path}/g"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        timeout=300,
    )
    assert out.returncode == 2, out.stderr[-3000:]
    assert "Traceback" not in out.stderr
    errors = [ln for ln in out.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, out.stderr[-3000:]
    assert "ckpt-3: damaged: index file ckpt-3.index" in errors[0]
    assert "ckpt-2, ckpt-1" in errors[0]


@pytest.mark.parametrize(
    "graph,problem",
    [(b"\xff\xff\xff not a proto", "object graph is unreadable"), (None, "no object graph")],
)
def test_an_unreadable_object_graph_is_damage(tmp_path, graph, problem):
    """Tensors that read back but an object graph that does not parse (or is absent)."""
    import tensorflow as tf

    prefix = str(tmp_path / "ckpt-1")
    names, tensors = ["step/.ATTRIBUTES/VARIABLE_VALUE"], [tf.constant(1, tf.int64)]
    if graph is not None:
        names.append("_CHECKPOINTABLE_OBJECT_GRAPH")
        tensors.append(tf.constant(graph))
    tf.raw_ops.SaveV2(
        prefix=prefix, tensor_names=names, shape_and_slices=[""] * len(names), tensors=tensors
    )
    status = ckpts.verify(prefix)
    assert not status.whole and problem in status.problem, status
