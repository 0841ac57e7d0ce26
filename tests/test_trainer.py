"""The joint train step: update ratio, what each update changes, distribution."""

import math
import os
import pathlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from enhancer_gan.data.pipeline import make_pair_dataset
from enhancer_gan.training.trainer import GanTrainer
from tests.helpers import tiny_model_config, tiny_source, tiny_train_config

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _batch(tmp_path, batch_size=2, image_size=32, **kw):
    source, _ = tiny_source(str(tmp_path), n=4, res=32, views=2)
    return next(iter(make_pair_dataset(source, batch_size, image_size=image_size, **kw)))


def _snapshot(model):
    return [v.numpy().copy() for v in model.trainable_variables]


def _changed(before, model):
    return any(not np.array_equal(a, v.numpy()) for a, v in zip(before, model.trainable_variables))


@pytest.mark.parametrize("use_enhancer", [True, False])
def test_generators_step_twice_per_discriminator_step(tmp_path, use_enhancer):
    trainer = GanTrainer(tiny_model_config(use_enhancer=use_enhancer), tiny_train_config())
    batch = _batch(tmp_path)
    nets = trainer.networks
    before = {
        n: _snapshot(m) for n, m in [("gm", nets.voxel_generator), ("dm", nets.voxel_discriminator)]
    }
    for _ in range(3):
        out = trainer.train_step(batch)
    for d in trainer.discriminator_names:
        assert int(trainer.optimizers[d].iterations) == 3
    for g in trainer.generator_names:
        assert int(trainer.optimizers[g].iterations) == 2 * 3
    assert int(trainer.step) == 3
    assert all(np.isfinite(float(v)) for v in out.values())
    assert _changed(before["gm"], nets.voxel_generator)
    assert _changed(before["dm"], nets.voxel_discriminator)
    assert ("loss/enhancer_generator" in out) == use_enhancer


def test_generator_ratio_is_configurable(tmp_path):
    trainer = GanTrainer(
        tiny_model_config(), tiny_train_config(generator_steps_per_discriminator_step=3)
    )
    trainer.train_step(_batch(tmp_path, num_noise=4))
    assert int(trainer.optimizers["voxel_generator"].iterations) == 3
    assert int(trainer.optimizers["voxel_discriminator"].iterations) == 1


def _enhancer_layer_of(path: str, num_hidden: int) -> int:
    """GE's layer (1..num_hidden, num_hidden + 1 = the image head) a variable belongs to."""
    import re

    if "/to_image/" in path:
        return num_hidden + 1
    match = re.search(r"/(?:dense|deconv|bn)(\d+)/", path)
    assert match, f"unknown GE variable {path}"
    return int(match.group(1))


@pytest.mark.parametrize("layer", [1, 2, 3])
def test_voxel_loss_reaches_enhancer_generator(tmp_path, layer):
    """LM's gradient reaches every variable of GE's layers 1..i (paper eq. 4) and
    none of the layers after i nor the image head: GM is wired to layer i."""
    import tensorflow as tf

    from enhancer_gan.training import losses

    trainer = GanTrainer(tiny_model_config(enhancer_layer=layer), tiny_train_config())
    z = tf.random.uniform([2, 100], -1, 1, seed=1)
    ge = trainer.networks.enhancer_generator
    assert ge.num_hidden == 3  # 32^2 images: layers 1..3 all exist
    with tf.GradientTape() as tape:
        voxels, _ = trainer.generate(z, training=True)
        logits = trainer.networks.voxel_discriminator(voxels, training=True)["logits"]
        loss = tf.reduce_mean(losses.generator_loss(logits))
    grads = tape.gradient(loss, ge.trainable_variables)
    by_layer = {}
    for v, g in zip(ge.trainable_variables, grads):
        by_layer.setdefault(_enhancer_layer_of(v.path, ge.num_hidden), []).append((v.path, g))
    assert sorted(by_layer) == [1, 2, 3, 4]
    for k, variables in by_layer.items():
        for path, g in variables:
            if k <= layer:
                assert g is not None and float(tf.reduce_max(tf.abs(g))) > 0, path
            else:
                assert g is None or float(tf.reduce_max(tf.abs(g))) == 0.0, path


