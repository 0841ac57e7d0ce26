"""Stride-2 convolutions rewritten for the shapes oneDNN runs slowly on CPU.

The step's profile (benchmarks/RESULTS.md) names three kinds of layer that
run far below the rest on CPU: transposed convolutions of small inputs
(GE's 4x4x2048 -> 8x8x1024, kernel 5, was the most expensive op of the
whole step; GM's 4^3 input), GM's last transposed convolution (one output
channel) and DM's first convolution (one input channel).
Each is a stride-2 'same' convolution with an exact twin over the same
kernel variable:

- `conv_transpose_matmul`: a stride-2 transposed convolution is one matmul
  of every input position with the whole kernel, [B*N, Cin] x [Cin,
  k^rank * Cout], followed by an overlap-add of the k^rank taps into the
  output ("col2im", done one axis at a time with shifted slices). On small
  inputs the matmul runs near the machine's peak where oneDNN's transposed
  convolution does not.
- `conv_space_to_depth`: a stride-2 convolution is a stride-1 convolution
  of the input regrouped 2x2x2 into channels, with the kernel regrouped the
  same way, so a one-channel input becomes eight channels.

Both compute what Keras's layer computes, to float32 rounding, from the
layer's own kernel (layout and variable unchanged, so checkpoints are the
same); `tests/test_strided.py` checks outputs and gradients against Keras.
The layer classes below choose the rewrite only where
`benchmarks/bench_strided.py` measured it faster, and only on CPU (with a
GPU visible, cuDNN's kernels are used as they are: the rewrites were not
measured there). A "sub-pixel" form of the transposed convolution (one
stride-1 convolution with 2^rank output groups) was also tried and was
slower than the stock op at every layer; it is not kept.

Padding is TensorFlow's 'same' with stride 2 (`_same_pad_before`): an input
of side R gives R/2 (convolution) or 2R (transposed convolution).
"""

from __future__ import annotations

import functools
import math

import keras
from keras import layers

STRIDE = 2
# Where the rewrites pay (benchmarks/bench_strided.py, 64^3, batch 4, oneDNN
# on; forward + both gradients): transposed convolutions of at most this many
# input positions (GE's 4x4, 8x8 and 16x16 inputs: 2.81x, 1.33x, 1.15x, its
# 32x32 one 0.92x; GM's 4^3 input 1.63x, its 8^3 one 0.56x) or with one
# output channel (GM's last: 1.23x), and 3D convolutions of one input
# channel (DM's first: 1.93x; space to depth of DM's other layers 0.26-0.72x).
# GE's 64x64 -> 128x128 image layer (1.07x) and DE's 3-channel first layer
# (1.11x) take 2% of the layers' time and stay on the stock op.
MATMUL_MAX_POSITIONS = {2: 256, 3: 64}


def _same_pad_before(size_in: int, size_out: int, kernel: int) -> int:
    """TensorFlow's 'same' padding before, for a stride-2 op from `size_out` back to `size_in`.

    For a convolution of input `size_in` to output `size_out`, TensorFlow pads
    max((size_out - 1) * 2 + kernel - size_in, 0) in total, the smaller half
    before. A transposed convolution uses the padding of the convolution it
    is the gradient of.
    """
    total = max((size_out - 1) * STRIDE + kernel - size_in, 0)
    return total // 2


