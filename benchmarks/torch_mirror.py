"""The PyTorch mirror of the four networks and the train step (benchmarks only).

`torch_networks(model_config)` builds GE, DE, GM and DM as torch.nn.Modules
with the project's layer shapes; `TorchStep` is the project's train step in
PyTorch; `torch_pooled_features` is the shape feature. Used by
bench_vs_pytorch.py (whole steps) and bench_layers_vs_pytorch.py (layer by
layer); see bench_vs_pytorch.py's docstring for what is mirrored and how.
"""

from __future__ import annotations

import math


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
