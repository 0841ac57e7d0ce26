"""Benchmark: every stride-2 layer of the four networks, Keras's op against its rewrite.

  python benchmarks/bench_strided.py                      # 64^3, batch 8, full width
  python benchmarks/bench_strided.py --resolution=32 --batch=4
  python benchmarks/bench_strided.py --quick              # tiny, seconds (smoke test)

For each convolution and transposed convolution of GE, DE, GM and DM, on its
real input shape: forward and backward (input and kernel gradients) with
Keras's own op, and with the exact rewrite of `enhancer_gan.models.strided`
(matmul + overlap-add for a transposed convolution, space to depth for a 3D
convolution), timed interleaved in one process. `chosen` says whether the
layer class takes the rewrite at this shape (the rule in strided.py: a
transposed convolution of at most 256 (2D) or 64 (3D) input positions or
with one output channel, a 3D convolution of one input channel). A rule is right where `chosen`
layers have speedup > 1 and the others do not.

Last line: `chosen_speedup=<stock time / rewrite time, summed over the chosen layers>`.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402  (puts the repository on sys.path)
from absl import app, flags  # noqa: E402

flags.DEFINE_integer("resolution", 64, "Voxel resolution (32 or 64).")
flags.DEFINE_integer("batch", 8, "Batch size of every layer.")
flags.DEFINE_float("width", 1.0, "ModelConfig.width_multiplier (1 = the paper).")
flags.DEFINE_integer("image_size", 128, "GE/DE image side.")
flags.DEFINE_integer("repeats", 3, "Timed calls per side (interleaved), after one warm-up.")
flags.DEFINE_bool("quick", False, "Tiny sizes: checks the script end to end in seconds.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    import keras
    import tensorflow as tf
    from keras import ops

    from enhancer_gan.config import ModelConfig
    from enhancer_gan.models import build_networks, generate_voxels, strided
    from enhancer_gan.models.flops import _sublayers

    if FLAGS.quick:
        res, batch, width, image, repeats = 32, 2, 1 / 16, 32, 1
    else:
        res, batch, width = FLAGS.resolution, FLAGS.batch, FLAGS.width
        image, repeats = FLAGS.image_size, FLAGS.repeats
    common.print_machine()
    print(f"tensorflow {tf.__version__}; {res}^3, batch {batch}, width {width:g}, image {image}")

    config = ModelConfig(resolution=res, width_multiplier=width, image_size=image)
    keras.utils.set_random_seed(0)
    nets = build_networks(config)
    z = tf.zeros([1, config.latent_dim])
    _, outputs = generate_voxels(nets, z, training=False)
    nets.voxel_discriminator(tf.zeros([1, res, res, res, 1]))
    nets.enhancer_discriminator(outputs["image"])

    def stock_transpose(x, w):
        return ops.conv_transpose(x, w, strides=2, padding="same")

    def stock_conv(x, w):
        return ops.conv(x, w, strides=2, padding="same")

    rows = []
    chosen_stock = chosen_rewrite = 0.0
    for net in (*nets.generators, *nets.discriminators):
        for layer in _sublayers(net):
            transposed = isinstance(
                layer, keras.layers.Conv2DTranspose | keras.layers.Conv3DTranspose
            )
            if not (transposed or isinstance(layer, keras.layers.Conv2D | keras.layers.Conv3D)):
                continue
            shape = [batch, *layer.get_build_config()["input_shape"][1:]]
            x = tf.Variable(tf.random.stateless_uniform(shape, [1, 2], -1.0, 1.0))
            kernel = tf.Variable(layer.kernel)
            if transposed:
                sides = {"stock": stock_transpose, "rewrite": strided.conv_transpose_matmul}
            else:
                sides = {"stock": stock_conv, "rewrite": strided.conv_space_to_depth}
            fns = {}
            for name, op in sides.items():

                @tf.function(jit_compile=False)
                def fwd_bwd(op=op, x=x, kernel=kernel):
                    with tf.GradientTape() as tape:
                        y = op(x, kernel)
                        loss = tf.reduce_sum(y * y)
                    return tape.gradient(loss, [x, kernel])

                fwd_bwd()  # warm-up: tracing
                fns[name] = lambda f=fwd_bwd: f()[0].numpy()  # blocks
            sec = common.interleaved(fns, repeats)
            chosen = hasattr(layer, "uses_rewrite") and layer.uses_rewrite(shape)
            if chosen:
                chosen_stock += sec["stock"]
                chosen_rewrite += sec["rewrite"]
            rows.append(
                {
                    "layer": f"{net.name}/{layer.name}",
                    "input": "x".join(str(d) for d in shape[1:]),
                    "filters": layer.filters,
                    "rewrite": "matmul" if transposed else "space-to-depth",
                    "stock s": sec["stock"],
                    "rewrite s": sec["rewrite"],
                    "speedup": sec["stock"] / sec["rewrite"],
                    "chosen": "yes" if chosen else "no",
                }
            )
            print(rows[-1], flush=True)
    common.print_table(
        f"stride-2 layers, forward + input and kernel gradients, {res}^3, batch {batch}", rows
    )
    wrong = [r["layer"] for r in rows if (r["chosen"] == "yes") != (r["speedup"] > 1)]
    print(f"\nlayers where the rule and the measurement disagree: {wrong or 'none'}")
    common.final_line(
        "chosen_speedup", chosen_stock / chosen_rewrite if chosen_rewrite else float("nan")
    )


if __name__ == "__main__":
    app.run(main)
