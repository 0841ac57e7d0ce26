"""Adam whose update is TensorFlow's fused `ResourceApplyAdam` kernel.

Keras 3's Adam updates each variable with a dozen element-wise passes over
it (g - m, times (1 - beta1), assign_add, g^2, ..., sqrt, divide,
assign_sub). GE and GM together hold 84M parameters at full width and are
updated twice a step, so those passes stood out in the step's op profile
(benchmarks/RESULTS.md). `ResourceApplyAdam` does the same update in one
pass:

  alpha = lr * sqrt(1 - beta2^t) / (1 - beta1^t)
  m += (g - m) (1 - beta1);  v += (g^2 - v) (1 - beta2)
  w -= alpha m / (sqrt(v) + epsilon)

which is Keras's formula term for term (epsilon outside the square root).
The slots (m, v) and the iteration counter are Keras's own variables, so
checkpoints are the same either way; `tests/test_adam.py` checks that both
give the same weights. The fused kernel is used on one replica, for dense
float32 gradients without amsgrad; anything else takes Keras's own update.
"""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="enhancer_gan")
class FusedAdam(keras.optimizers.Adam):
    """`keras.optimizers.Adam` with a one-kernel update on TensorFlow."""

    def _fused_ok(self, gradient, variable) -> bool:
        import tensorflow as tf

        return (
            keras.backend.backend() == "tensorflow"
            and not self.amsgrad
            and not isinstance(gradient, tf.IndexedSlices)
            and variable.dtype == "float32"
            and tf.distribute.get_strategy().num_replicas_in_sync == 1
        )

    def update_step(self, gradient, variable, learning_rate):
        if not self._fused_ok(gradient, variable):
            return super().update_step(gradient, variable, learning_rate)
        import tensorflow as tf

        dtype = variable.dtype
        local_step = tf.cast(self.iterations + 1, dtype)
        beta_1 = tf.cast(self.beta_1, dtype)
        beta_2 = tf.cast(self.beta_2, dtype)
        index = self._get_variable_index(variable)
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle,
            m=self._momentums[index].handle,
            v=self._velocities[index].handle,
            beta1_power=tf.pow(beta_1, local_step),
            beta2_power=tf.pow(beta_2, local_step),
            lr=tf.cast(learning_rate, dtype),
            beta1=beta_1,
            beta2=beta_2,
            epsilon=tf.cast(self.epsilon, dtype),
            grad=tf.cast(gradient, dtype),
            use_locking=False,
        )
