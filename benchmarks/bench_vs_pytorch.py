"""Benchmark: the project's train step against the same step written in PyTorch.

  python benchmarks/bench_vs_pytorch.py                    # 32^3 and 64^3, full width, batch 4
  python benchmarks/bench_vs_pytorch.py --batch=8 --resolutions=64
  python benchmarks/bench_vs_pytorch.py --quick            # tiny, seconds (smoke test)

Needs PyTorch: `pip install -e ".[bench]"` (on the project's machines
`pip install torch==2.13.0` takes a CPU build from the local disk; plain
`pip install torch` from PyPI downloads a CUDA build of several GB).

The PyTorch side mirrors `enhancer_gan.models` layer by layer (kernel sizes,
strides, paddings giving the same output shapes, no bias before a batch
norm, batch norm momentum 0.99 / epsilon 1e-3 as Keras, ReLU / LeakyReLU 0.2
/ tanh / sigmoid) and `enhancer_gan.training.trainer` step by step: one
discriminator update of DE + DM on real pairs and detached fakes of z0, then
two generator updates of GE + GM on L = LE + LM with fresh z, one Adam per
network (lr 2e-4, beta1 0.5, epsilon 1e-7 as Keras), gradients only of the
networks being updated (as TensorFlow prunes them). Every network's
parameter count is printed for both sides (`params <net> ours=<n>
torch=<n>`): equal counts are a check that the mirror is faithful.

PyTorch runs with its best CPU settings, printed: torch.set_num_threads(all
cores), oneDNN (mkldnn) on, and per case the faster of channels_last(_3d)
and the default contiguous memory format (`--torch_memory_format=auto`,
each timed once after its warm-up); feature extraction under
torch.inference_mode(). TensorFlow runs as the project runs it (oneDNN,
no XLA on CPU, all cores).

Timing: both steps are built and warmed up in this one process, then timed
interleaved (ours, theirs, ours, theirs, ...) on the same fixed batch, so
a machine shared with other jobs slows both alike; ratios are
PyTorch time / our time (> 1: ours is faster).

Feature extraction: DM in inference mode, conv layers 2-4 max-pooled to 4^3
('same' padding) and concatenated, on the same random grids: the project's
`FeatureExtractor` against the mirror under inference_mode.

Last line: `tf_vs_torch=<PyTorch step time / ours>` at 64^3.
"""

from __future__ import annotations

import math
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402  (puts the repository on sys.path)
from absl import app, flags  # noqa: E402

flags.DEFINE_list("resolutions", ["32", "64"], "Voxel resolutions (32, 64); 64 last.")
flags.DEFINE_integer("batch", 4, "Batch size of both steps.")
flags.DEFINE_float("width", 1.0, "ModelConfig.width_multiplier (1 = the paper).")
flags.DEFINE_integer("image_size", 128, "GE/DE image side.")
flags.DEFINE_integer("repeats", 2, "Timed steps per side (interleaved), after warm-up.")
flags.DEFINE_integer("feature_batches", 2, "Batches of feature extraction per timed call.")
flags.DEFINE_enum(
    "torch_memory_format",
    "auto",
    ["auto", "channels_last", "contiguous"],
    "PyTorch memory format; auto: the faster of the two, per case.",
)
flags.DEFINE_bool("quick", False, "Tiny sizes: checks the script end to end in seconds.")
FLAGS = flags.FLAGS


from torch_mirror import TorchStep, torch_networks, torch_pooled_features  # noqa: E402


def count_params_keras(model) -> int:
    return sum(int(math.prod(v.shape)) for v in model.trainable_variables)


def count_params_torch(module) -> int:
    return sum(p.numel() for p in module.parameters())


def param_counts(resolution, width, image_size):
    """[(network, ours, torch)] trainable parameter counts of both implementations."""
    from enhancer_gan.config import ModelConfig
    from enhancer_gan.models import build_networks

    model_config = ModelConfig(resolution=resolution, width_multiplier=width, image_size=image_size)
    networks = build_networks(model_config)
    return [
        (name, count_params_keras(getattr(networks, name)), count_params_torch(net))
        for name, net in torch_networks(model_config).items()
    ]


# -- one case -----------------------------------------------------------------


