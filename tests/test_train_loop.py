"""The training loop end to end at toy size: outputs, resume, refusals, faults."""

import dataclasses
import glob
import os
import signal

import numpy as np
import pytest
import tensorflow as tf

from enhancer_gan.config import ExperimentConfig
from enhancer_gan.errors import ConfigError
from enhancer_gan.training import losses
from enhancer_gan.training.export import export_generator
from enhancer_gan.training.loop import NonFiniteLossError, train
from enhancer_gan.training.runs import load_run
from tests.helpers import tiny_experiment, tiny_source, tiny_train_config


@pytest.fixture
def source(tmp_path):
    src, _ = tiny_source(str(tmp_path / "views"), n=6, res=32, views=2)
    return src


def _train(config, source, **kw):
    return train(config, source=source, progress=False, log=lambda *_: None, **kw)


def _ckpt_steps(run_dir):
    return sorted(
        int(p.split("-")[-1].split(".")[0])
        for p in glob.glob(os.path.join(run_dir, "checkpoints", "ckpt-*.index"))
    )


def test_run_writes_checkpoint_events_samples_and_config(tmp_path, source):
    run_dir = str(tmp_path / "run")
    config = tiny_experiment(run_dir)
    result = _train(config, source)
    assert result.step == 3 and not result.interrupted
    assert all(np.isfinite(v) for v in result.metrics.values())
    assert _ckpt_steps(run_dir) == [2, 3]
    assert glob.glob(os.path.join(run_dir, "train", "events.out.tfevents.*"))
    assert os.path.exists(os.path.join(run_dir, "samples", "step_00000003.png"))
    assert ExperimentConfig.load(os.path.join(run_dir, "config.json")) == config
    # The summaries hold every network's loss.
    tags = set()
    for path in glob.glob(os.path.join(run_dir, "train", "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            tags.update(v.tag for v in event.summary.value)
    for tag in (
        "loss/voxel_discriminator",
        "loss/enhancer_generator",
        "voxel/d_real",
        "samples/voxels",
        "samples/enhancer_images",
    ):
        assert tag in tags, sorted(tags)


def test_resume_continues_where_it_stopped_and_matches(tmp_path, source):
    tf.config.experimental.enable_op_determinism()
    straight = str(tmp_path / "straight")
    _train(tiny_experiment(straight, train=tiny_train_config(num_steps=4)), source)
    resumed = str(tmp_path / "resumed")
    first = _train(tiny_experiment(resumed, train=tiny_train_config(num_steps=2)), source)
    assert first.step == 2
    second = _train(tiny_experiment(resumed, train=tiny_train_config(num_steps=4)), source)
    assert second.step == 4
    a, b = load_run(straight), load_run(resumed)
    assert a.step == b.step == 4
    for x, y in zip(a.networks.voxel_discriminator.weights, b.networks.voxel_discriminator.weights):
        np.testing.assert_allclose(x.numpy(), y.numpy(), rtol=1e-4, atol=1e-6)


def test_incompatible_restart_is_refused_naming_the_setting(tmp_path, source):
    run_dir = str(tmp_path / "run")
    config = tiny_experiment(run_dir, train=tiny_train_config(num_steps=1))
    _train(config, source)
    other = dataclasses.replace(config, train=dataclasses.replace(config.train, learning_rate=1e-3))
    with pytest.raises(ConfigError, match=r"train\.learning_rate: 0\.0002 -> 0\.001"):
        _train(other, source)
    assert _ckpt_steps(run_dir) == [1]


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path, source, monkeypatch):
    real = losses.generator_loss

    def poisoned(logits, kind="non_saturating"):
        # NaN from the 4th D step on (the step counter is read in-graph).
        return real(logits, kind) * tf.where(poisoned.step >= 3, np.nan, 1.0)

    run_dir = str(tmp_path / "run")
    config = tiny_experiment(run_dir, train=tiny_train_config(num_steps=6, checkpoint_every=2))
    from enhancer_gan.training import trainer as trainer_module

    original_init = trainer_module.GanTrainer.__init__

    def init(self, *a, **kw):
        original_init(self, *a, **kw)
        poisoned.step = self.step

    monkeypatch.setattr(trainer_module.GanTrainer, "__init__", init)
    monkeypatch.setattr(losses, "generator_loss", poisoned)
    with pytest.raises(NonFiniteLossError, match="non-finite.*ckpt-2"):
        _train(config, source)
    assert _ckpt_steps(run_dir) == [2]
    run = load_run(run_dir)
    assert run.step == 2
    assert all(np.isfinite(w.numpy()).all() for w in run.networks.voxel_generator.weights)


def test_sigint_saves_a_checkpoint_and_returns(tmp_path, source, monkeypatch):
    from enhancer_gan.training import trainer as trainer_module

    calls = {"n": 0}

    run_dir = str(tmp_path / "run")
    config = tiny_experiment(run_dir, train=tiny_train_config(num_steps=50, checkpoint_every=50))
    original_init = trainer_module.GanTrainer.__init__

    def init(self, *a, **kw):
        original_init(self, *a, **kw)
        inner = self.train_step

        def wrapped(batch):
            out = inner(batch)
            calls["n"] += 1
            if calls["n"] == 2:
                os.kill(os.getpid(), signal.SIGINT)
            return out

        self.train_step = wrapped

    monkeypatch.setattr(trainer_module.GanTrainer, "__init__", init)
    messages = []
    result = train(config, source=source, progress=False, log=messages.append)
    assert result.interrupted and result.step == 2
    assert _ckpt_steps(run_dir) == [2]
    assert any("Resume with the same command" in m for m in messages)


def test_mixed_precision_policy_is_restored_when_train_returns_or_raises(
    tmp_path, source, monkeypatch
):
    from enhancer_gan.training import loop

    policy = tf.keras.mixed_precision.global_policy
    before = policy().name
    assert before == "float32"
    seen = []
    build = loop._build_trainer

    def spy(*a, **kw):
        seen.append(policy().name)
        return build(*a, **kw)

    monkeypatch.setattr(loop, "_build_trainer", spy)
    mixed = tiny_train_config(num_steps=1, mixed_precision=True)
    result = _train(tiny_experiment(str(tmp_path / "run"), train=mixed), source)
    assert result.step == 1 and seen == ["mixed_float16"]
    assert policy().name == before

    def broken(*a, **kw):
        seen.append(policy().name)
        raise RuntimeError("no trainer today")

    monkeypatch.setattr(loop, "_build_trainer", broken)
    with pytest.raises(RuntimeError, match="no trainer today"):
        _train(tiny_experiment(str(tmp_path / "other"), train=mixed), source)
    assert seen[-1] == "mixed_float16" and policy().name == before
    # A float32 run leaves a policy set by the caller alone.
    tf.keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        monkeypatch.setattr(loop, "_build_trainer", spy)
        _train(
            tiny_experiment(str(tmp_path / "plain"), train=tiny_train_config(num_steps=1)), source
        )
        assert policy().name == "mixed_bfloat16"
    finally:
        tf.keras.mixed_precision.set_global_policy(before)


@pytest.fixture
def library_records():
    """The records of the `enhancer_gan` loggers, INFO and up, whatever was set before.

    (A script run in this process, tests/test_tables.py's, shows that logger
    on stdout and stops it propagating; that is set aside for the test.)
    """
    import logging

    class Collect(logging.Handler):
        def emit(self, record):
            records.append(record)

    records = []
    logger = logging.getLogger("enhancer_gan")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    logger.handlers[:] = [Collect(logging.INFO)]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield records
    finally:
        logger.handlers[:] = saved[0]
        logger.setLevel(saved[1])
        logger.propagate = saved[2]


def test_messages_go_to_the_logger_and_the_progress_bar_to_stderr(
    tmp_path, source, library_records, capsys
):
    run_dir = str(tmp_path / "run")
    train(tiny_experiment(run_dir, train=tiny_train_config(num_steps=1)), source=source)
    capsys.readouterr()
    del library_records[:]
    result = train(tiny_experiment(run_dir, train=tiny_train_config(num_steps=2)), source=source)
    out, err = capsys.readouterr()
    assert result.step == 2
    (record,) = [r for r in library_records if r.getMessage().startswith("Resumed")]
    assert record.name == "enhancer_gan.training.loop" and record.levelname == "INFO"
    assert record.getMessage() == (
        f"Resumed {run_dir} from {os.path.join(run_dir, 'checkpoints', 'ckpt-1')} at step 1."
    )
    assert out == ""  # neither the message nor the bar is printed on stdout
    assert "2/2" in err


def test_export_loads_without_the_package_and_matches(tmp_path, source):
    run_dir = str(tmp_path / "run")
    _train(tiny_experiment(run_dir, train=tiny_train_config(num_steps=1)), source)
    run = load_run(run_dir)
    path = export_generator(run.networks, str(tmp_path / "export"))
    z = tf.random.stateless_uniform([2, 100], seed=[1, 2], minval=-1, maxval=1)
    want = run.networks.voxel_generator(
        run.networks.enhancer_generator.features(z), training=False
    ).numpy()[..., 0]
    loaded = tf.saved_model.load(path)
    got = loaded.generate(z).numpy()
    assert got.shape == (2, 32, 32, 32)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # Only the generation path is saved: GE's image head is not in the export.
    names = {n for n, _ in tf.train.list_variables(os.path.join(path, "variables", "variables"))}
    assert any("voxel_generator" in n for n in names), names
    assert not any("to_image" in n for n in names), names
    with pytest.raises(FileExistsError):
        export_generator(run.networks, path)
