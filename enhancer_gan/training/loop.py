"""The training loop: run folder, resume, summaries, samples, checkpoints.

`train(config)` is what `experiments/train.py` calls. A run folder holds:

  config.json      the resolved ExperimentConfig (checked on resume)
  checkpoints/     tf.train.CheckpointManager: step, networks, optimisers
  train/           TensorBoard events (scalars, GE images, voxel renders)
  samples/         PNG sheets of generated shapes, one per sample_every steps
  cache/           decoded voxel grids and rendered views of the data set

Killing the process at any moment loses at most the steps since the last
checkpoint: checkpoints are written by TensorFlow to temporary names and
committed by renaming the `checkpoint` index, and the data order is a pure
function of the step (see `data.pipeline`). SIGINT and SIGTERM save a
checkpoint and return cleanly.

Each checkpoint gets a checksum file (`ckpt-N.sha256.json`) after it is
committed. On resume the latest checkpoint is read whole first
(`training.checkpoints`); a damaged one (cut short, missing files, changed
bytes, a damaged state file) is moved into `checkpoints/damaged/` and the run
resumes from the newest checkpoint that reads whole, with one log line
saying so. When none reads whole the run stops with a
NoReadableCheckpointError, unless `restart_if_damaged`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable

import numpy as np
import tensorflow as tf

from enhancer_gan.config import ExperimentConfig, incompatible_fields
from enhancer_gan.errors import ConfigError, EnhancerGanError, tensorflow_reason
from enhancer_gan.io_utils import atomic_write_text
from enhancer_gan.training import checkpoints as ckpt_files

logger = logging.getLogger(__name__)

# A rough floor of free space needed to start: a few checkpoints of the
# full-size model (about 100 M parameters x 3 Adam slots x 4 bytes ~ 1.2 GB).
_BYTES_PER_PARAMETER_ON_DISK = 12


class NonFiniteLossError(EnhancerGanError):
    """A loss became NaN or infinite; the run stopped before saving it."""


class RunDirError(EnhancerGanError):
    """The run folder cannot be used (not writable, full, incompatible)."""


@dataclasses.dataclass
class TrainResult:
    step: int
    interrupted: bool
    metrics: dict[str, float]
    checkpoint_path: str | None
    seconds: float


def _check_run_dir(run_dir: str, config: ExperimentConfig) -> bool:
    """Prepares `run_dir`; returns True when it already holds this run.

    Raises RunDirError/ConfigError before anything is written when the
    folder is not writable or holds a run with an incompatible config.
    """
    if not run_dir:
        raise ConfigError("run_dir must be set")
    try:
        os.makedirs(run_dir, exist_ok=True)
        probe = os.path.join(run_dir, ".write_probe")
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as e:
        raise RunDirError(f"{run_dir}: run folder is not writable: {e.strerror or e}") from None
    config_path = os.path.join(run_dir, "config.json")
    if not os.path.exists(config_path):
        return False
    old = ExperimentConfig.load(config_path)
    diffs = incompatible_fields(old, config)
    if diffs:
        raise ConfigError(
            f"{config_path}: this run folder holds a run with a different configuration; "
            f"refusing to resume it with: {'; '.join(diffs)}. Use another --run_dir, "
            "or the original settings."
        )
    return True


def _write_dir(strategy: tf.distribute.Strategy, run_dir: str) -> str:
    """The folder this process writes: run_dir, or a temporary one on a non-chief worker.

    Under MultiWorkerMirroredStrategy every worker runs this same loop (its
    checkpoint saves and metric reads are collective), but only the chief
    (`strategy.extended.should_checkpoint`) writes the run folder; the
    others write their checkpoints, summaries and samples into a temporary
    folder that is deleted at the end (TensorFlow's documented pattern).
    Every worker resumes from the chief's checkpoints, so the run folder must
    be on a file system that all of them see.
    """
    if strategy.extended.should_checkpoint:
        return run_dir
    resolver = strategy.cluster_resolver
    return tempfile.mkdtemp(prefix=f"enhancer_gan_{resolver.task_type}{resolver.task_id}_")


def _check_disk(run_dir: str, num_parameters: int) -> None:
    need = num_parameters * _BYTES_PER_PARAMETER_ON_DISK * 2
    free = shutil.disk_usage(run_dir).free
    if free < need:
        raise RunDirError(
            f"{run_dir}: only {free / 2**20:.0f} MiB free, a checkpoint of this model needs "
            f"about {need / 2**20:.0f} MiB; free some space or choose another --run_dir"
        )


@contextlib.contextmanager
def _stop_on_signals():
    """Turns SIGINT/SIGTERM into a flag the loop checks after each step."""
    state = {"signal": None}

    def handler(signum, frame):
        if state["signal"] is not None:  # second signal: give up at once
            raise KeyboardInterrupt
        state["signal"] = signum

    old = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            old[sig] = signal.signal(sig, handler)
        except ValueError:  # not the main thread: leave signals alone
            pass
    try:
        yield state
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)


def _sample_noise(config: ExperimentConfig) -> tf.Tensor:
    """A fixed z for sample sheets, the same at every step and on resume."""
    return tf.random.stateless_uniform(
        [config.train.num_samples, config.model.latent_dim],
        seed=[config.train.seed, 0x5A3F],
        minval=-1.0,
        maxval=1.0,
    )


def write_samples(trainer, z, step: int, run_dir: str, writer, networks=None) -> str:
    """Renders generated shapes (and GE's images) to TensorBoard and a PNG sheet.

    The shapes come from `networks` in inference mode when given (the
    session's copy holding the generators' average, batch norm re-estimated:
    what tools sample), else from the trainer's networks with batch
    statistics, as the discriminator saw them (`generation.batch_samples`;
    moving statistics untouched). Their speckle measures (`evaluation.shape_stats`) go to TensorBoard as
    samples/components, samples/many_pieces_fraction, ...
    """
    from enhancer_gan.evaluation import shape_stats
    from enhancer_gan.generation import batch_samples
    from enhancer_gan.models import generate_voxels
    from enhancer_gan.voxels import mesh, sheet

    if networks is None:
        voxels, outputs = batch_samples(trainer.networks, z)
    else:
        voxels, outputs = generate_voxels(networks, z, training=False)
    grids = voxels.numpy()[..., 0] > 0.5
    picture = sheet.sheet_image(list(grids), ncols=min(8, len(grids)))
    path = os.path.join(run_dir, "samples", f"step_{step:08d}.png")
    sheet.save_sheet(path, list(grids), ncols=min(8, len(grids)))
    with writer.as_default(step=step):
        tf.summary.image("samples/voxels", picture[None], max_outputs=1)
        for name, value in shape_stats.summarize(voxels.numpy()).items():
            tf.summary.scalar(f"samples/{name}", value)
        tf.summary.histogram("samples/voxel_values", voxels)
        mesh.mesh_summary("samples/meshes", grids)
        if outputs is not None:
            images = sheet.image_grid(outputs["image"].numpy(), ncols=min(8, len(grids)))
            tf.summary.image("samples/enhancer_images", images[None], max_outputs=1)
    return path


def _check_finite(metrics: dict[str, float], step: int, manager) -> None:
    bad = [k for k, v in metrics.items() if not math.isfinite(v)]
    if bad:
        last = manager.latest_checkpoint
        keep = f"the last good checkpoint is {last}" if last else "no checkpoint was saved yet"
        raise NonFiniteLossError(
            f"non-finite training values at or before step {step}: {', '.join(bad)}. "
            f"Training stopped without saving them; {keep}. Try a lower learning rate "
            "or turning off mixed precision."
        )


def _save_checkpoint(manager, step: int, run_dir: str) -> str:
    """manager.save(step); a failed write (full disk, lost folder) is a RunDirError.

    TensorFlow commits a checkpoint by rewriting the `checkpoint` index after
    the data, so after a failed write the previous checkpoint is still the
    latest. This one's partial files are removed, so that nothing
    half-written is left looking like a checkpoint.
    """
    prefix = os.path.join(manager.directory, f"ckpt-{step}")
    try:
        # A checksum file left from an earlier checkpoint of this number (moved
        # aside as damaged, or never committed) must not describe the new one.
        if os.path.exists(ckpt_files.checksum_path(prefix)):
            os.remove(ckpt_files.checksum_path(prefix))
        path = manager.save(checkpoint_number=step)
        ckpt_files.write_checksums(path)
        ckpt_files.remove_stale_checksums(manager.directory)
        return path
    except (OSError, tf.errors.OpError) as e:
        last = manager.latest_checkpoint
        if last != prefix:
            for path in tf.io.gfile.glob(prefix + ".*") + tf.io.gfile.glob(prefix + "_temp*"):
                with contextlib.suppress(OSError, tf.errors.OpError):
                    if tf.io.gfile.isdir(path):
                        tf.io.gfile.rmtree(path)
                    else:
                        tf.io.gfile.remove(path)
        reason = e.strerror if isinstance(e, OSError) and e.strerror else tensorflow_reason(e)
        keep = f"the last complete checkpoint is {last}" if last else "no checkpoint was saved yet"
        raise RunDirError(
            f"{run_dir}: cannot write the checkpoint of step {step}: {reason}; {keep}. "
            "Free some space (or fix the folder) and run the same command to resume."
        ) from None


@contextlib.contextmanager
def _precision_policy(mixed_precision: bool):
    """Keras's global mixed_float16 policy while training; the previous one after.

    Restored however the block ends (returned, raised, interrupted), so a
    caller that trains and then builds float32 models is not surprised.
    """
    if not mixed_precision:
        yield
        return
    previous = tf.keras.mixed_precision.global_policy()
    tf.keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        yield
    finally:
        tf.keras.mixed_precision.set_global_policy(previous)


def _check_batch_split(batch_size: int, strategy: tf.distribute.Strategy) -> None:
    replicas = strategy.num_replicas_in_sync
    if batch_size % replicas:
        raise ConfigError(
            f"batch_size {batch_size} is not divisible by the "
            f"{replicas} devices of the distribution strategy"
        )


def _find_resume(run_dir: str, write_dir: str, restart_if_damaged: bool) -> ckpt_files.Resume:
    """The checkpoint to resume from; damaged ones are set aside before the data is loaded."""
    checkpoint_dir = os.path.join(run_dir, "checkpoints")
    if write_dir == run_dir:
        return ckpt_files.prepare_resume(checkpoint_dir, restart_if_damaged=restart_if_damaged)
    # The chief checks (and moves) damaged files; the others only read.
    return ckpt_files.Resume(tf.train.latest_checkpoint(checkpoint_dir), None, "")


def _load_source(config: ExperimentConfig, progress: bool, log: Callable[[str], None]):
    from enhancer_gan.data.datasets import load_training_source

    return load_training_source(
        config.data,
        resolution=config.model.resolution,
        cache_dir=config.data.cache_dir or os.path.join(config.run_dir, "cache"),
        seed=config.train.seed,
        progress=progress,
        log=log,
        # Only the enhancer looks at views: no decoded-view cache without it.
        image_size=config.model.image_size if config.model.use_enhancer else None,
    )


def _build_trainer(config: ExperimentConfig, strategy: tf.distribute.Strategy, write_dir: str):
    """The seeded GanTrainer, its generators' average (or None) and the CheckpointManager.

    The average (`training.ema`, config.train.generator_ema > 0) is saved in
    the same checkpoint, so a resumed run continues it.
    """
    from enhancer_gan.training import ema
    from enhancer_gan.training.trainer import GanTrainer

    tf.keras.utils.set_random_seed(config.train.seed)
    average = None
    with strategy.scope():
        trainer = GanTrainer(config.model, config.train)
        if config.train.generator_ema:
            average = ema.GeneratorAverage(trainer.networks, config.train.generator_ema)
    num_parameters = sum(int(np.prod(v.shape)) for vs in trainer.variables_of.values() for v in vs)
    _check_disk(write_dir, num_parameters)
    extra = {ema.CHECKPOINT_NAME: average} if average is not None else {}
    manager = tf.train.CheckpointManager(
        trainer.checkpoint(**extra),
        os.path.join(write_dir, "checkpoints"),
        max_to_keep=config.train.max_checkpoints,
        checkpoint_name=ckpt_files.CHECKPOINT_NAME,
    )
    return trainer, average, manager


def _restore(trainer, manager, resume: ckpt_files.Resume, run_dir: str, resuming: bool, log):
    """Restores `resume.prefix` (if any) and says in one line where the run starts."""
    if resume.prefix:
        try:
            manager.checkpoint.restore(resume.prefix).assert_existing_objects_matched()
        except (AssertionError, ValueError, tf.errors.OpError) as e:
            reason = (
                tensorflow_reason(e)
                if isinstance(e, tf.errors.OpError)
                else (str(e).strip().splitlines() or [type(e).__name__])[0]
            )
            raise RunDirError(
                f"{resume.prefix}: the checkpoint reads whole but does not fit this model: "
                f"{reason[:300]}"
            ) from None
        line = f"Resumed {run_dir} from {resume.prefix} at step {int(trainer.step.numpy())}."
        if resume.notice:
            line = f"{line[:-1]} after checking the checkpoints: {resume.notice}."
        log(line)
    elif resume.notice:
        log(f"{run_dir}: {resume.notice}.")
    elif resuming:
        log(f"{run_dir}: config.json found but no checkpoint; starting from step 0.")


def _pair_dataset(source, config: ExperimentConfig, start: int) -> tf.data.Dataset:
    from enhancer_gan.data.pipeline import make_pair_dataset

    return make_pair_dataset(
        source,
        batch_size=config.train.batch_size,
        latent_dim=config.model.latent_dim,
        num_noise=1 + config.train.generator_steps_per_discriminator_step,
        seed=config.train.seed,
        image_size=config.model.image_size,
        start_step=start,
    )


@dataclasses.dataclass
class _Session:
    """What the steps of one `train` call write with."""

    config: ExperimentConfig
    trainer: object
    manager: tf.train.CheckpointManager
    write_dir: str  # run_dir, or a temporary folder on a non-chief worker
    writer: object  # the tf.summary file writer of <write_dir>/train
    sample_z: tf.Tensor
    average: object = None  # training.ema.GeneratorAverage, or None

    def __post_init__(self):
        self.update_average = tf.function(self.average.update) if self.average else None
        self._averaged = None

    def averaged_networks(self):
        """A copy of the networks holding the generators' average now, or None without one.

        Built once, outside the strategy (sampling is local); its batch norm is
        re-estimated on fresh z each time (`generation.recalibrate_batch_norm`).
        """
        if self.average is None:
            return None
        from enhancer_gan.generation import recalibrate_batch_norm
        from enhancer_gan.models import build_networks

        if self._averaged is None:
            self._averaged = build_networks(self.config.model)
        self.average.copy_to(self._averaged)
        recalibrate_batch_norm(self._averaged)
        return self._averaged

    def save(self, step: int) -> str:
        _check_finite(self.trainer.metric_results(), step, self.manager)
        return _save_checkpoint(self.manager, step, self.config.run_dir)


def _write_summaries(session: _Session, step: int, bar) -> dict[str, float]:
    """The metrics since the last summary: checked, written, reset, shown on the bar."""
    metrics = session.trainer.metric_results()
    _check_finite(metrics, step, session.manager)
    with session.writer.as_default(step=step):
        for name, value in metrics.items():
            tf.summary.scalar(name, value)
    session.trainer.reset_metrics()
    bar.set_postfix(
        d_vox=f"{metrics['loss/voxel_discriminator']:.3f}",
        g_vox=f"{metrics['loss/voxel_generator']:.3f}",
        occ=f"{metrics['voxel/fake_occupancy']:.3f}",
    )
    return metrics


def _after_step(session: _Session, step: int, bar) -> dict[str, float] | None:
    """The summaries, samples and checkpoint due after `step`; the metrics if summarised."""
    train_config = session.config.train
    total = train_config.num_steps
    metrics = None
    if step % train_config.summary_every == 0 or step == total:
        metrics = _write_summaries(session, step, bar)
    if step % train_config.sample_every == 0 or step == total:
        write_samples(
            session.trainer,
            session.sample_z,
            step,
            session.write_dir,
            session.writer,
            networks=session.averaged_networks(),
        )
    if step % train_config.checkpoint_every == 0 and step < total:
        session.save(step)
    return metrics


def _final_save(session: _Session, step: int, start: int) -> str:
    """The checkpoint of the last step (saved unless no step ran and one exists)."""
    latest = session.manager.latest_checkpoint
    return session.save(step) if step > start or not latest else latest


def _run_steps(session: _Session, dataset, start: int, progress: bool):
    """Steps start+1..num_steps (or until a signal), then the final save.

    Returns:
      (last step, the signal that stopped the loop or None, the last
      summarised metrics or {}, the final checkpoint's path).
    """
    from tqdm.auto import tqdm

    total = session.config.train.num_steps
    run_dir = session.config.run_dir
    metrics: dict[str, float] = {}
    stopped_by = None
    bar = tqdm(  # on stderr, beside the log lines on stdout
        total=total,
        initial=start,
        disable=not progress,
        unit="step",
        dynamic_ncols=True,
        desc=os.path.basename(os.path.normpath(run_dir)) or "train",
    )
    with _stop_on_signals() as stop, bar:
        iterator = iter(dataset)
        step = start
        while step < total:
            session.trainer.train_step(next(iterator))
            if session.update_average is not None:
                session.update_average()
            step += 1
            bar.update(1)
            metrics = _after_step(session, step, bar) or metrics
            if stop["signal"] is not None:
                stopped_by = stop["signal"]
                break
        session.writer.flush()
        path = _final_save(session, step, start)
    return step, stopped_by, metrics, path


def train(
    config: ExperimentConfig,
    *,
    strategy: tf.distribute.Strategy | None = None,
    source=None,
    progress: bool = True,
    log: Callable[[str], None] = logger.info,
    restart_if_damaged: bool = False,
) -> TrainResult:
    """Trains (or resumes) the run described by `config` until num_steps.

    Args:
      config: the resolved experiment configuration; config.run_dir is the run
        folder.
      strategy: a tf.distribute strategy (default: the current one).
      source: a data.pipeline.PairSource to train on instead of loading
        config.data (tests).
      progress: show a tqdm progress bar (on stderr).
      log: where one-line messages go (default: this module's logger, INFO).
      restart_if_damaged: when no checkpoint of the run reads whole, move them
        all into checkpoints/damaged/ and start from step 0 (default: stop
        with a NoReadableCheckpointError that lists what was tried).

    Keras's global precision policy is mixed_float16 during the call when
    config.train.mixed_precision, and what it was before afterwards.
    """
    t0 = time.time()
    run_dir = config.run_dir
    # Settings that cannot work are refused before the run folder is created.
    strategy = strategy or tf.distribute.get_strategy()
    _check_batch_split(config.train.batch_size, strategy)
    write_dir = _write_dir(strategy, run_dir)  # run_dir except on a non-chief worker
    resuming = _check_run_dir(write_dir, config)
    resume = _find_resume(run_dir, write_dir, restart_if_damaged)
    with _precision_policy(config.train.mixed_precision):
        if source is None:
            source = _load_source(config, progress, log)
        if source.resolution != config.model.resolution:
            raise ConfigError(
                f"data resolution {source.resolution} differs from model resolution "
                f"{config.model.resolution}"
            )
        trainer, average, manager = _build_trainer(config, strategy, write_dir)
        _restore(trainer, manager, resume, run_dir, resuming, log)
        atomic_write_text(os.path.join(write_dir, "config.json"), config.to_json())
        start = int(trainer.step.numpy())  # a MirroredVariable under a strategy
        dataset = strategy.experimental_distribute_dataset(_pair_dataset(source, config, start))
        session = _Session(
            config,
            trainer,
            manager,
            write_dir,
            writer=tf.summary.create_file_writer(os.path.join(write_dir, "train")),
            sample_z=_sample_noise(config),
            average=average,
        )
        step, stopped_by, metrics, path = _run_steps(session, dataset, start, progress)
        metrics = metrics or trainer.metric_results()
    if stopped_by is not None:
        log(
            f"Stopped by signal {stopped_by} at step {step}; checkpoint {path}. "
            f"Resume with the same command (same --run_dir={run_dir})."
        )
    if write_dir != run_dir:
        shutil.rmtree(write_dir, ignore_errors=True)
    return TrainResult(
        step=step,
        interrupted=stopped_by is not None,
        metrics=metrics,
        checkpoint_path=path,
        seconds=time.time() - t0,
    )
