"""FusedAdam updates exactly as Keras's Adam and shares its checkpoints."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from enhancer_gan.training.adam import FusedAdam

SHAPES = [(7,), (3, 5), (4, 4, 2, 3)]


def _variables(seed):
    rng = np.random.default_rng(seed)
    return [keras.Variable(rng.normal(size=s).astype("float32")) for s in SHAPES]


def _grads(step):
    rng = np.random.default_rng(100 + step)
    return [tf.constant(rng.normal(size=s), tf.float32) for s in SHAPES]


def _run(opt, variables, steps, first=0):
    @tf.function
    def apply(grads):
        opt.apply_gradients(zip(grads, variables))

    for k in range(first, first + steps):
        apply(_grads(k))
    ops = {op.type for op in apply.get_concrete_function(_grads(0)).graph.get_operations()}
    assert ("ResourceApplyAdam" in ops) == isinstance(opt, FusedAdam), sorted(ops)
    return [v.numpy() for v in variables]


def test_fused_adam_matches_keras_adam_step_for_step():
    kwargs = dict(learning_rate=0.01, beta_1=0.5)
    want = _run(keras.optimizers.Adam(**kwargs), _variables(0), 5)
    fused = FusedAdam(**kwargs)
    got = _run(fused, _variables(0), 5)
    start = [v for v in _variables(0)]
    for a, b, s in zip(got, want, start):
        assert np.abs(a - s.numpy()).max() > 1e-3  # it did move
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert int(fused.iterations.numpy()) == 5


def test_a_keras_adam_checkpoint_resumes_in_fused_adam(tmp_path):
    kwargs = dict(learning_rate=0.01, beta_1=0.5)
    keras_opt, keras_vars = keras.optimizers.Adam(**kwargs), _variables(1)
    _run(keras_opt, keras_vars, 3)
    path = tf.train.Checkpoint(opt=keras_opt, v=keras_vars).write(str(tmp_path / "ckpt"))
    want = _run(keras_opt, keras_vars, 2, first=3)

    fused, fused_vars = FusedAdam(**kwargs), _variables(2)  # other starting weights
    fused.build(fused_vars)
    tf.train.Checkpoint(opt=fused, v=fused_vars).read(path).assert_existing_objects_matched()
    assert int(fused.iterations.numpy()) == 3
    got = _run(fused, fused_vars, 2, first=3)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