@pytest.mark.parametrize("kind", ["minimax", "non_saturating"])
def test_generator_losses_against_a_numeric_reference(kind):
    """Each generator loss, and its slope, against float64 formulas in D = sigmoid(l):
    minimax log(1 - D), non-saturating -log D. A wrong sign or formula fails."""
    import tensorflow as tf

    from enhancer_gan.training import losses

    logits = np.array([-30.0, -4.0, -0.5, 0.0, 0.7, 4.0, 30.0], np.float32)
    d = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
    one_minus_d = 1.0 / (1.0 + np.exp(logits.astype(np.float64)))  # exact near D = 1
    if kind == "minimax":
        reference, slope = np.log(one_minus_d), -d  # d/dl log(1 - D) = -D
    else:
        reference, slope = -np.log(d), -(1.0 - d)  # d/dl -log D = -(1 - D)
    x = tf.constant(logits[:, None])
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = losses.generator_loss(x, kind)
    np.testing.assert_allclose(loss.numpy(), reference, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(tape.gradient(loss, x).numpy()[:, 0], slope, rtol=1e-5, atol=1e-6)
    # log(0.5) at l = 0, by hand.
    assert loss.numpy()[3] == pytest.approx(-np.log(2.0) if kind == "minimax" else np.log(2.0))


def test_trainer_uses_the_configured_generator_loss(tmp_path):
    """The trainer's voxel generator loss is log(1 - D) (< 0) with 'minimax'
    and -log D (> 0) with the default."""
    for kind, sign in (("minimax", -1), ("non_saturating", 1)):
        trainer = GanTrainer(tiny_model_config(), tiny_train_config(generator_loss=kind))
        out = trainer.train_step(_batch(tmp_path / kind))
        assert np.sign(float(out["loss/voxel_generator"])) == sign, kind


def test_two_device_step_matches_one_device_step(tmp_path):
    """MirroredStrategy on 2 logical CPUs == default strategy, same global batch."""
    script = textwrap.dedent(
        f"""
        import sys, numpy as np, tensorflow as tf
        sys.path.insert(0, {str(ROOT)!r})
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from enhancer_gan.data.pipeline import make_pair_dataset
        from enhancer_gan.training.trainer import GanTrainer
        from tests.helpers import tiny_model_config, tiny_source, tiny_train_config
        source, _ = tiny_source({str(tmp_path)!r}, n=4, res=32, views=2)
        results = []
        for strategy in (tf.distribute.get_strategy(),
                         tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])):
            tf.keras.utils.set_random_seed(0)
            with strategy.scope():
                trainer = GanTrainer(tiny_model_config(), tiny_train_config(batch_size=4))
            ds = make_pair_dataset(source, 4, image_size=32, seed=0)
            it = iter(strategy.experimental_distribute_dataset(ds))
            for _ in range(2):
                out = trainer.train_step(next(it))
            results.append(([float(out[k]) for k in sorted(out)],
                            [v.numpy() for v in trainer.networks.voxel_discriminator.weights]))
            print(strategy.num_replicas_in_sync, results[-1][0])
        (l1, w1), (l2, w2) = results
        np.testing.assert_allclose(l1, l2, rtol=2e-4, atol=2e-5)
        for a, b in zip(w1, w2):
            np.testing.assert_allclose(a, b, rtol=2e-3, atol=2e-5)
        print("MATCH")
        """
    )
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(ROOT),
        timeout=300,
    )
    assert "MATCH" in proc.stdout, proc.stdout[-3000:] + proc.stderr[-3000:]


def test_mixed_precision_step_is_finite(tmp_path):
    """Under mixed_float16 every optimiser scales its loss: a normal step is finite,
    and with a loss scale far too large the float16 backward pass overflows, so
    every update is skipped and every scale halved. Without loss scaling (plain
    Adam, or the unscaled loss differentiated) this fails."""
    import keras

    try:
        keras.mixed_precision.set_global_policy("mixed_float16")
        trainer = GanTrainer(tiny_model_config(), tiny_train_config(mixed_precision=True))
        batch = _batch(tmp_path)
        out = trainer.train_step(batch)
        assert trainer.networks.voxel_generator.compute_dtype == "float16"
        assert all(np.isfinite(float(v)) for v in out.values())
        for opt in trainer.optimizers.values():
            assert isinstance(opt, keras.optimizers.LossScaleOptimizer)
        # Two generator updates were attempted: each either stepped the inner
        # Adam or (float16 overflow) was skipped and halved the loss scale.
        opt = trainer.optimizers["voxel_generator"]
        skipped = round(math.log2(opt.initial_scale / float(opt.dynamic_scale.numpy())))
        assert int(opt.iterations) + skipped == 2, (int(opt.iterations), skipped)

        huge = 1e30  # float32 holds the scaled loss; float16 (max 65504) gradients cannot
        for opt in trainer.optimizers.values():
            opt.dynamic_scale.assign(huge)
        iterations = {n: int(o.iterations) for n, o in trainer.optimizers.items()}
        before = {n: _snapshot(getattr(trainer.networks, n)) for n in trainer.optimizers}
        trainer.train_step(batch)
        for name, opt in trainer.optimizers.items():
            assert int(opt.iterations) == iterations[name], name
            assert not _changed(before[name], getattr(trainer.networks, name)), name
            updates = 2 if name in trainer.generator_names else 1
            assert opt.dynamic_scale.numpy() == np.float32(huge / 2**updates), name
    finally:
        keras.mixed_precision.set_global_policy("float32")


