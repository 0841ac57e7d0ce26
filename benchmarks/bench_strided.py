"""Benchmark: every convolution of the four networks alone: Keras's op, its rewrite, PyTorch's.

  python benchmarks/bench_strided.py --resolution=64 --batch_size=4   # stock against rewrite
  python benchmarks/bench_strided.py --torch      # and PyTorch's layer (pip install -e ".[bench]")
  python benchmarks/bench_strided.py --quick      # tiny, seconds (smoke test)

Each (stride-2) convolution and transposed convolution of GE, DE, GM and DM on its real
input shape, forward + input and kernel gradients, timed interleaved: Keras's op, the
exact rewrite of `enhancer_gan.models.strided` (matmul + overlap-add, or space to depth),
and with `--torch` the same layer of benchmarks/torch_mirror.py (channels_last(_3d)).
`chosen`: the layer takes the rewrite at this shape (right where speedup > 1); "ours" is
the side the layer runs.

Last line: `chosen_speedup=<stock time / rewrite time over the chosen layers>`, or with
--torch `layers_torch_over_ours=<PyTorch's time / ours over all layers>` (> 1: ours faster).
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402  (puts the repository on sys.path)
from absl import app, flags  # noqa: E402

flags.DEFINE_integer("resolution", 64, "Voxel resolution (32 or 64).")
flags.DEFINE_integer("batch_size", 4, "Batch size of every layer.")
flags.DEFINE_float("width", 1.0, "ModelConfig.width_multiplier (1 = the paper).")
flags.DEFINE_integer("image_size", 128, "GE/DE image side.")
flags.DEFINE_integer("repeats", 3, "Timed calls per side (interleaved), after one warm-up.")
flags.DEFINE_bool("torch", False, "Also time each layer in PyTorch.")
flags.DEFINE_bool("quick", False, "Tiny sizes: checks the script end to end in seconds.")
FLAGS = flags.FLAGS


def conv_layers(nets, torch_nets):
    """(network, Keras conv layer, torch conv module or None), paired in build order."""
    import keras

    from enhancer_gan.models.flops import _sublayers

    L = keras.layers
    convs = (L.Conv2D, L.Conv3D, L.Conv2DTranspose, L.Conv3DTranspose)
    for net in (*nets.generators, *nets.discriminators):
        ours = [x for x in _sublayers(net) if isinstance(x, convs)]
        theirs = [None] * len(ours)
        if torch_nets is not None:  # modules with a 4-D or 5-D weight: the convolutions
            modules = torch_nets[net.name].modules()
            theirs = [
                m for m in modules if getattr(m, "weight", None) is not None and m.weight.dim() > 2
            ]
        for a, b in zip(ours, theirs, strict=True):
            k = tuple(a.kernel.shape)  # torch's weight: the last two axes first, swapped
            if b is not None and tuple(b.weight.shape) != (k[-1], k[-2], *k[:-2]):
                raise AssertionError(f"{net.name}/{a.name} {k} paired with torch {b}")
            yield net.name, a, b


def torch_fn(module, x):
    """Forward + input and kernel gradients of a torch layer on x (NHWC numpy), channels_last."""
    import torch

    layout = torch.channels_last_3d if x.ndim == 5 else torch.channels_last
    module.to(memory_format=layout)
    tx = torch.from_numpy(x).movedim(-1, 1).contiguous(memory_format=layout).requires_grad_(True)

    def fn():
        y = module(tx)
        return torch.autograd.grad((y * y).sum(), [tx, module.weight])[0]

    return fn


def main(argv):
    del argv
    import keras
    import tensorflow as tf
    from keras import ops

    from enhancer_gan.config import ModelConfig
    from enhancer_gan.models import build_networks, strided

    if FLAGS.quick:
        res, batch, width, image, repeats = 32, 2, 1 / 16, 32, 1
    else:
        res, batch, width = FLAGS.resolution, FLAGS.batch_size, FLAGS.width
        image, repeats = FLAGS.image_size, FLAGS.repeats
    common.print_machine()
    config = ModelConfig(resolution=res, width_multiplier=width, image_size=image)
    keras.utils.set_random_seed(0)
    nets = build_networks(config)
    torch_nets = None
    if FLAGS.torch:
        import plain_keras
        import torch
        from torch_mirror import torch_module

        torch.set_num_threads(os.cpu_count() or 1)
        torch_nets = {n: torch_module(m) for n, m in plain_keras.plain_networks(config).items()}
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, channels_last")
    print(f"{res}^3, batch {batch}, width {width:g}, image {image}", flush=True)

    rows = []
    for name, layer, module in conv_layers(nets, torch_nets):
        transposed = isinstance(layer, keras.layers.Conv2DTranspose | keras.layers.Conv3DTranspose)
        shape = [batch, *layer.get_build_config()["input_shape"][1:]]
        x = tf.Variable(tf.random.stateless_uniform(shape, [1, 2], -1.0, 1.0))
        kernel = tf.Variable(layer.kernel)
        sides = {
            "stock": lambda x, w, t=transposed: (ops.conv_transpose if t else ops.conv)(
                x, w, strides=2, padding="same"
            ),
            "rewrite": strided.conv_transpose_matmul if transposed else strided.conv_space_to_depth,
        }
        fns = {}
        for side, op in sides.items():

            @tf.function(jit_compile=False)
            def fwd_bwd(op=op, x=x, kernel=kernel):
                with tf.GradientTape() as tape:
                    loss = tf.reduce_sum(op(x, kernel) ** 2)
                return tape.gradient(loss, [x, kernel])

            fns[side] = lambda f=fwd_bwd: f()[0].numpy()  # blocks
        if module is not None:
            fns["torch"] = torch_fn(module, x.numpy())
        for fn in fns.values():
            fn()  # warm-up: tracing, oneDNN primitives
        sec = common.interleaved(fns, repeats)
        chosen = hasattr(layer, "uses_rewrite") and layer.uses_rewrite(shape)
        row = {
            "layer": f"{name}/{layer.name}",
            "input": "x".join(str(d) for d in shape[1:]),
            "filters": layer.filters,
            "rewrite": "matmul" if transposed else "space-to-depth",
            "stock s": sec["stock"],
            "rewrite s": sec["rewrite"],
            "speedup": sec["stock"] / sec["rewrite"],
            "chosen": "yes" if chosen else "no",
            "_ours": sec["rewrite" if chosen else "stock"],
        }
        if module is not None:
            row.update({"torch s": sec["torch"], "torch/ours": sec["torch"] / row["_ours"]})
        rows.append(row)
    common.print_table(f"stride-2 layers, forward + both gradients, {res}^3, batch {batch}", rows)
    wrong = [r["layer"] for r in rows if (r["chosen"] == "yes") != (r["speedup"] > 1)]
    print(f"layers where the rule and the measurement disagree: {wrong or 'none'}")
    chosen = [r for r in rows if r["chosen"] == "yes"]
    stock, rewrite = sum(r["stock s"] for r in chosen), sum(r["rewrite s"] for r in chosen)
    speedup = stock / rewrite if rewrite else float("nan")
    if not FLAGS.torch:
        common.final_line("chosen_speedup", speedup)
        return 0
    ours, theirs = sum(r["_ours"] for r in rows), sum(r["torch s"] for r in rows)
    print(
        f"all layers: ours {ours:.4g} s, torch {theirs:.4g} s; ratio chosen_speedup={speedup:.4g}"
    )
    common.final_line("layers_torch_over_ours", theirs / ours)
    return 0


if __name__ == "__main__":
    app.run(main)
