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
import statistics
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


# -- the PyTorch mirror -------------------------------------------------------


def torch_networks(model_config):
    """GE, DE, GM, DM as torch.nn.Modules with the project's layer shapes.

    Widths come from the project's own width rules (the same functions the
    Keras models call); every layer, kernel, stride and bias is written out
    here again.
    """
    import torch
    from torch import nn
    from torch.nn import functional as F

    from enhancer_gan.models.enhancer import (
        DE_WIDTHS,
        FIRST_SIDE,
        enhancer_hidden_channels,
    )
    from enhancer_gan.models.voxel import (
        _dm_paper_widths,
        _gm_widths,
        channels,
        voxel_input_channels,
    )

    cfg = model_config
    slope = cfg.leaky_relu_slope

    def act_d(x):
        if cfg.discriminator_activation == "relu":
            return F.relu(x)
        return F.leaky_relu(x, slope)

    def bn2(c):
        return nn.BatchNorm2d(c, eps=1e-3, momentum=0.01)

    def bn3(c):
        return nn.BatchNorm3d(c, eps=1e-3, momentum=0.01)

    def init(module):
        for m in module.modules():
            if isinstance(m, (nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.ConvTranspose3d)):
                nn.init.normal_(m.weight, 0.0, 0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm3d)):
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)
        return module

    class GE(nn.Module):
        """z -> Dense -> 4x4xch1 + BN + ReLU -> ConvT2D k5 s2 (+BN+ReLU) ... -> tanh image."""

        def __init__(self):
            super().__init__()
            widths = enhancer_hidden_channels(cfg)
            self.widths = widths
            self.dense1 = nn.Linear(cfg.latent_dim, FIRST_SIDE * FIRST_SIDE * widths[0], bias=False)
            self.bns = nn.ModuleList([bn2(w) for w in widths])
            self.deconvs = nn.ModuleList(
                nn.ConvTranspose2d(
                    widths[k - 1], widths[k], 5, 2, padding=2, output_padding=1, bias=False
                )
                for k in range(1, len(widths))
            )
            self.to_image = nn.ConvTranspose2d(widths[-1], 3, 5, 2, padding=2, output_padding=1)
            self.c = voxel_input_channels(cfg)

        def forward(self, z):
            # Keras reshapes the Dense output channels-last: [B, 4, 4, ch1].
            x = self.dense1(z).view(-1, FIRST_SIDE, FIRST_SIDE, self.widths[0])
            x = x.permute(0, 3, 1, 2)
            x = F.relu(self.bns[0](x))
            layer1 = x
            for deconv, bn in zip(self.deconvs, self.bns[1:]):
                x = F.relu(bn(deconv(x)))
            image = torch.tanh(self.to_image(x))
            return layer1, image

        def voxel_features(self, layer1):
            # Keras: [B, 4, 4, 4C] row-major -> [B, 4, 4, 4, C]; here NC(DHW).
            b = layer1.shape[0]
            x = layer1.permute(0, 2, 3, 1).reshape(b, FIRST_SIDE, FIRST_SIDE, FIRST_SIDE, self.c)
            return x.permute(0, 4, 1, 2, 3)

    class DE(nn.Module):
        """image -> Conv2D k5 s2 64, 128, 256, 512 (BN from the 2nd) -> Dense -> logit."""

        def __init__(self):
            super().__init__()
            widths = [channels(w, cfg) for w in DE_WIDTHS]
            ins = [3, *widths[:-1]]
            self.convs = nn.ModuleList(
                nn.Conv2d(i, o, 5, 2, padding=2, bias=(k == 0))
                for k, (i, o) in enumerate(zip(ins, widths))
            )
            self.bns = nn.ModuleList([bn2(w) for w in widths[1:]])
            side = cfg.image_size // 2 ** len(widths)
            self.logits = nn.Linear(side * side * widths[-1], 1)

        def forward(self, image):
            x = image
            for k, conv in enumerate(self.convs):
                x = conv(x)
                if k > 0:
                    x = self.bns[k - 1](x)
                x = act_d(x)
            return self.logits(torch.flatten(x, 1))

    class GM(nn.Module):
        """[B, C, 4, 4, 4] -> ConvT3D k4 s2 256, 128, (64) + BN + ReLU -> ConvT3D 1 -> sigmoid."""

        def __init__(self):
            super().__init__()
            widths = _gm_widths(cfg)
            ins = [voxel_input_channels(cfg), *widths[:-1]]
            self.deconvs = nn.ModuleList(
                nn.ConvTranspose3d(i, o, 4, 2, padding=1, bias=False) for i, o in zip(ins, widths)
            )
            self.bns = nn.ModuleList([bn3(w) for w in widths])
            self.to_voxels = nn.ConvTranspose3d(widths[-1], 1, 4, 2, padding=1)

        def forward(self, x):
            for deconv, bn in zip(self.deconvs, self.bns):
                x = F.relu(bn(deconv(x)))
            return torch.sigmoid(self.to_voxels(x))

    class DM(nn.Module):
        """grid -> Conv3D k4 s2 (64), 128, 256, 512 (BN from the 2nd) -> Dense -> logit."""

        def __init__(self):
            super().__init__()
            widths = [channels(w, cfg) for w in _dm_paper_widths(cfg)]
            ins = [1, *widths[:-1]]
            self.convs = nn.ModuleList(
                nn.Conv3d(i, o, 4, 2, padding=1, bias=(k == 0))
                for k, (i, o) in enumerate(zip(ins, widths))
            )
            self.bns = nn.ModuleList([bn3(w) for w in widths[1:]])
            self.logits = nn.Linear(4**3 * widths[-1], 1)

        def forward(self, x, features=False):
            outs = []
            for k, conv in enumerate(self.convs):
                x = conv(x)
                if k > 0:
                    x = self.bns[k - 1](x)
                x = act_d(x)
                outs.append(x)
            if features:
                return outs[-3:]
            return self.logits(torch.flatten(x, 1))

    torch.manual_seed(0)
    return {
        "enhancer_generator": init(GE()),
        "enhancer_discriminator": init(DE()),
        "voxel_generator": init(GM()),
        "voxel_discriminator": init(DM()),
    }