# The checkpoint keys of a tiny run, written down from the code before the train step
# was split into its parts (issue 20): a checkpoint saved before must restore after.
_BN = ("beta", "gamma", "moving_mean", "moving_variance")
_CHECKPOINT_LAYERS = {
    "enhancer_generator": {
        "bn1": _BN,
        "bn2": _BN,
        "bn3": _BN,
        "dense1": ("_kernel",),
        "deconv2": ("kernel",),
        "deconv3": ("kernel",),
        "to_image": ("bias", "kernel"),
    },
    "enhancer_discriminator": {
        "bn2": _BN,
        "bn3": _BN,
        "bn4": _BN,
        "conv1": ("_kernel", "bias"),
        "conv2": ("_kernel",),
        "conv3": ("_kernel",),
        "conv4": ("_kernel",),
        "logits": ("_kernel", "bias"),
    },
    "voxel_generator": {
        "bn1": _BN,
        "bn2": _BN,
        "deconv1": ("kernel",),
        "deconv2": ("kernel",),
        "to_voxels": ("bias", "kernel"),
    },
    "voxel_discriminator": {
        "bn_conv4_512": _BN,
        "bn_conv8_256": _BN,
        "conv16_128": ("_kernel", "bias"),
        "conv4_512": ("_kernel",),
        "conv8_256": ("_kernel",),
        "logits": ("_kernel", "bias"),
    },
    "latent_projector": {"bn": _BN, "dense": ("_kernel",)},
}
# Adam's slots (m and v of each trainable variable), per optimiser.
_CHECKPOINT_SLOTS = {
    True: {
        "enhancer_generator": 22,
        "enhancer_discriminator": 26,
        "voxel_generator": 16,
        "voxel_discriminator": 20,
    },
    False: {"voxel_generator": 22, "voxel_discriminator": 20},
}


def _expected_checkpoint_keys(use_enhancer: bool, mixed_precision: bool) -> list[str]:
    value = "/.ATTRIBUTES/VARIABLE_VALUE"
    keys = ["_CHECKPOINTABLE_OBJECT_GRAPH", "save_counter" + value, "step" + value]
    nets = ["voxel_generator", "voxel_discriminator"]
    nets += (
        ["enhancer_generator", "enhancer_discriminator"] if use_enhancer else ["latent_projector"]
    )
    for net in nets:
        for layer, names in _CHECKPOINT_LAYERS[net].items():
            keys += [f"{net}/{layer}/{name}{value}" for name in names]
    for net, slots in _CHECKPOINT_SLOTS[use_enhancer].items():
        prefix = f"{net}_optimizer/"
        keys += [f"{prefix}_iterations{value}", f"{prefix}_learning_rate{value}"]
        if mixed_precision:  # LossScaleOptimizer around the Adam
            keys += [f"{prefix}dynamic_scale{value}", f"{prefix}step_counter{value}"]
            prefix += "inner_optimizer/"
            keys += [f"{prefix}_iterations{value}", f"{prefix}_learning_rate{value}"]
        keys += [f"{prefix}_variables/{k}{value}" for k in range(2, 2 + slots)]
    return sorted(keys)


@pytest.mark.parametrize(
    "use_enhancer, mixed_precision", [(True, False), (False, False), (True, True)]
)
def test_checkpoint_keys_are_the_ones_written_before(tmp_path, use_enhancer, mixed_precision):
    """Every key of a saved checkpoint, against the list above (same names, same
    optimiser slots), and `runs.network_parts` restores the networks of it."""
    import keras
    import tensorflow as tf

    from enhancer_gan.models import build_networks
    from enhancer_gan.training.runs import network_parts

    policy = "mixed_float16" if mixed_precision else "float32"
    try:
        keras.mixed_precision.set_global_policy(policy)
        model_config = tiny_model_config(use_enhancer=use_enhancer)
        trainer = GanTrainer(model_config, tiny_train_config(mixed_precision=mixed_precision))
        path = trainer.checkpoint().save(str(tmp_path / "ckpt"))
        keys = sorted(name for name, _ in tf.train.list_variables(path))
        assert keys == _expected_checkpoint_keys(use_enhancer, mixed_precision)
        networks = build_networks(model_config)
        step = tf.Variable(0, dtype=tf.int64)
        restore = tf.train.Checkpoint(step=step, **network_parts(networks)).restore(path)
        restore.expect_partial().assert_existing_objects_matched()
    finally:
        keras.mixed_precision.set_global_policy("float32")
