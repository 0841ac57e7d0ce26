"""Faults: SIGKILL at random moments, SIGTERM, unusable or full run folders, failed writes.

The kill test runs training in child processes (this file is also the
child's driver: `python -m tests.test_faults RUN_DIR NUM_STEPS`) and kills
them with SIGKILL, then restarts, until the run is done. With a checkpoint
after every step most of a step's time is the checkpoint write, so random
kills land in writes; one trial also stops the child deterministically
after a checkpoint's files are written but before TensorFlow commits them
(the `checkpoint` index), the narrowest window there is.

Each child costs a TensorFlow import and a trace of the train step (10-25 s
on two busy cores), so the trials are few: a kill during start-up, two
random kills while training, the commit-window kill, then a run to the end.
"""

from __future__ import annotations

import errno
import glob
import os
import pathlib
import queue
import random
import re
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

# ---------------------------------------------------------------------------
# The child process.

HOLD_ENV = "ENHANCER_GAN_TEST_HOLD_BEFORE_COMMIT"


def _check_checkpoints(run_dir: str) -> None:
    """Prints one line per checkpoint the `checkpoint` index lists.

    'CKPT <name> ok <step>' when every tensor reads back, 'CKPT <name> missing'
    when its files are gone (a kill between TensorFlow's sweep of old
    checkpoints and its second index write leaves such a name; it is never
    the latest), 'CKPT <name> BROKEN <why>' otherwise, and 'LATEST <name>'.
    """
    import tensorflow as tf

    folder = os.path.join(run_dir, "checkpoints")
    state = tf.train.get_checkpoint_state(folder)
    if state is None:
        print("LATEST none", flush=True)
        return
    for path in state.all_model_checkpoint_paths:
        path = os.path.join(folder, os.path.basename(path))
        name = os.path.basename(path)
        if not os.path.exists(path + ".index"):
            print(f"CKPT {name} missing", flush=True)
            continue
        try:
            reader = tf.train.load_checkpoint(path)
            for key in reader.get_variable_to_shape_map():
                reader.get_tensor(key)
            step = int(reader.get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE"))
            print(f"CKPT {name} ok {step}", flush=True)
        except Exception as e:  # noqa: BLE001 - reported to the parent, which fails
            print(f"CKPT {name} BROKEN {type(e).__name__}: {str(e)[:200]!r}", flush=True)
    print(f"LATEST {os.path.basename(state.model_checkpoint_path)}", flush=True)


def _hold_before_commit(step: int) -> None:
    """Makes the CheckpointManager stop for good just before it commits `step`."""
    from tensorflow.python.checkpoint import checkpoint_management

    original = checkpoint_management.CheckpointManager._record_state

    def record_state(self):
        if self.latest_checkpoint and self.latest_checkpoint.endswith(f"ckpt-{step}"):
            print(f"HOLD {step}", flush=True)
            time.sleep(3600)
        original(self)

    checkpoint_management.CheckpointManager._record_state = record_state


def _child(run_dir: str, num_steps: int) -> None:
    import tensorflow as tf

    from enhancer_gan.training import trainer as trainer_module
    from enhancer_gan.training.loop import train
    from tests.helpers import tiny_experiment, tiny_source, tiny_train_config

    _check_checkpoints(run_dir)
    if os.environ.get(HOLD_ENV):
        _hold_before_commit(int(os.environ[HOLD_ENV]))
    # Each child writes its own copy of the (identical) views, so a kill
    # while writing them cannot damage the next child's data.
    views = os.path.join(os.path.dirname(run_dir), f"views-{os.getpid()}")
    source, _ = tiny_source(views, n=6, res=32, views=2)
    original_init = trainer_module.GanTrainer.__init__

    def init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        inner = self.train_step

        def step_and_report(batch):
            out = inner(batch)
            print(f"STEP {int(self.step)}", flush=True)
            return out

        self.train_step = step_and_report

    trainer_module.GanTrainer.__init__ = init
    config = tiny_experiment(
        run_dir,
        train=tiny_train_config(
            num_steps=num_steps, checkpoint_every=1, summary_every=1, sample_every=10_000
        ),
    )
    result = train(config, source=source, progress=False, log=lambda m: print(m, flush=True))
    reader = tf.train.load_checkpoint(result.checkpoint_path)
    networks = (
        "voxel_generator",
        "voxel_discriminator",
        "enhancer_generator",
        "enhancer_discriminator",
    )
    for name in ("step", *(f"{n}_optimizer/_iterations" for n in networks)):
        key = f"{name}/.ATTRIBUTES/VARIABLE_VALUE"
        if reader.has_tensor(key):
            print(f"COUNTER {name} {int(reader.get_tensor(key))}", flush=True)
    print(f"DONE {result.step}", flush=True)


# ---------------------------------------------------------------------------
# The parent side.


class Child:
    """A training child whose stdout lines arrive on a queue."""

    def __init__(self, run_dir: str, num_steps: int, env=None):
        self.lines: list[str] = []
        self._queue: queue.Queue = queue.Queue()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.test_faults", run_dir, str(num_steps)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})},
        )
        self._stderr: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()
        threading.Thread(target=lambda: self._stderr.extend(self.proc.stderr), daemon=True).start()

    def _pump(self):
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, pattern: str, timeout: float = 240) -> str | None:
        """The first new line matching `pattern`; None if the child ended first."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._queue.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                self.kill()
                raise AssertionError(
                    f"no line /{pattern}/ in {timeout} s:\n{self.output()}"
                ) from None
            if line is None:
                return None
            self.lines.append(line)
            if re.match(pattern, line):
                return line

    def kill(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=60)
        self.drain()

    def drain(self):
        while True:
            try:
                line = self._queue.get(timeout=5 if self.proc.poll() is None else 1)
            except queue.Empty:
                return
            if line is None:
                return
            self.lines.append(line)

    def output(self) -> str:
        return "\n".join(self.lines) + "\nstderr:\n" + "".join(self._stderr)[-3000:]


def _committed_step(run_dir: str) -> int:
    """The step of the checkpoint the `checkpoint` index names (0 if none)."""
    path = os.path.join(run_dir, "checkpoints", "checkpoint")
    if not os.path.exists(path):
        return 0
    with open(path) as f:
        match = re.search(r'^model_checkpoint_path: "ckpt-(\d+)"', f.read(), re.M)
    assert match, f"unreadable checkpoint index {path}"
    return int(match.group(1))


def _check_restart(child: Child, committed: int) -> None:
    """The restarted child saw only readable checkpoints and resumed at `committed`."""
    lines = child.lines
    assert not [ln for ln in lines if " BROKEN " in ln], child.output()
    latest = [ln.split()[1] for ln in lines if ln.startswith("LATEST")]
    assert latest == [f"ckpt-{committed}" if committed else "none"], child.output()
    assert f"CKPT ckpt-{committed} ok {committed}" in lines or not committed, child.output()
    resumed = [ln for ln in lines if ln.startswith("Resumed")]
    if committed:
        assert len(resumed) == 1 and resumed[0].endswith(f"at step {committed}."), child.output()
    else:
        assert not resumed, child.output()
    steps = [int(ln.split()[1]) for ln in lines if ln.startswith("STEP")]
    if steps:  # the step counter never goes back past the checkpoint
        assert steps[0] == committed + 1 and steps == list(range(committed + 1, steps[-1] + 1))


@pytest.mark.slow
def test_sigkill_at_random_moments_resumes_from_the_last_complete_checkpoint(tmp_path):
    rng = random.Random(20180202)
    num_steps = 24
    run_dir = str(tmp_path / "run")
    committed = 0
    history = []
    # startup: anywhere in import, restore, tracing or the first steps;
    # first_write: just after this child's first step, during its first
    # checkpoint write (the slowest, it traces the save functions);
    # training: at a random moment once this child has saved a checkpoint;
    # commit_window: after a checkpoint's files, before its index entry.
    trials = ["startup", "first_write", "training", "commit_window"]
    for trial in trials:
        env = {}
        if trial == "commit_window":
            env[HOLD_ENV] = str(committed + 2)
        child = Child(run_dir, num_steps, env)
        if trial == "startup":
            time.sleep(rng.uniform(2.0, 12.0))
        elif trial == "first_write":
            assert child.wait_for(r"STEP ") is not None, child.output()
            time.sleep(rng.uniform(0.0, 0.5))
        elif trial == "training":
            assert child.wait_for(rf"STEP {committed + 2}$") is not None, child.output()
            time.sleep(rng.uniform(0.0, 1.0))
        else:
            held = child.wait_for(r"HOLD ")
            assert held == f"HOLD {committed + 2}", child.output()
        child.kill()
        assert child.proc.returncode == -signal.SIGKILL, child.output()
        assert not [ln for ln in child.lines if ln.startswith("DONE")], "finished before the kill"
        if history:  # this child started from the previous kill's checkpoint
            _check_restart(child, history[-1])
        new = _committed_step(run_dir)
        assert new >= committed, f"checkpoint went back from {committed} to {new}"
        if trial == "commit_window":
            # ckpt-N's files are complete on disk, but the index still names N-1.
            assert new == committed + 1
            assert os.path.exists(os.path.join(run_dir, "checkpoints", f"ckpt-{new + 1}.index"))
        committed = new
        history.append(committed)
        # What the kill interrupted: files of checkpoints after the committed one.
        uncommitted = sorted(
            os.path.basename(p)
            for p in glob.glob(os.path.join(run_dir, "checkpoints", "ckpt-*"))
            if int(re.match(r"ckpt-(\d+)", os.path.basename(p)).group(1)) > committed
        )
        print(f"kill {trial}: committed ckpt-{committed}, uncommitted files {uncommitted}")
    assert len(history) == len(trials) >= 4
    assert committed >= 2, history  # kills did land while training

    final = Child(run_dir, num_steps)
    assert final.wait_for(r"DONE ") == f"DONE {num_steps}", final.output()
    final.proc.wait(timeout=60)
    final.drain()
    assert final.proc.returncode == 0, final.output()
    _check_restart(final, committed)
    counters = dict(ln.split()[1:] for ln in final.lines if ln.startswith("COUNTER"))
    # As many steps as an uninterrupted run: one D update and two G updates
    # per step, none lost or repeated across the kills.
    assert counters["step"] == str(num_steps)
    assert counters["voxel_discriminator_optimizer/_iterations"] == str(num_steps)
    assert counters["voxel_generator_optimizer/_iterations"] == str(2 * num_steps)
    assert counters["enhancer_generator_optimizer/_iterations"] == str(2 * num_steps)
    assert _committed_step(run_dir) == num_steps
    # No temporary checkpoint folders or files are left behind.
    leftovers = glob.glob(os.path.join(run_dir, "checkpoints", "*_temp*"))
    assert not leftovers, leftovers


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_and_exits_cleanly(tmp_path):
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "experiments" / "train.py"),
            f"--run_dir={run_dir}",
            f"--data_dir={tmp_path / 'synthetic'}",
            "--dataset=synthetic",
            "--categories=chair",
            "--num_synthetic_per_category=2",
            "--views_per_model=1",
            "--resolution=32",
            "--image_size=32",
            "--width_multiplier=0.0625",
            "--batch_size=2",
            "--num_steps=100000",
            "--checkpoint_every=100000",
            "--sample_every=100000",
            "--summary_every=1",
            "--num_samples=2",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    output = bytearray()

    def pump():
        while chunk := proc.stdout.read1(4096):
            output.extend(chunk)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    # The progress bar counts steps on stdout: wait for a few.
    deadline = time.monotonic() + 300
    while not re.search(rb"\b[3-9]/100000", bytes(output)):
        assert proc.poll() is None, output.decode(errors="replace")
        assert time.monotonic() < deadline, output.decode(errors="replace")
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 0, output.decode(errors="replace")
    reader.join(timeout=10)
    text = output.decode(errors="replace")
    match = re.search(r"Stopped by signal 15 at step (\d+); checkpoint (\S+)\.", text)
    assert match, text
    step, path = int(match.group(1)), match.group(2)
    assert step >= 3
    assert "Resume with the same command" in text and f"--run_dir={run_dir}" in text
    assert f"Interrupted at step {step}" in text
    assert path.endswith(f"ckpt-{step}") and os.path.exists(path + ".index")
    assert _committed_step(str(run_dir)) == step


# ---------------------------------------------------------------------------
# Run folders that cannot be used, disks that fill.


@pytest.fixture
def source(tmp_path):
    from tests.helpers import tiny_source

    src, _ = tiny_source(str(tmp_path / "views"), n=4, res=32, views=1)
    return src


def _train(config, source):
    from enhancer_gan.training.loop import train

    return train(config, source=source, progress=False, log=lambda *_: None)


def test_run_dir_under_a_file_is_refused_before_anything_is_written(tmp_path, source):
    from enhancer_gan.training.loop import RunDirError
    from tests.helpers import tiny_experiment

    blocker = tmp_path / "results"
    blocker.write_text("a file where a folder should be")
    with pytest.raises(RunDirError, match=r"results/run: run folder is not writable"):
        _train(tiny_experiment(str(blocker / "run")), source)
    assert blocker.read_text() == "a file where a folder should be"


def _deny_writes_under(monkeypatch, folder):
    """Makes creating files or folders under `folder` fail with EACCES.

    What chmod 0o500 does for a normal user; root ignores file modes, so the
    denial is also made explicit here (open for writing, os.makedirs).
    """
    import builtins

    real_open, real_makedirs = builtins.open, os.makedirs
    prefix = os.path.abspath(folder) + os.sep

    def inside(path):
        return isinstance(path, (str, os.PathLike)) and os.path.abspath(path).startswith(prefix)

    def denied(path):
        return PermissionError(errno.EACCES, "Permission denied", os.fspath(path))

    def guarded_open(path, mode="r", *args, **kwargs):
        if inside(path) and any(c in mode for c in "wax+"):
            raise denied(path)
        return real_open(path, mode, *args, **kwargs)

    def guarded_makedirs(path, *args, **kwargs):
        if inside(path) and not os.path.isdir(path):
            raise denied(path)
        return real_makedirs(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded_open)
    monkeypatch.setattr(os, "makedirs", guarded_makedirs)


def test_read_only_run_dir_is_refused(tmp_path, source, monkeypatch):
    from enhancer_gan.training.loop import RunDirError
    from tests.helpers import tiny_experiment

    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        _deny_writes_under(monkeypatch, folder)  # also when running as root
        with pytest.raises(PermissionError):
            open(folder / "probe", "w")
        with pytest.raises(RunDirError, match="not writable"):
            _train(tiny_experiment(str(folder / "run")), source)
        monkeypatch.undo()
        assert os.listdir(folder) == []
    finally:
        folder.chmod(0o700)


def test_full_disk_is_found_before_training(tmp_path, source, monkeypatch):
    from enhancer_gan.training import loop
    from tests.helpers import tiny_experiment

    class Usage:
        total, used, free = 10 << 30, (10 << 30) - (1 << 10), 1 << 10

    monkeypatch.setattr(loop.shutil, "disk_usage", lambda path: Usage)
    run_dir = tmp_path / "run"
    with pytest.raises(loop.RunDirError, match=r"only 0 MiB free.*needs about"):
        _train(tiny_experiment(str(run_dir)), source)
    # Refused before the config, a checkpoint or an event file was written.
    assert sorted(os.listdir(run_dir)) == []


def test_disk_full_during_a_checkpoint_write_is_a_clear_error(tmp_path, source, monkeypatch):
    import tensorflow as tf

    from enhancer_gan.training import loop
    from enhancer_gan.training.runs import load_run
    from tests.helpers import tiny_experiment, tiny_train_config

    original = tf.train.Checkpoint._write

    def write(self, file_prefix, options=None):
        if not file_prefix.endswith("ckpt-2"):
            return original(self, file_prefix, options=options)
        # Part of the data reaches the disk, then the disk is full.
        with open(file_prefix + ".data-00000-of-00001", "wb") as f:
            f.write(b"\0" * 1000)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), file_prefix)

    monkeypatch.setattr(tf.train.Checkpoint, "_write", write)
    run_dir = str(tmp_path / "run")
    config = tiny_experiment(run_dir, train=tiny_train_config(num_steps=3, checkpoint_every=1))
    with pytest.raises(loop.RunDirError) as info:
        _train(config, source)
    message = str(info.value)
    assert run_dir in message and "No space left on device" in message
    assert "step 2" in message and "last complete checkpoint is" in message
    assert message.split("last complete checkpoint is ")[1].startswith(
        os.path.join(run_dir, "checkpoints", "ckpt-1")
    )
    # The half-written checkpoint is gone; the committed one is whole.
    assert not glob.glob(os.path.join(run_dir, "checkpoints", "ckpt-2*"))
    assert _committed_step(run_dir) == 1
    monkeypatch.undo()
    run = load_run(run_dir)
    assert run.step == 1


# ---------------------------------------------------------------------------
# Result files: written to a temporary name and renamed.


def _fail_halfway(path, *args, **kwargs):
    """A writer that puts half a file on disk and then fails like a full disk."""
    with open(path, "wb") as f:
        f.write(b"PK\x03\x04 half a file")
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))


def _only(folder) -> list[str]:
    return sorted(os.listdir(folder))


def test_failed_feature_write_leaves_no_file_and_no_temporary(tmp_path, monkeypatch):
    from enhancer_gan.evaluation import features

    path = tmp_path / "out" / "train.npz"
    feats = np.ones((2, 3), np.float32)
    monkeypatch.setattr(np, "savez", _fail_halfway)
    with pytest.raises(OSError, match="No space left"):
        features.save_features(str(path), feats, [0, 1], ["a", "b"], ["x", "y"], {})
    assert _only(path.parent) == []
    monkeypatch.undo()
    # An existing result is kept whole when its replacement fails.
    features.save_features(str(path), feats, [0, 1], ["a", "b"], ["x", "y"], {"v": 1})
    before = path.read_bytes()
    monkeypatch.setattr(np, "savez", _fail_halfway)
    with pytest.raises(OSError):
        features.save_features(str(path), feats * 2, [0, 1], ["a", "b"], ["x", "y"], {"v": 2})
    assert path.read_bytes() == before and _only(path.parent) == ["train.npz"]


def test_failed_text_binvox_mesh_and_png_writes_leave_nothing(tmp_path, monkeypatch):
    from PIL import Image

    from enhancer_gan import io_utils
    from enhancer_gan.data.off import write_off
    from enhancer_gan.voxels import binvox, mesh, sheet

    grid = np.zeros((6, 6, 6), bool)
    grid[1:4, 1:4, 1:4] = True
    vertices, faces = mesh.voxels_to_mesh(grid)
    writers = {
        "table.json": lambda p: io_utils.atomic_write_json(p, {"accuracy": 0.9}),
        "table.md": lambda p: io_utils.atomic_write_text(p, "| a |\n"),
        "shape.binvox": lambda p: binvox.write_binvox(p, grid),
        "shape.obj": lambda p: mesh.write_obj(p, vertices, faces),
        "shape.ply": lambda p: mesh.write_ply(p, vertices, faces),
        "shape.off": lambda p: write_off(p, vertices, faces),
    }
    real_open = open
    failed = []

    def open_that_fills_the_disk(file, mode="r", *args, **kwargs):
        """Opening a temporary for writing works; writing to it fails halfway."""
        handle = real_open(file, mode, *args, **kwargs)
        name = os.path.basename(os.fspath(file)) if not isinstance(file, int) else ""
        if "w" in mode and name.startswith(".") and ".tmp" in name:
            handle.write(b"half" if "b" in mode else "half")
            handle.close()
            failed.append(name)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.fspath(file))
        return handle

    for name, write in writers.items():
        with monkeypatch.context() as m:
            m.setattr("builtins.open", open_that_fills_the_disk)
            with pytest.raises(OSError, match="No space left"):
                write(tmp_path / name)
        assert _only(tmp_path) == [], name
    assert len(failed) == len(writers)

    # PNG sheets go through PIL.
    with monkeypatch.context() as m:
        m.setattr(Image.Image, "save", lambda self, fp, *a, **k: _fail_halfway(fp))
        with pytest.raises(OSError, match="No space left"):
            sheet.save_sheet(str(tmp_path / "sheet.png"), [grid], ncols=1)
    assert _only(tmp_path) == []
    # And each writer does produce its file when the disk is fine.
    for name, write in writers.items():
        write(tmp_path / name)
    assert _only(tmp_path) == sorted(writers)


def test_failed_export_leaves_no_folder_and_no_temporary(tmp_path, monkeypatch):
    import tensorflow as tf

    from enhancer_gan.models import build_networks
    from enhancer_gan.training import export
    from tests.helpers import tiny_model_config

    networks = build_networks(tiny_model_config())

    def save(module, path, signatures=None):
        os.makedirs(os.path.join(path, "variables"))
        _fail_halfway(os.path.join(path, "saved_model.pb"))

    monkeypatch.setattr(tf.saved_model, "save", save)
    target = tmp_path / "export"
    with pytest.raises(OSError, match="No space left"):
        export.export_generator(networks, str(target))
    assert _only(tmp_path) == []


if __name__ == "__main__":
    _child(sys.argv[1], int(sys.argv[2]))