def conv_space_to_depth(x, kernel):
    """Keras `Conv{2,3}D(strides=2, padding='same')` without bias, as a stride-1 convolution.

    x: [B, *spatial, Cin] (every side even); kernel: [*k, Cin, Cout] (Keras layout).
    Returns [B, *spatial/2, Cout].
    """
    import tensorflow as tf

    rank = len(x.shape) - 2
    sides = [int(s) for s in x.shape[1:-1]]
    ks = [int(k) for k in kernel.shape[:rank]]
    cin, cout = int(kernel.shape[-2]), int(kernel.shape[-1])
    outs = [s // STRIDE for s in sides]
    blocks = [math.ceil(k / STRIDE) for k in ks]  # the stride-1 kernel's side
    before = [_same_pad_before(s, o, k) for s, o, k in zip(sides, outs, ks)]
    # y[i] = sum_t xp[2i + t] w[t]; t = 2a + b, so y[i] = sum_a s2d(xp)[i + a][b] w[2a + b].
    padded = [STRIDE * (o + b - 1) for o, b in zip(outs, blocks)]
    pads = [[0, 0]] + [[p, n - p - s] for p, n, s in zip(before, padded, sides)] + [[0, 0]]
    xp = tf.pad(x, pads)
    shape = [-1]
    for n in padded:
        shape += [n // STRIDE, STRIDE]
    xp = tf.reshape(xp, shape + [cin])
    # [B, n1, 2, n2, 2, ..., Cin] -> [B, n1, n2, ..., 2, 2, ..., Cin]
    order = [0] + [1 + 2 * d for d in range(rank)] + [2 + 2 * d for d in range(rank)]
    xp = tf.transpose(xp, order + [1 + 2 * rank])
    xp = tf.reshape(xp, [-1] + [n // STRIDE for n in padded] + [STRIDE**rank * cin])
    # Kernel: pad each side to 2 * blocks, split t = 2a + b, group (a...) then (b..., Cin).
    w = tf.pad(kernel, [[0, STRIDE * b - k] for b, k in zip(blocks, ks)] + [[0, 0], [0, 0]])
    wshape = []
    for b in blocks:
        wshape += [b, STRIDE]
    w = tf.reshape(w, wshape + [cin, cout])
    # [a1, 2, a2, 2, ..., Cin, Cout] -> [a1, a2, ..., 2, 2, ..., Cin, Cout]
    w_order = [2 * d for d in range(rank)] + [2 * d + 1 for d in range(rank)]
    w = tf.transpose(w, w_order + [2 * rank, 2 * rank + 1])
    w = tf.reshape(w, blocks + [STRIDE**rank * cin, cout])
    conv = tf.nn.conv3d if rank == 3 else tf.nn.conv2d
    return conv(xp, w, [1] * (rank + 2), "VALID")


def _shift(z, axis: int, d: int):
    """out[m] = z[m - d] along `axis`, zeros where m - d falls outside."""
    import tensorflow as tf

    if d == 0:
        return z
    rank = len(z.shape)
    n = int(z.shape[axis])
    pads = [[0, 0]] * rank
    pads[axis] = [d, 0] if d > 0 else [0, -d]
    begin = [0] * rank
    begin[axis] = 0 if d > 0 else -d
    size = [-1] * rank
    size[axis] = n
    return tf.slice(tf.pad(z, pads), begin, size)


def conv_transpose_matmul(x, kernel):
    """Keras `Conv{2,3}DTranspose(strides=2, padding='same')` without bias, as matmul + overlap-add.

    x: [B, *spatial, Cin]; kernel: [*k, Cout, Cin] (Keras layout).
    Returns [B, *(2 * spatial), Cout].

    Output o of a stride-2 transposed convolution gets x[i] w[t] for every
    o = 2 i + t - p (p: the padding before). The matmul gives every x[i] w[t]
    at once, z[i, t]; then, axis by axis, output parity r at position m sums
    z[m - d, t] over the taps t with t - r - p = 2 d.
    """
    import tensorflow as tf

    rank = len(x.shape) - 2
    sides = [int(s) for s in x.shape[1:-1]]
    ks = [int(k) for k in kernel.shape[:rank]]
    cout, cin = int(kernel.shape[-2]), int(kernel.shape[-1])
    # [*k, Cout, Cin] is already [(k..., Cout), Cin]: no copy of the kernel (GE's
    # first one is 210 MB), neither here nor for its gradient.
    w = tf.reshape(kernel, [math.prod(ks) * cout, cin])
    z = tf.matmul(tf.reshape(x, [-1, cin]), w, transpose_b=True)
    z = tf.reshape(z, [-1, *sides, *ks, cout])
    # Fold one axis at a time; the axis folded is 1 + d and its taps are
    # always at 1 + rank (the taps of earlier axes are gone by then).
    for d in range(rank):
        m_axis = 1 + d
        p = _same_pad_before(STRIDE * sides[d], sides[d], ks[d])
        taps = tf.unstack(z, axis=1 + rank)
        parities = []
        for r in range(STRIDE):
            terms = [
                _shift(taps[t], m_axis, (t - r - p) // STRIDE)
                for t in range(ks[d])
                if (t - r - p) % STRIDE == 0
            ]
            parities.append(tf.add_n(terms) if len(terms) > 1 else terms[0])
        z = tf.stack(parities, axis=m_axis + 1)  # [.., M, 2, ..] -> [.., 2M, ..]
        shape = [-1, *(int(v) for v in z.shape[1:])]
        shape[m_axis : m_axis + 2] = [STRIDE * sides[d]]
        z = tf.reshape(z, shape)
    return z


@functools.cache
def _gpu_visible() -> bool:
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def _plain_stride2(layer, rank: int) -> bool:
    """A stride-2, 'same', undilated, channels-last layer on TensorFlow without a GPU."""
    return (
        keras.backend.backend() == "tensorflow"
        and tuple(layer.strides) == (STRIDE,) * rank
        and layer.padding == "same"
        and tuple(layer.dilation_rate) == (1,) * rank
        and layer.data_format == "channels_last"
        and not _gpu_visible()
    )


def _bias_and_activation(layer, outputs):
    from keras import ops

    if layer.use_bias:
        outputs = ops.add(outputs, ops.reshape(layer.bias, (1,) * (layer.rank + 1) + (-1,)))
    if layer.activation is not None:
        outputs = layer.activation(outputs)
    return outputs


class _MatmulTranspose:
    """Mixin: the transposed convolution as `conv_transpose_matmul` where that is faster."""

    def uses_rewrite(self, input_shape) -> bool:
        spatial = [int(s) for s in input_shape[1:-1]]
        return (
            _plain_stride2(self, self.rank)
            and self.output_padding is None
            and (self.filters == 1 or math.prod(spatial) <= MATMUL_MAX_POSITIONS[self.rank])
        )

    def call(self, inputs):
        if not self.uses_rewrite(inputs.shape):
            return super().call(inputs)
        kernel = keras.ops.cast(self.kernel, inputs.dtype)
        return _bias_and_activation(self, conv_transpose_matmul(inputs, kernel))


@keras.saving.register_keras_serializable(package="enhancer_gan")
class Conv2DTranspose(_MatmulTranspose, layers.Conv2DTranspose):
    """`keras.layers.Conv2DTranspose`, same variables, faster on small inputs on CPU."""


@keras.saving.register_keras_serializable(package="enhancer_gan")
class Conv3DTranspose(_MatmulTranspose, layers.Conv3DTranspose):
    """`keras.layers.Conv3DTranspose`, same variables, faster on small inputs or one output."""


@keras.saving.register_keras_serializable(package="enhancer_gan")
class Conv3D(layers.Conv3D):
    """`keras.layers.Conv3D`, same variables; a one-channel input goes through space to depth."""

    def uses_rewrite(self, input_shape) -> bool:
        return (
            _plain_stride2(self, 3)
            and self.groups == 1
            and int(input_shape[-1]) == 1
            and all(int(s) % STRIDE == 0 for s in input_shape[1:-1])
        )

    def convolution_op(self, inputs, kernel):
        if not self.uses_rewrite(inputs.shape):
            return super().convolution_op(inputs, kernel)
        return conv_space_to_depth(inputs, keras.ops.cast(kernel, inputs.dtype))
