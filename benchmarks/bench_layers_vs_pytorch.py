"""Benchmark: every convolution of the four networks alone, ours against PyTorch's.

  python benchmarks/bench_layers_vs_pytorch.py                  # 64^3, batch 4, full width
  python benchmarks/bench_layers_vs_pytorch.py --resolution=32
  python benchmarks/bench_layers_vs_pytorch.py --quick          # tiny, seconds (smoke test)

Needs PyTorch (`pip install -e ".[bench]"`). Where `bench_vs_pytorch.py`
compares whole train steps, this says which layers the difference comes
from: each convolution and transposed convolution of GE, DE, GM and DM,
forward and backward (input and kernel gradients) on its real input shape,
timed interleaved in one process: the project's Keras layer (with the
rewrites of `enhancer_gan/models/strided.py` where the layer takes them)
against the same layer of the PyTorch mirror (`bench_vs_pytorch.torch_networks`,
channels_last / channels_last_3d, `torch.set_num_threads(all cores)`).

Last line: `layers_torch_over_ours=<sum of PyTorch's times / sum of ours>` (> 1: ours is faster).
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402  (puts the repository on sys.path)
from absl import app, flags  # noqa: E402

flags.DEFINE_integer("resolution", 64, "Voxel resolution (32 or 64).")
flags.DEFINE_integer("batch", 4, "Batch size of every layer.")
flags.DEFINE_float("width", 1.0, "ModelConfig.width_multiplier (1 = the paper).")
flags.DEFINE_integer("image_size", 128, "GE/DE image side.")
flags.DEFINE_integer("repeats", 3, "Timed calls per side (interleaved), after one warm-up.")
flags.DEFINE_bool("quick", False, "Tiny sizes: checks the script end to end in seconds.")
FLAGS = flags.FLAGS


def _pairs(keras_nets, torch_nets):
    """(network, Keras conv layer, torch conv module) in the order both build them."""
    import keras
    from torch import nn

    from enhancer_gan.models.flops import _sublayers

    keras_convs = (
        keras.layers.Conv2D,
        keras.layers.Conv3D,
        keras.layers.Conv2DTranspose,
        keras.layers.Conv3DTranspose,
    )
    torch_convs = (nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.ConvTranspose3d)
    for name, torch_net in torch_nets.items():
        ours = [x for x in _sublayers(getattr(keras_nets, name)) if isinstance(x, keras_convs)]
        theirs = [m for m in torch_net.modules() if isinstance(m, torch_convs)]
        if len(ours) != len(theirs):
            raise AssertionError(f"{name}: {len(ours)} Keras convolutions, {len(theirs)} torch")
        yield from ((name, a, b) for a, b in zip(ours, theirs))


def main(argv):
    del argv
    import keras
    import tensorflow as tf

    try:
        import torch
    except ImportError:
        print('PyTorch is not installed: pip install -e ".[bench]"', file=sys.stderr)
        return 2
    from torch_mirror import torch_networks

    from enhancer_gan.config import ModelConfig
    from enhancer_gan.models import build_networks, generate_voxels

    if FLAGS.quick:
        res, batch, width, image, repeats = 32, 2, 1 / 16, 32, 1
    else:
        res, batch, width = FLAGS.resolution, FLAGS.batch, FLAGS.width
        image, repeats = FLAGS.image_size, FLAGS.repeats
    torch.set_num_threads(os.cpu_count() or 1)
    common.print_machine()
    print(
        f"tensorflow {tf.__version__}, torch {torch.__version__} ({torch.get_num_threads()} "
        f"threads, channels_last); {res}^3, batch {batch}, width {width:g}, image {image}",
        flush=True,
    )
    config = ModelConfig(resolution=res, width_multiplier=width, image_size=image)
    keras.utils.set_random_seed(0)
    nets = build_networks(config)
    _, outputs = generate_voxels(nets, tf.zeros([1, config.latent_dim]), training=False)
    nets.voxel_discriminator(tf.zeros([1, res, res, res, 1]))
    nets.enhancer_discriminator(outputs["image"])
    mirror = torch_networks(config)

    rows = []
    total = {"ours": 0.0, "torch": 0.0}
    for name, layer, module in _pairs(nets, mirror):
        shape = [batch, *layer.get_build_config()["input_shape"][1:]]
        x = tf.random.stateless_uniform(shape, [1, 2], -1.0, 1.0)
        weights = layer.trainable_weights

        @tf.function(jit_compile=False)
        def ours_fn(x=x, layer=layer, weights=weights):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = layer(x, training=True)
                loss = tf.reduce_sum(y * y)
            return tape.gradient(loss, [x, *weights])[0]

        layout = torch.channels_last_3d if len(shape) == 5 else torch.channels_last
        module.to(memory_format=layout)
        tx = torch.from_numpy(x.numpy()).movedim(-1, 1).contiguous(memory_format=layout)
        tx.requires_grad_(True)

        def torch_fn(module=module, tx=tx):
            y = module(tx)
            return torch.autograd.grad((y * y).sum(), [tx, module.weight])[0]

        fns = {"ours": lambda f=ours_fn: f().numpy(), "torch": torch_fn}
        for fn in fns.values():
            fn()  # warm-up: tracing, oneDNN primitives
        sec = common.interleaved(fns, repeats)
        for k in total:
            total[k] += sec[k]
        rewritten = hasattr(layer, "uses_rewrite") and layer.uses_rewrite(shape)
        rows.append(
            {
                "layer": f"{name}/{layer.name}",
                "input": "x".join(str(d) for d in shape[1:]),
                "filters": layer.filters,
                "ours": "rewrite" if rewritten else "stock",
                "ours s": sec["ours"],
                "torch s": sec["torch"],
                "torch/ours": sec["torch"] / sec["ours"],
            }
        )
        print(rows[-1], flush=True)
    rows.append(
        {
            "layer": "all",
            "input": "",
            "filters": "",
            "ours": "",
            "ours s": total["ours"],
            "torch s": total["torch"],
            "torch/ours": total["torch"] / total["ours"],
        }
    )
    common.print_table(
        f"convolutions alone, forward + input and kernel gradients, {res}^3, batch {batch}", rows
    )
    print()
    common.final_line("layers_torch_over_ours", total["torch"] / total["ours"])
    return 0


if __name__ == "__main__":
    app.run(main)