def measure_case(resolution, batch, width, image_size, repeats, memory_format, feature_batches):
    import keras
    import numpy as np
    import torch

    from enhancer_gan.config import ModelConfig, TrainConfig
    from enhancer_gan.evaluation.features import FeatureExtractor
    from enhancer_gan.training.trainer import GanTrainer

    keras.utils.set_random_seed(0)
    model_config = ModelConfig(resolution=resolution, width_multiplier=width, image_size=image_size)
    train_config = TrainConfig(batch_size=batch, jit_compile=False)
    n_g = train_config.generator_steps_per_discriminator_step
    trainer = GanTrainer(model_config, train_config)
    data = common.synthetic_batch(batch, resolution, image_size, model_config.latent_dim, 1 + n_g)

    nets = torch_networks(model_config)
    step = TorchStep(nets, n_g)
    params = []
    for name, net in nets.items():
        ours = count_params_keras(getattr(trainer.networks, name))
        theirs = count_params_torch(net)
        params.append((name, ours, theirs))
        print(f"params {name} res={resolution} ours={ours} torch={theirs}", flush=True)

    np_vox = data["voxels"].numpy()
    np_img = data["image"].numpy()
    np_z = data["z"].numpy()
    losses = {"ours": [], "torch": []}

    def ours():
        out = trainer.train_step(data)
        losses["ours"].append(float(out["loss/voxel_discriminator"]))  # blocks

    feeds = {}

    def theirs():
        v, im, z = feeds[step.memory_format]
        losses["torch"].append(step(v, im, z))

    # Warm-up: our step traces once; each torch layout runs once (oneDNN
    # primitives), then the faster layout is chosen on one timed step each.
    ours()
    formats = ["channels_last", "contiguous"] if memory_format == "auto" else [memory_format]
    format_times = {}
    for fmt in formats:
        step.set_memory_format(fmt)
        feeds[fmt] = step.inputs(np_vox, np_img, np_z)
        theirs()
    if len(formats) > 1:
        for fmt in formats:
            step.set_memory_format(fmt)
            start = time.perf_counter()
            theirs()
            format_times[fmt] = time.perf_counter() - start
        best = min(format_times, key=format_times.get)
    else:
        best = formats[0]
    step.set_memory_format(best)
    med = common.interleaved({"ours": ours, "torch": theirs}, repeats)

    # Feature extraction: the same random grids through both.
    fb = batch
    n = fb * feature_batches
    rng = np.random.default_rng(0)
    grids = rng.random((n, resolution, resolution, resolution)) < 0.2
    extractor = FeatureExtractor(trainer.networks.voxel_discriminator, batch_size=fb)
    dm = nets["voxel_discriminator"]
    dm.eval()

    def ours_features():
        return extractor(grids)

    def torch_features():
        out = []
        with torch.inference_mode():
            for s in range(0, n, fb):
                x = torch.from_numpy(grids[s : s + fb].astype(np.float32))[:, None]
                if step.memory_format == "channels_last":
                    x = x.contiguous(memory_format=torch.channels_last_3d)
                out.append(torch_pooled_features(dm(x, features=True)).numpy())
        return np.concatenate(out)

    f_ours, f_torch = ours_features(), torch_features()  # warm-up
    if f_ours.shape != f_torch.shape:
        raise AssertionError(f"feature shapes differ: {f_ours.shape} vs {f_torch.shape}")
    fmed = common.interleaved({"ours": ours_features, "torch": torch_features}, repeats)

    finite = all(math.isfinite(x) for v in losses.values() for x in v)
    keras.backend.clear_session()
    return {
        "res": resolution,
        "batch": batch,
        "width": width,
        "torch layout": best,
        "layout trial s": " ".join(f"{k}={v:.3g}" for k, v in format_times.items()) or "-",
        "ours s/step": med["ours"],
        "torch s/step": med["torch"],
        "step torch/ours": med["torch"] / med["ours"],
        "ours feat s": fmed["ours"],
        "torch feat s": fmed["torch"],
        "features torch/ours": fmed["torch"] / fmed["ours"],
        "feature dim": f_ours.shape[1],
        "finite": finite,
        "_params": params,
    }


def main(argv):
    del argv
    import tensorflow as tf

    try:
        import torch
    except ImportError:
        print('PyTorch is not installed: pip install -e ".[bench]"', file=sys.stderr)
        return 2

    cores = os.cpu_count() or 1
    torch.set_num_threads(cores)
    memory_format = FLAGS.torch_memory_format
    if FLAGS.quick:
        # Timed at 64^3 only, one layout; parameter counts at both resolutions.
        resolutions, batch, width, image_size, repeats, fbatches = [64], 2, 1 / 16, 32, 1, 1
        memory_format = "channels_last"
    else:
        resolutions = sorted(int(r) for r in FLAGS.resolutions)
        batch, width, image_size = FLAGS.batch, FLAGS.width, FLAGS.image_size
        repeats, fbatches = FLAGS.repeats, FLAGS.feature_batches
    common.print_machine()
    print(
        f"tensorflow {tf.__version__} (oneDNN, XLA off, intra-op threads "
        f"{tf.config.threading.get_intra_op_parallelism_threads() or 'default = all cores'}); "
        f"torch {torch.__version__}: set_num_threads({cores}) -> {torch.get_num_threads()} "
        f"threads, mkldnn available={torch.backends.mkldnn.is_available()} "
        f"enabled={torch.backends.mkldnn.enabled}, memory format "
        f"--torch_memory_format={FLAGS.torch_memory_format} (channels_last = "
        "channels_last for GE/DE, channels_last_3d for GM/DM), features under "
        "torch.inference_mode()",
        flush=True,
    )
    rows = []
    for res in resolutions:
        print(f"measuring {res}^3, batch {batch}, width {width:g} ...", flush=True)
        rows.append(measure_case(res, batch, width, image_size, repeats, memory_format, fbatches))
    checked = {r["res"]: r["_params"] for r in rows}
    for res in (32, 64):
        if res not in checked:
            checked[res] = param_counts(res, width, image_size)
            for name, ours, theirs in checked[res]:
                print(f"params {name} res={res} ours={ours} torch={theirs}")
    common.print_table(
        "train step and DM features, PyTorch against ours (interleaved, same process)",
        [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows],
    )
    mismatch = [(res, n, a, b) for res, ps in checked.items() for n, a, b in ps if a != b]
    print(f"params_match={not mismatch}" + (f" {mismatch}" if mismatch else ""))
    for r in rows:
        print(
            f"ratio res={r['res']} step_torch_over_ours={r['step torch/ours']:.4g} "
            f"features_torch_over_ours={r['features torch/ours']:.4g}"
        )
    headline = next((r for r in rows if r["res"] == 64), rows[-1])
    common.final_line("tf_vs_torch", headline["step torch/ours"])
    return 0


if __name__ == "__main__":
    app.run(main)
