"""Checkpoints on disk: listing, checking that one reads whole, setting damaged ones aside.

A run's `checkpoints/` folder holds what `tf.train.CheckpointManager` writes:

  checkpoint                        the state file: the latest checkpoint and
                                    the ones kept (text CheckpointState proto)
  ckpt-N.index                      the tensor index (an sstable)
  ckpt-N.data-00000-of-00001        the tensor bytes (one file per shard)
  ckpt-N.sha256.json                written by this project after each save:
                                    size and sha256 of every file above

`verify(prefix)` says whether a checkpoint reads whole: its checksum file
(when there is one) matches every file byte for byte, TensorFlow opens its
index, every tensor reads back (TensorFlow checks each tensor's CRC-32C) and
the object graph parses. A problem is described as one short sentence
("data shard ckpt-4.data-00000-of-00001 cut short (read 1000 of 6823114
bytes)"). A checkpoint without a checksum file (written before the project
wrote them, or a kill between the save and the checksum write) is checked by
TensorFlow's own means only.

Training uses `prepare_resume` (fall back to the newest whole checkpoint,
move the damaged ones into `checkpoints/damaged/`, never delete them); tools
use `select_checkpoint` (the latest or a named checkpoint, or an error that
names the damage and the readable checkpoints; never a silent fall-back).
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import json
import os
import re
import shutil
import time

from enhancer_gan.errors import EnhancerGanError

CHECKPOINT_NAME = "ckpt"
STATE_FILE = "checkpoint"
DAMAGED_DIR = "damaged"
CHECKSUM_SUFFIX = ".sha256.json"
_FILE_RE = re.compile(
    rf"^{CHECKPOINT_NAME}-(\d+)(\.index|\.data-\d{{5}}-of-(\d{{5}})|{re.escape(CHECKSUM_SUFFIX)})$"
)
_OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"
_STEP_KEY = "step/.ATTRIBUTES/VARIABLE_VALUE"
_HASH_CHUNK = 1 << 22


class RunError(EnhancerGanError):
    """A run folder or checkpoint cannot be used (re-exported by training.runs)."""


class CheckpointError(RunError):
    """A checkpoint (or the folder's state file) cannot be used."""


class DamagedCheckpointError(CheckpointError):
    """A checkpoint's files are damaged (cut short, missing, changed).

    Attributes:
      path: the checkpoint prefix (or the state file) that is damaged.
      problem: what is wrong, one short sentence.
      readable: prefixes of the checkpoints of the same folder that read whole.
    """

    def __init__(self, message: str, path: str, problem: str, readable: list[str]):
        super().__init__(message)
        self.path = path
        self.problem = problem
        self.readable = readable


class NoReadableCheckpointError(CheckpointError):
    """Training cannot resume: no checkpoint of the run reads whole."""


@dataclasses.dataclass(frozen=True)
class Status:
    """What `verify` found. problem None: every tensor read back."""

    prefix: str
    problem: str | None
    step: int | None = None

    @property
    def name(self) -> str:
        return os.path.basename(self.prefix)

    @property
    def whole(self) -> bool:
        return self.problem is None


@dataclasses.dataclass(frozen=True)
class State:
    """The `checkpoint` state file: names are base names inside the folder."""

    latest: str | None
    names: tuple[str, ...]
    timestamps: tuple[float, ...]
    last_preserved: float | None
    problem: str | None  # None: the file is missing or reads fine


def number_of(prefix: str) -> int:
    match = re.search(rf"{CHECKPOINT_NAME}-(\d+)$", prefix)
    return int(match.group(1)) if match else -1


def files_of(prefix: str) -> list[str]:
    """The files on disk that belong to a checkpoint (index, shards, checksums)."""
    folder, name = os.path.split(prefix)
    try:
        entries = os.listdir(folder or ".")
    except OSError:
        return []
    out = []
    for entry in entries:
        match = _FILE_RE.match(entry)
        if match and f"{CHECKPOINT_NAME}-{match.group(1)}" == name:
            path = os.path.join(folder, entry)
            if os.path.isfile(path):
                out.append(path)
    return sorted(out)


def read_state(folder: str) -> State:
    """Parses the state file; a damaged one gives a State with `problem` set."""
    from google.protobuf import text_format
    from tensorflow.python.training.checkpoint_state_pb2 import CheckpointState

    path = os.path.join(folder, STATE_FILE)
    if not os.path.exists(path):
        return State(None, (), (), None, None)
    try:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8")
        proto = CheckpointState()
        text_format.Merge(text, proto)
    except (OSError, UnicodeDecodeError, text_format.ParseError) as e:
        reason = e.strerror if isinstance(e, OSError) else str(e).splitlines()[0][:100]
        return State(None, (), (), None, f"state file {path} is unreadable ({reason})")
    if not proto.model_checkpoint_path:
        return State(None, (), (), None, f"state file {path} names no checkpoint")
    names = tuple(os.path.basename(p) for p in proto.all_model_checkpoint_paths)
    latest = os.path.basename(proto.model_checkpoint_path)
    bad = [n for n in (latest, *names) if number_of(n) < 0]
    if bad:
        return State(None, (), (), None, f"state file {path} names no checkpoint {bad[0]!r}")
    # CheckpointManager lists the latest last, with one timestamp per name.
    newest = max(names, key=number_of, default=latest)
    if names and (latest != names[-1] or number_of(newest) != number_of(latest)):
        return State(
            None,
            (),
            (),
            None,
            f"state file {path} is inconsistent (latest {latest}, kept {newest})",
        )
    if len(proto.all_model_checkpoint_timestamps) not in (0, len(names)):
        return State(None, (), (), None, f"state file {path} is inconsistent (timestamps)")
    return State(
        latest,
        names,
        tuple(proto.all_model_checkpoint_timestamps),
        proto.last_preserved_timestamp or None,
        None,
    )


def on_disk(folder: str) -> list[str]:
    """Prefixes of every checkpoint with at least one file in `folder`, newest first."""
    try:
        entries = os.listdir(folder)
    except OSError:
        return []
    numbers = {int(m.group(1)) for e in entries if (m := _FILE_RE.match(e))}
    return [os.path.join(folder, f"{CHECKPOINT_NAME}-{n}") for n in sorted(numbers, reverse=True)]


def candidates(folder: str, state: State | None = None) -> list[str]:
    """The checkpoints to try for resuming, newest first.

    With a readable state file: the checkpoints it lists, and any others on
    disk that are not newer than its latest (files newer than the latest
    were never committed: a kill during their save; TensorFlow writes them
    again). Without one: every checkpoint on disk.
    """
    state = state or read_state(folder)
    disk = on_disk(folder)
    if state.latest is None:
        return disk
    limit = number_of(state.latest)
    listed = {os.path.join(folder, n) for n in (*state.names, state.latest)}
    both = listed | {p for p in disk if number_of(p) <= limit}
    return sorted(both, key=number_of, reverse=True)


# ---------------------------------------------------------------------------
# Checksums.


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def checksum_path(prefix: str) -> str:
    return prefix + CHECKSUM_SUFFIX


def write_checksums(prefix: str) -> str:
    """Writes <prefix>.sha256.json: size and sha256 of the index and every shard."""
    from enhancer_gan.io_utils import atomic_write_json

    files = {}
    for path in files_of(prefix):
        if path.endswith(CHECKSUM_SUFFIX):
            continue
        files[os.path.basename(path)] = {"bytes": os.path.getsize(path), "sha256": _sha256(path)}
    out = checksum_path(prefix)
    atomic_write_json(out, {"format": 1, "files": files})
    return out


def remove_stale_checksums(folder: str) -> None:
    """Removes checksum files whose checkpoint TensorFlow has swept away."""
    for prefix in on_disk(folder):
        if not os.path.exists(prefix + ".index") and not _shards(prefix):
            try:
                os.remove(checksum_path(prefix))
            except OSError:
                pass


def _check_checksums(prefix: str) -> str | None:
    path = checksum_path(prefix)
    if not os.path.exists(path):
        return None
    name = os.path.basename(path)
    try:
        with open(path, "rb") as f:
            record = json.loads(f.read().decode("utf-8"))
        files = record["files"]
        expected = {k: (int(v["bytes"]), str(v["sha256"])) for k, v in files.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        return f"checksum file {name} is unreadable ({type(e).__name__})"
    folder = os.path.dirname(prefix)
    for file, (size, digest) in sorted(expected.items()):
        where = os.path.join(folder, os.path.basename(file))
        if not os.path.exists(where):
            return f"{_kind(file)} {file} is missing"
        got = os.path.getsize(where)
        if got < size:
            return f"{_kind(file)} {file} cut short (read {got} of {size} bytes)"
        if got != size:
            return f"{_kind(file)} {file} has {got} bytes, {size} were saved"
        if _sha256(where) != digest:
            return f"{_kind(file)} {file} changed since it was saved (sha256 differs from {name})"
    return None


def _kind(file: str) -> str:
    return "index file" if file.endswith(".index") else "data shard"


# ---------------------------------------------------------------------------
# Reading a checkpoint whole.


def _shards(prefix: str) -> list[str]:
    return [p for p in files_of(prefix) if ".data-" in os.path.basename(p)]


def _short(e: BaseException) -> str:
    text = getattr(e, "message", None) or str(e) or type(e).__name__
    text = text.strip().splitlines()[0] if text.strip() else type(e).__name__
    return text if len(text) <= 120 else text[:117] + "..."


def verify(prefix: str) -> Status:
    """Reads every file and every tensor of a checkpoint; says what is wrong, if anything."""
    import tensorflow as tf
    from tensorflow.core.protobuf.trackable_object_graph_pb2 import TrackableObjectGraph

    name = os.path.basename(prefix)
    index = prefix + ".index"
    shards = _shards(prefix)
    if not os.path.exists(index):
        if not files_of(prefix):
            return Status(prefix, "its files are missing")
        return Status(prefix, f"index file {name}.index is missing")
    if os.path.getsize(index) == 0:
        return Status(prefix, f"index file {name}.index is empty (0 bytes)")
    problem = _check_checksums(prefix)
    if problem:
        return Status(prefix, problem)
    for shard in shards:  # every shard the file names promise
        count = int(shard.rsplit("-of-", 1)[1])
        for i in range(count):
            want = f"{prefix}.data-{i:05d}-of-{count:05d}"
            if not os.path.exists(want):
                return Status(prefix, f"data shard {os.path.basename(want)} is missing")
    try:
        reader = tf.train.load_checkpoint(prefix)
        shapes = reader.get_variable_to_shape_map()
        dtypes = reader.get_variable_to_dtype_map()
    except Exception as e:  # noqa: BLE001 - TensorFlow raises many kinds here
        return Status(prefix, f"index file {name}.index is damaged ({_short(e)})")
    if not shards:
        return Status(prefix, f"data shard {name}.data-00000-of-00001 is missing")
    need = 0
    for key, shape in shapes.items():
        if dtypes[key] != tf.string:
            count = 1
            for d in shape:
                count *= d
            need += count * dtypes[key].size
    have = sum(os.path.getsize(s) for s in shards)
    what = os.path.basename(shards[0]) if len(shards) == 1 else f"{len(shards)} data shards"
    if have < need:
        return Status(prefix, f"data shard {what} cut short (read {have} of at least {need} bytes)")
    for key in sorted(shapes):
        try:
            value = reader.get_tensor(key)
        except IndexError:  # TensorFlow's "Read less bytes than requested"
            return Status(
                prefix,
                f"data shard {what} cut short ({have} bytes; tensor {key!r} lies past its end)",
            )
        except Exception as e:  # noqa: BLE001
            text = getattr(e, "message", None) or str(e)
            missing = re.search(r"([^/\s]+\.data-\d{5}-of-\d{5})", text)
            if "No such file" in text and missing:
                return Status(prefix, f"data shard {missing.group(1)} is missing")
            if "Checksum does not match" in text:
                return Status(
                    prefix, f"data shard {what} is damaged (tensor {key!r} fails its CRC-32C check)"
                )
            return Status(prefix, f"tensor {key!r} cannot be read ({_short(e)})")
        if key == _OBJECT_GRAPH_KEY:
            try:
                TrackableObjectGraph().ParseFromString(value)
            except Exception as e:  # noqa: BLE001 - protobuf's DecodeError and others
                return Status(prefix, f"object graph is unreadable ({_short(e)})")
    if _OBJECT_GRAPH_KEY not in shapes:
        return Status(prefix, "no object graph (not a checkpoint of tf.train.Checkpoint)")
    step = int(reader.get_tensor(_STEP_KEY)) if _STEP_KEY in shapes else None
    return Status(prefix, None, step)


# ---------------------------------------------------------------------------
# Moving damaged files aside.


def move_aside(paths: list[str], folder: str) -> list[str]:
    """Moves files into <folder>/damaged/ (never over an earlier one); returns the new paths."""
    target = os.path.join(folder, DAMAGED_DIR)
    os.makedirs(target, exist_ok=True)
    moved = []
    for path in paths:
        if not os.path.exists(path):
            continue
        dest = os.path.join(target, os.path.basename(path))
        k = 1
        while os.path.exists(dest):
            dest = os.path.join(target, f"{os.path.basename(path)}.{k}")
            k += 1
        shutil.move(path, dest)
        moved.append(dest)
    return moved


def _write_state(folder: str, latest: str, kept: list[str], old: State) -> None:
    """Rewrites the state file so that CheckpointManager sees exactly `kept` (oldest first)."""
    from google.protobuf import text_format
    from tensorflow.python.training.checkpoint_state_pb2 import CheckpointState

    from enhancer_gan.io_utils import atomic_write_text

    times = dict(zip(old.names, old.timestamps))
    stamps = []
    for prefix in kept:
        name = os.path.basename(prefix)
        index = prefix + ".index"
        stamps.append(times.get(name) or (os.path.getmtime(index) if os.path.exists(index) else 0))
    preserved = old.last_preserved
    if preserved is None or old.problem or old.latest is None:
        preserved = min(stamps, default=time.time()) - 1.0
    proto = CheckpointState(
        model_checkpoint_path=os.path.basename(latest),
        all_model_checkpoint_paths=[os.path.basename(p) for p in kept],
        all_model_checkpoint_timestamps=stamps,
        last_preserved_timestamp=preserved,
    )
    atomic_write_text(os.path.join(folder, STATE_FILE), text_format.MessageToString(proto))


@dataclasses.dataclass(frozen=True)
class Resume:
    """What `prepare_resume` decided. prefix None: start from step 0."""

    prefix: str | None
    step: int | None
    notice: str  # one sentence about damage ('' when there was none)


def remove_interrupted_saves(folder: str) -> list[str]:
    """Removes the `<prefix>_temp` shard folders of saves that were interrupted.

    TensorFlow writes a checkpoint's shards into `<prefix>_temp/` and merges
    them into `<prefix>.index`/`.data-*`, deleting the folder, only when the
    save completes; a folder still there is a save that was killed half-way,
    never a checkpoint, and nothing can read it.
    """
    removed = []
    for path in sorted(glob.glob(os.path.join(glob.escape(folder), "*_temp"))):
        if os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def prepare_resume(folder: str, restart_if_damaged: bool = False) -> Resume:
    """Finds the newest checkpoint that reads whole and makes it the latest.

    Damaged checkpoints newer than it (and a damaged state file) are moved
    into <folder>/damaged/, untouched; the state file is rewritten to list
    the remaining checkpoints, so that CheckpointManager keeps counting
    max_to_keep from them. Nothing is moved when no checkpoint reads whole:
    that is a NoReadableCheckpointError, unless `restart_if_damaged`, which
    moves every damaged checkpoint aside and starts from step 0.
    """
    remove_interrupted_saves(folder)
    state = read_state(folder)
    tried: list[Status] = []
    chosen: Status | None = None
    for prefix in candidates(folder, state):
        status = verify(prefix)
        if status.whole:
            chosen = status
            break
        tried.append(status)
    damaged_state = state.problem is not None or (
        state.latest is None and bool(tried or chosen) and os.path.exists(folder)
    )
    if not tried and not damaged_state:
        # Nothing wrong: the state file's latest is whole (or there is none).
        return Resume(chosen.prefix if chosen else None, chosen.step if chosen else None, "")

    found = "; ".join(f"{s.name}: {s.problem}" for s in tried)
    state_note = state.problem or (
        f"no state file {os.path.join(folder, STATE_FILE)}" if damaged_state else ""
    )
    if chosen is None and tried and not restart_if_damaged:
        listed = "; ".join(x for x in (state_note, found) if x)
        raise NoReadableCheckpointError(
            f"{folder}: no checkpoint reads whole, tried newest first: {listed}. Nothing was "
            f"moved or deleted. Copy the run's checkpoints again, or pass --restart_if_damaged "
            f"to move the damaged files into {os.path.join(folder, DAMAGED_DIR)} and start "
            "again from step 0."
        )
    moved = []
    for status in tried:
        moved += move_aside(files_of(status.prefix), folder)
    state_path = os.path.join(folder, STATE_FILE)
    if state.problem is not None or (chosen is None and os.path.exists(state_path)):
        moved += move_aside([state_path], folder)
    if chosen is not None:
        limit = number_of(chosen.prefix)
        kept = [p for p in reversed(candidates(folder, state)) if number_of(p) <= limit]
        _write_state(
            folder, chosen.prefix, [p for p in kept if os.path.exists(p + ".index")], state
        )
    parts = []
    if tried:
        parts.append(f"damaged checkpoint{'s' if len(tried) > 1 else ''}: {found}")
    if state_note:
        parts.append(state_note + ("; rebuilt it from the checkpoint files" if chosen else ""))
    if moved:
        names = ", ".join(os.path.basename(m) for m in moved)
        parts.append(f"moved {names} into {os.path.join(folder, DAMAGED_DIR)}")
    if chosen is None:
        parts.append("starting again from step 0" + (" (--restart_if_damaged)" if tried else ""))
    return Resume(
        chosen.prefix if chosen else None, chosen.step if chosen else None, "; ".join(parts)
    )


# ---------------------------------------------------------------------------
# Tools: the latest or a named checkpoint, verified, never a silent fall-back.


def readable(folder: str, exclude: str = "") -> list[str]:
    """Every checkpoint in `folder` that reads whole, newest first."""
    out = []
    for prefix in sorted(
        set(on_disk(folder)) | set(candidates(folder)), key=number_of, reverse=True
    ):
        if os.path.normpath(prefix) != os.path.normpath(exclude) and verify(prefix).whole:
            out.append(prefix)
    return out


def _choices(names: list[str], folder: str) -> str:
    if not names:
        return f"no checkpoint in {folder} reads whole"
    listed = ", ".join(os.path.basename(p) for p in names)
    return f"readable checkpoints (select one with --checkpoint=): {listed}"


def select_checkpoint(folder: str, checkpoint: str = "", run_dir: str = "") -> str:
    """The latest checkpoint of `folder`, or the named one, checked to read whole.

    Raises:
      DamagedCheckpointError: the checkpoint (or the state file naming the
        latest) is damaged; the message names the file, the problem and the
        checkpoints that read whole.
      CheckpointError: there is no such checkpoint / none at all.
    """
    if checkpoint:
        prefix = checkpoint if os.path.dirname(checkpoint) else os.path.join(folder, checkpoint)
        folder = os.path.dirname(prefix)
        if not files_of(prefix):
            raise CheckpointError(
                f"{prefix}: no such checkpoint; {_choices(readable(folder), folder)}"
            )
    else:
        state = read_state(folder)
        state_path = os.path.join(folder, STATE_FILE)
        problem = state.problem
        if problem is None and state.latest is None and on_disk(folder):
            problem = f"state file {state_path} is missing"
        if problem:
            others = readable(folder)
            raise DamagedCheckpointError(
                f"{problem}; it names the latest checkpoint (resuming the training rebuilds "
                f"it); {_choices(others, folder)}",
                state_path,
                problem,
                others,
            )
        if state.latest is None:
            raise CheckpointError(
                f"{run_dir or folder}: no checkpoint in {folder}; has the run saved one yet?"
            )
        prefix = os.path.join(folder, state.latest)
    status = verify(prefix)
    if not status.whole:
        others = readable(folder, exclude=prefix)
        raise DamagedCheckpointError(
            f"{prefix}: damaged: {status.problem}; {_choices(others, folder)}",
            prefix,
            status.problem,
            others,
        )
    return prefix