def torch_pooled_features(outs):
    """The project's feature: each map max-pooled to 4^3 ('SAME' padding), concatenated."""
    import torch
    from torch.nn import functional as F

    from enhancer_gan.evaluation.features import pool_geometry

    parts = []
    for x in outs:
        side = x.shape[-1]
        kernel, stride = pool_geometry(side)
        total = max((4 - 1) * stride + kernel - side, 0)
        lo, hi = total // 2, total - total // 2
        x = F.pad(x, (lo, hi) * 3, value=-math.inf)
        # Channels-last flattening order, as the project's features.
        parts.append(F.max_pool3d(x, kernel, stride).permute(0, 2, 3, 4, 1).flatten(1))
    return torch.cat(parts, 1)


class TorchStep:
    """The project's train step in PyTorch: 1 D update (DE+DM), 2 G updates (GE+GM)."""

    def __init__(self, nets, generator_steps: int = 2):
        import torch

        self.torch = torch
        self.nets = nets
        self.n_g = generator_steps
        self.opt = {
            name: torch.optim.Adam(net.parameters(), lr=2e-4, betas=(0.5, 0.999), eps=1e-7)
            for name, net in nets.items()
        }
        self.memory_format = "contiguous"

    def set_memory_format(self, fmt: str):
        torch = self.torch
        self.memory_format = fmt
        cl = fmt == "channels_last"
        for name, net in self.nets.items():
            if name.startswith("enhancer"):
                mf = torch.channels_last if cl else torch.contiguous_format
            else:
                mf = torch.channels_last_3d if cl else torch.contiguous_format
            net.to(memory_format=mf)
        # Adam's state follows its parameters' layout (empty_like).
        for opt in self.opt.values():
            for state in opt.state.values():
                for k, v in list(state.items()):
                    if torch.is_tensor(v) and v.dim() >= 4:
                        state[k] = v.contiguous(
                            memory_format=(
                                (torch.channels_last if v.dim() == 4 else torch.channels_last_3d)
                                if cl
                                else torch.contiguous_format
                            )
                        )

    def inputs(self, voxels, images, z):
        """numpy [B,R,R,R,1] uint8, [B,S,S,3], [B,3,L] -> torch tensors in this layout."""
        torch = self.torch
        v = torch.from_numpy(voxels).float().permute(0, 4, 1, 2, 3)
        im = torch.from_numpy(images).permute(0, 3, 1, 2)
        if self.memory_format == "channels_last":
            v = v.contiguous(memory_format=torch.channels_last_3d)
            im = im.contiguous(memory_format=torch.channels_last)
        else:
            v, im = v.contiguous(), im.contiguous()
        return v, im, torch.from_numpy(z)

    def _update(self, names, loss):
        params = [p for n in names for p in self.nets[n].parameters()]
        grads = self.torch.autograd.grad(loss, params)
        for p, g in zip(params, grads):
            p.grad = g
        for n in names:
            self.opt[n].step()

    def generate(self, z):
        ge, gm = self.nets["enhancer_generator"], self.nets["voxel_generator"]
        layer1, image = ge(z)
        x = ge.voxel_features(layer1)
        if self.memory_format == "channels_last":
            x = x.contiguous(memory_format=self.torch.channels_last_3d)
        return gm(x), image

    def __call__(self, voxels, images, z) -> float:
        torch = self.torch
        F = torch.nn.functional
        de, dm = self.nets["enhancer_discriminator"], self.nets["voxel_discriminator"]
        for net in self.nets.values():
            net.train()
        with torch.no_grad():
            fake_v, fake_im = self.generate(z[:, 0])
        d_loss = (
            F.softplus(-dm(voxels)).mean()
            + F.softplus(dm(fake_v)).mean()
            + F.softplus(-de(images)).mean()
            + F.softplus(de(fake_im)).mean()
        )
        self._update(("enhancer_discriminator", "voxel_discriminator"), d_loss)
        for k in range(self.n_g):
            v, im = self.generate(z[:, 1 + k])
            g_loss = F.softplus(-dm(v)).mean() + F.softplus(-de(im)).mean()
            self._update(("enhancer_generator", "voxel_generator"), g_loss)
            # The project's step also reports the generated occupancy.
            (v.detach() > 0.5).float().mean()
        return float(d_loss.detach())


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


def interleaved(fns: dict, repeats: int) -> dict:
    """Calls each fn in turn, `repeats` rounds; wall times per name."""
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


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
    times = interleaved({"ours": ours, "torch": theirs}, repeats)

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
    ftimes = interleaved({"ours": ours_features, "torch": torch_features}, repeats)

    med = {k: statistics.median(v) for k, v in times.items()}
    fmed = {k: statistics.median(v) for k, v in ftimes.items()}
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
