"""The four networks and the train step in PyTorch (benchmarks only).

`torch_module` translates a functional Keras model of benchmarks/plain_keras.py layer by
layer into a torch.nn.Module and copies its weights, so the architecture is not written
a second time: same kernels, strides, biases and widths; batch norm with Keras's momentum
and epsilon; Reshape and Flatten in Keras's channels-last order; 'same' stride-2 padding
as symmetric padding of the same output shape (Keras pads a kernel-5 layer 1 before and 2
after, so GE and DE are shifted by one pixel; the kernel-4 GM and DM compute what Keras
computes). `TorchStep` is `GanTrainer.train_step` at the paper's recipe. Used by
bench_vs_plain.py --torch (whole steps) and bench_strided.py --torch (layers).
"""

from __future__ import annotations

import math


def torch_module(keras_model):
    """A torch.nn.Module computing a functional Keras model (NC... layout in and out)."""
    import keras
    import torch
    from torch import nn
    from torch.nn import functional as F

    L = keras.layers

    def channels_last(fn):
        return lambda x: fn(x.movedim(1, -1)).movedim(-1, 1)

    def convert(layer, in_shape):
        rank = len(in_shape) - 2
        weights = [w.numpy() for w in layer.weights]
        if isinstance(layer, L.Dense):
            module = nn.Linear(in_shape[-1], layer.units, bias=layer.use_bias)
            weights[0] = weights[0].T
        elif isinstance(layer, (L.Conv2DTranspose, L.Conv3DTranspose, L.Conv2D, L.Conv3D)):
            k, stride, pad = layer.kernel_size[0], layer.strides[0], (layer.kernel_size[0] - 1) // 2
            args = (in_shape[-1], layer.filters, k, stride, pad)
            if (
                "Transpose" in type(layer).__name__
            ):  # Keras kernel [*k, out, in], torch [in, out, *k]
                cls = (nn.ConvTranspose2d, nn.ConvTranspose3d)[rank - 2]
                module = cls(*args, output_padding=stride + 2 * pad - k, bias=layer.use_bias)
            else:  # Keras kernel [*k, in, out], torch [out, in, *k]
                module = (nn.Conv2d, nn.Conv3d)[rank - 2](*args, bias=layer.use_bias)
            weights[0] = weights[0].transpose(rank + 1, rank, *range(rank))
        elif isinstance(layer, L.BatchNormalization):
            cls = nn.BatchNorm2d if rank == 2 else nn.BatchNorm3d
            module = cls(in_shape[-1], eps=layer.epsilon, momentum=1 - layer.momentum)
            gamma, beta, mean, var = weights
            module.running_mean.copy_(torch.from_numpy(mean))
            module.running_var.copy_(torch.from_numpy(var))
            weights = [gamma, beta]
        elif isinstance(layer, L.Reshape):
            target = tuple(layer.target_shape)
            return channels_last(lambda x: x.reshape(x.shape[0], *target))
        elif isinstance(layer, L.Flatten):
            return lambda x: x.movedim(1, -1).flatten(1)
        elif isinstance(layer, L.ReLU):
            return F.relu
        elif isinstance(layer, L.LeakyReLU):
            return lambda x, s=layer.negative_slope: F.leaky_relu(x, s)
        elif isinstance(layer, L.Activation):
            return {"tanh": torch.tanh, "sigmoid": torch.sigmoid}[layer.activation.__name__]
        else:
            raise TypeError(f"no torch translation of {type(layer).__name__} {layer.name}")
        with torch.no_grad():
            for p, w in zip(module.parameters(), weights):
                p.copy_(torch.from_numpy(w.copy()))
        return module

    class Graph(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleDict()
            self.nodes = []  # (name, input tensor ids, output tensor id, function or None)
            for layer in keras_model.layers:
                if isinstance(layer, L.InputLayer):
                    continue
                node = layer._inbound_nodes[0]
                fn = convert(layer, node.input_tensors[0].shape)
                if isinstance(fn, nn.Module):
                    self.layers[layer.name] = fn
                    fn = None
                ins = [id(t) for t in node.input_tensors]
                self.nodes.append((layer.name, ins, id(node.output_tensors[0]), fn))
            self.inputs = [id(t) for t in keras_model.inputs]
            self.outputs = [id(t) for t in keras_model.outputs]

        def forward(self, *inputs):
            env = dict(zip(self.inputs, inputs))
            for name, ins, out, fn in self.nodes:
                env[out] = (fn or self.layers[name])(*(env[i] for i in ins))
            outs = [env[o] for o in self.outputs]
            return outs if len(outs) > 1 else outs[0]

    return Graph()


def torch_pooled_features(outs):
    """The project's feature: each map max-pooled to 4^3 ('SAME' padding), concatenated."""
    import torch
    from torch.nn import functional as F

    from enhancer_gan.evaluation.features import pool_geometry

    parts = []
    for x in outs:
        kernel, stride = pool_geometry(x.shape[-1])
        total = max(3 * stride + kernel - x.shape[-1], 0)
        x = F.pad(x, (total // 2, total - total // 2) * 3, value=-math.inf)
        # Channels-last flattening order, as the project's features.
        parts.append(F.max_pool3d(x, kernel, stride).permute(0, 2, 3, 4, 1).flatten(1))
    return torch.cat(parts, 1)


class TorchStep:
    """The project's train step in PyTorch: 1 D update (DE+DM), 2 G updates (GE+GM).

    One Adam per network (lr 2e-4, beta1 0.5, epsilon 1e-7 as Keras), gradients
    only of the networks being updated (torch.autograd.grad, as TensorFlow
    prunes the rest). `memory_format`: 'channels_last' (channels_last(_3d)
    for the 2D / 3D networks) or 'contiguous'.
    """

    def __init__(self, nets, generator_steps: int = 2, memory_format: str = "channels_last"):
        import torch

        self.torch, self.nets, self.n_g = torch, nets, generator_steps
        self.channels_last = memory_format == "channels_last"
        for name, net in nets.items():
            net.to(memory_format=self._layout(4 if name.startswith("enhancer") else 5))
        self.opt = {
            n: torch.optim.Adam(net.parameters(), lr=2e-4, betas=(0.5, 0.999), eps=1e-7)
            for n, net in nets.items()
        }

    def _layout(self, dim: int):
        torch = self.torch
        if not self.channels_last:
            return torch.contiguous_format
        return torch.channels_last if dim == 4 else torch.channels_last_3d

    def tensor(self, x):
        """numpy channels-last [B, ..., C] -> float32 torch [B, C, ...] in this step's layout."""
        t = self.torch.from_numpy(x).movedim(-1, 1).float()
        return t.contiguous(memory_format=self._layout(t.dim()))

    def inputs(self, voxels, images, z):
        """numpy [B,R,R,R,1] uint8, [B,S,S,3], [B,3,L] -> torch tensors in this layout."""
        return self.tensor(voxels), self.tensor(images), self.torch.from_numpy(z)

    def _update(self, names, loss):
        params = [p for n in names for p in self.nets[n].parameters()]
        for p, g in zip(params, self.torch.autograd.grad(loss, params)):
            p.grad = g
        for n in names:
            self.opt[n].step()

    def generate(self, z):
        volume, image = self.nets["enhancer_generator"](z)
        return self.nets["voxel_generator"](volume), image

    def __call__(self, voxels, images, z) -> float:
        sp = self.torch.nn.functional.softplus
        de, dm = self.nets["enhancer_discriminator"], self.nets["voxel_discriminator"]
        with self.torch.no_grad():
            fake_v, fake_im = self.generate(z[:, 0])
        d_loss = (
            sp(-dm(voxels)[-1]).mean()
            + sp(dm(fake_v)[-1]).mean()
            + sp(-de(images)).mean()
            + sp(de(fake_im)).mean()
        )
        self._update(("enhancer_discriminator", "voxel_discriminator"), d_loss)
        for k in range(self.n_g):
            v, im = self.generate(z[:, 1 + k])
            g_loss = sp(-dm(v)[-1]).mean() + sp(-de(im)).mean()
            self._update(("enhancer_generator", "voxel_generator"), g_loss)
            (v.detach() > 0.5).float().mean()  # the project's step reports the occupancy
        return float(d_loss.detach())
