"""Typed, validated, frozen configuration: one dataclass per concern.

Scripts build these once from flags (`experiments/train.py`) and pass them
down; library code never reads absl FLAGS. Defaults reproduce the paper
(see docs/DESIGN.md). A resolved `ExperimentConfig` is written to the run
folder as `config.json` and read back on resume to refuse an incompatible
restart.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

from enhancer_gan.errors import ConfigError

# The seven ShapeNet categories of the paper's feature experiments (docs/DESIGN.md#data).
SHAPENET_SYNSETS = {
    "airplane": "02691156",
    "car": "02958343",
    "chair": "03001627",
    "table": "04379243",
    "sofa": "04256520",
    "rifle": "04090263",
    "watercraft": "04530566",
}

# DM's game (TrainConfig.gan_loss): the paper's cross-entropy, or WGAN-GP.
GAN_LOSSES = ("standard", "wgan_gp")

# How GM doubles its grid (ModelConfig.gm_upsample): the paper's transposed
# convolutions; or resize-convolutions (nearest-neighbour x2, then a stride-1
# conv; Odena et al. 2016, against checkerboard artefacts) in every layer, or
# only in the last (the layer that writes the voxels).
GM_UPSAMPLE = ("transpose", "resize", "resize_last")

DATASET_KINDS = ("synthetic", "r2n2", "r2n2_v2", "shapenet_v2", "modelnet", "archive")
# Kinds whose grid files exist at one side only: {kind: (side, what would work instead)}.
# Checked with the model's resolution when the configuration is built, so a
# preset that cannot run fails before anything is written.
FIXED_RESOLUTION_KINDS = {
    "r2n2": (
        32,
        "--dataset=r2n2_v2 (ShapeNetCore v2 voxels or meshes paired with the same "
        "3D-R2N2 renders) or --resolution=32",
    ),
}


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The four networks.

    Attributes:
      resolution: voxel grid side, 64 (paper) or 32 (CPU-sized; GM and DM
        drop their 64-channel layer).
      use_enhancer: False gives the paper's "without enhancer" 3D-GAN
        baseline (z -> Dense -> 4x4x4x512 -> GM, no GE/DE).
      enhancer_layer: i in 1..3: GM is driven by GE's layer-i output (Table 3).
      width_multiplier: scales every layer's channel count (1.0 = paper);
        small values for tests and demos. GM's input stays 4x4x4xC.
      latent_dim: size of z ~ U[-1, 1]^latent_dim.
      image_size: side of GE's images (128 in the paper).
      discriminator_activation: 'leaky_relu' (default, DCGAN/3D-GAN practice)
        or 'relu' (strict reading of the paper).
      leaky_relu_slope: negative slope of LeakyReLU.

    Candidates for DM beyond the paper (docs/DESIGN.md#candidates; all off by
    default, so the paper's DM, its checkpoints and old config.json files are
    unchanged):
      dm_spectral_norm: every conv layer of DM and its Dense heads wrapped in
        `keras.layers.SpectralNormalization` (one power iteration; Miyato et
        al. 2018). Independent of `dm_batch_norm`: SNGAN's discriminator has
        no batch norm, so that recipe is both flags (--dm_spectral_norm
        --nodm_batch_norm); this one flag does only what its name says.
      dm_minibatch_std: ProGAN's minibatch standard deviation (Karras et al.
        2018): one channel appended to DM's last conv output before the
        logits Dense (the conv feature outputs are unchanged).
      dm_rotation_head: a Dense(4) head on DM's flattened last conv output,
        `outputs["rotation_logits"]`: which quarter turn about y the grid had
        (Chen et al. 2019). Trained only with TrainConfig.rotation_weight > 0,
        and required by it.
      dm_batch_norm: batch norm after DM's conv layers 2.. (the paper); False
        drops it and every conv keeps its bias. WGAN-GP needs False.

    For GM beyond the paper (off by default):
      gm_upsample: one of GM_UPSAMPLE. 'transpose' is the paper's GM (4^3
        transposed convs, stride 2); 'resize' makes every layer a
        nearest-neighbour x2 upsampling then a 3^3 stride-1 conv, 'resize_last'
        only the last. Same layer names and widths, so a 'transpose'
        checkpoint is the paper's variable for variable.
    """

    resolution: int = 64
    use_enhancer: bool = True
    enhancer_layer: int = 1
    width_multiplier: float = 1.0
    latent_dim: int = 100
    image_size: int = 128
    discriminator_activation: str = "leaky_relu"
    leaky_relu_slope: float = 0.2
    dm_spectral_norm: bool = False
    dm_minibatch_std: bool = False
    dm_rotation_head: bool = False
    dm_batch_norm: bool = True
    gm_upsample: str = "transpose"

    def __post_init__(self):
        if self.resolution not in (32, 64):
            raise ConfigError(f"resolution must be 32 or 64, got {self.resolution}")
        if self.enhancer_layer not in (1, 2, 3):
            raise ConfigError(f"enhancer_layer must be 1, 2 or 3, got {self.enhancer_layer}")
        if not 0 < self.width_multiplier <= 4:
            raise ConfigError(f"width_multiplier must be in (0, 4], got {self.width_multiplier}")
        if self.latent_dim < 1:
            raise ConfigError(f"latent_dim must be positive, got {self.latent_dim}")
        if self.image_size not in (32, 64, 128):
            raise ConfigError(f"image_size must be 32, 64 or 128, got {self.image_size}")
        if self.gm_upsample not in GM_UPSAMPLE:
            raise ConfigError(f"gm_upsample must be one of {GM_UPSAMPLE}, got {self.gm_upsample!r}")
        if self.discriminator_activation not in ("leaky_relu", "relu"):
            raise ConfigError(
                "discriminator_activation must be 'leaky_relu' or 'relu', "
                f"got {self.discriminator_activation!r}"
            )


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where training pairs (voxel grid, one rendered view) come from.

    Attributes:
      kind: 'synthetic' (built-in procedural shapes, generated on demand into
        `data_dir`), 'r2n2' (ShapeNetVox32 + ShapeNetRendering, 32^3 only),
        'r2n2_v2' (the paper's pairs: ShapeNetCore v2 solid binvox, or its
        meshes voxelized, at 32^3/64^3 + the 3D-R2N2 renders), 'shapenet_v2'
        (ShapeNetCore v2 solid binvox, views rendered by the project),
        'modelnet' (.off meshes, voxelized into a cache, views rendered) or
        'archive' (an .npz voxel archive such as modelnet10_vox32.npz).
      data_dir: root folder (or archive file) of the data set.
      voxel_dir, render_dir: for 'r2n2' / 'r2n2_v2', the voxel root
        (ShapeNetVox32 or ShapeNetCore.v2) and the ShapeNetRendering root when
        they are not `<data_dir>/ShapeNetVox32` (or `<data_dir>/ShapeNetCore.v2`)
        and `<data_dir>/ShapeNetRendering`.
      categories: category names (keys of SHAPENET_SYNSETS for ShapeNet
        kinds; class names for ModelNet/synthetic); empty = all.
      cache_dir: where decoded grids are cached as packed bits ('' = in
        `run_dir/cache` for training).
      split: 'train' or 'test' for ModelNet-style data.
      num_synthetic_per_category: size of the built-in data set.
      views_per_model: views rendered per model for kinds without renders.
    """

    kind: str = "synthetic"
    data_dir: str = ""
    categories: tuple[str, ...] = ()
    cache_dir: str = ""
    split: str = "train"
    num_synthetic_per_category: int = 60
    views_per_model: int = 4
    voxel_dir: str = ""
    render_dir: str = ""

    def __post_init__(self):
        if self.kind not in DATASET_KINDS:
            raise ConfigError(f"dataset kind must be one of {DATASET_KINDS}, got {self.kind!r}")
        if self.split not in ("train", "test"):
            raise ConfigError(f"split must be 'train' or 'test', got {self.split!r}")
        # The built-in data set has the same seven categories as ShapeNet;
        # checking here refuses a typo before the run folder is created.
        if self.kind in ("r2n2", "r2n2_v2", "shapenet_v2", "synthetic"):
            unknown = [c for c in self.categories if c not in SHAPENET_SYNSETS]
            if unknown:
                raise ConfigError(
                    f"unknown ShapeNet categor{'y' if len(unknown) == 1 else 'ies'} "
                    f"{', '.join(unknown)}; known: {', '.join(SHAPENET_SYNSETS)}"
                )
        if (self.voxel_dir or self.render_dir) and self.kind not in ("r2n2", "r2n2_v2"):
            raise ConfigError(
                f"voxel_dir/render_dir are for r2n2 and r2n2_v2 data, not {self.kind}"
            )
        both = self.voxel_dir and self.render_dir
        if self.kind != "synthetic" and not self.data_dir and not both:
            raise ConfigError(
                f"dataset kind {self.kind!r} needs a data_dir"
                + (" (or both voxel_dir and render_dir)" if self.kind.startswith("r2n2") else "")
            )
        if self.num_synthetic_per_category < 1 or self.views_per_model < 1:
            raise ConfigError("num_synthetic_per_category and views_per_model must be positive")
        object.__setattr__(self, "categories", tuple(self.categories))


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """The optimisation.

    Attributes:
      batch_size: global batch (64 in the paper).
      learning_rate, beta1: Adam, one optimiser per network.
      generator_steps_per_discriminator_step: 2 in the paper.
      generator_loss: 'non_saturating' (-log D(G(z))) or 'minimax'
        (log(1 - D(G(z))), the paper's equation).
      num_steps: discriminator steps (= batches) to train for.
      summary_every, checkpoint_every, sample_every: in steps.
      max_checkpoints: how many checkpoints the manager keeps.
      seed: seeds z sampling, data order and weight initialisation.
      mixed_precision: float16 compute (GPU).
      jit_compile: XLA for the train step (slow on CPU, see docs/DESIGN.md#measured).
      num_samples: voxel samples rendered to TensorBoard/sheets.

    Training recipe (docs/RESULTS.md measures each). Every default keeps the
    paper's recipe: one learning rate, every discriminator update applied,
    hard 0/1 labels, no noise, no regulariser.
      discriminator_learning_rate, generator_learning_rate: Adam learning
        rates of DE + DM and of GE + GM (+ the latent projector); 0 = use
        `learning_rate` (3D-GAN used D 1e-5, G 2.5e-3).
      discriminator_gate: skip a discriminator's update when its accuracy on
        the current batch (real and generated halves) is above this value,
        before the update (3D-GAN: 0.8); 1 = never skip (the paper). Each
        discriminator is gated by its own accuracy; skipped updates are
        counted (`gate/*_skipped`).
      instance_noise: std of Gaussian noise added to DM's inputs, real and
        generated alike, annealed linearly to 0 at `instance_noise_steps`
        (0 = at num_steps). Hides the exact-0/1-versus-soft cue early on.
      real_label: DM's and DE's target for real inputs; < 1 is one-sided
        label smoothing (0.9 is common; generated targets stay 0).
      r1_gamma: weight of the R1 penalty gamma/2 E||grad_x D(x_real)||^2 on
        DM (Mescheder et al. 2018); 0 = off.
      discriminator_augment: differentiable augmentation of everything DM
        sees, real and generated alike, in both updates (DiffAugment, Zhao
        et al. 2020): a random shift by up to 1/16 of the side along each
        axis (zero fill) and a random mirror of x and of z (the horizontal
        plane; y is up). DM must then judge shapes, not their exact place.
      generator_ema: decay of an exponential moving average of the
        generators' weights, updated after every step and checkpointed
        (`training.ema`); samples are drawn from the average when it exists.
        0 = off (the paper samples its last iterate).

    Candidates beyond the paper (docs/DESIGN.md#candidates; defaults = the paper):
      rotation_weight: alpha of the self-supervised rotation loss (Chen et al.
        2019): DM's rotation head classifies which of 4 quarter turns about y
        each real grid had (example i turned i mod 4 times: one rotation per
        example, so the batch keeps its size), weight alpha in DM's loss; GM's
        loss adds the same cross-entropy on its rotated samples with weight
        beta = 0.2 alpha (the paper's alpha = 1, beta = 0.2). 0 = off; > 0
        needs ModelConfig.dm_rotation_head.
      gan_loss: DM's game: 'standard' (the paper's cross-entropy) or 'wgan_gp'
        (Gulrajani et al. 2017, as 3D-IWGAN trains it): the critic minimises
        mean D(fake) - mean D(real) + gp_weight * mean (||grad D(x_hat)||_2 - 1)^2,
        x_hat a random interpolate of a real and a generated grid, and GM
        minimises -mean D(fake). DE/GE keep the standard loss. Needs DM
        without batch norm (ModelConfig.dm_batch_norm=False: the penalty is
        per example) and hard labels (real_label=1).
      gp_weight: lambda of the WGAN-GP gradient penalty (10 in the paper).
      voxel_tv_weight: weight of a total-variation penalty on GM's grids in
        GM's loss (`losses.total_variation`: neighbouring voxels' mean absolute
        difference, summed over the axes), against speckle; 0 = off. The
        value itself is logged as `voxel/fake_tv` either way.
      critic_steps: DM updates per step (WGAN-GP: 5); DE still updates once.
        Every critic update uses the same real grids and the same generated
        grids of z0 (fresh augmentation, noise and interpolation draws each
        time), so the data stream and z are those of critic_steps=1.
    """

    batch_size: int = 64
    learning_rate: float = 2e-4
    beta1: float = 0.5
    generator_steps_per_discriminator_step: int = 2
    generator_loss: str = "non_saturating"
    num_steps: int = 100_000
    summary_every: int = 100
    checkpoint_every: int = 1000
    sample_every: int = 1000
    max_checkpoints: int = 3
    seed: int = 0
    mixed_precision: bool = False
    jit_compile: bool = False
    num_samples: int = 16
    discriminator_learning_rate: float = 0.0
    generator_learning_rate: float = 0.0
    discriminator_gate: float = 1.0
    instance_noise: float = 0.0
    instance_noise_steps: int = 0
    real_label: float = 1.0
    r1_gamma: float = 0.0
    discriminator_augment: bool = False
    generator_ema: float = 0.0
    rotation_weight: float = 0.0
    gan_loss: str = "standard"
    gp_weight: float = 10.0
    critic_steps: int = 1
    voxel_tv_weight: float = 0.0

    @property
    def d_learning_rate(self) -> float:
        """The discriminators' Adam learning rate."""
        return self.discriminator_learning_rate or self.learning_rate

    @property
    def g_learning_rate(self) -> float:
        """The generators' Adam learning rate."""
        return self.generator_learning_rate or self.learning_rate

    def __post_init__(self):
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be positive, got {self.batch_size}")
        if self.learning_rate <= 0 or not 0 <= self.beta1 < 1:
            raise ConfigError("learning_rate must be > 0 and beta1 in [0, 1)")
        if self.generator_steps_per_discriminator_step < 1:
            raise ConfigError("generator_steps_per_discriminator_step must be >= 1")
        if self.generator_loss not in ("non_saturating", "minimax"):
            raise ConfigError(
                f"generator_loss must be 'non_saturating' or 'minimax', got {self.generator_loss!r}"
            )
        for name in ("num_steps", "summary_every", "checkpoint_every", "sample_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        if self.max_checkpoints < 1 or self.num_samples < 1:
            raise ConfigError("max_checkpoints and num_samples must be positive")
        if self.discriminator_learning_rate < 0 or self.generator_learning_rate < 0:
            raise ConfigError(
                "discriminator_learning_rate and generator_learning_rate must be >= 0 "
                "(0 = use learning_rate)"
            )
        if not 0.5 <= self.discriminator_gate <= 1.0:
            raise ConfigError(
                f"discriminator_gate must be in [0.5, 1] (1 = never skip), "
                f"got {self.discriminator_gate}"
            )
        if self.instance_noise < 0 or self.instance_noise_steps < 0:
            raise ConfigError("instance_noise and instance_noise_steps must be >= 0")
        if not 0.5 < self.real_label <= 1.0:
            raise ConfigError(f"real_label must be in (0.5, 1], got {self.real_label}")
        if self.r1_gamma < 0:
            raise ConfigError(f"r1_gamma must be >= 0, got {self.r1_gamma}")
        if not 0 <= self.generator_ema < 1:
            raise ConfigError(
                f"generator_ema must be in [0, 1) (0 = off), got {self.generator_ema}"
            )
        if self.rotation_weight < 0:
            raise ConfigError(f"rotation_weight must be >= 0, got {self.rotation_weight}")
        if self.gan_loss not in GAN_LOSSES:
            raise ConfigError(f"gan_loss must be one of {GAN_LOSSES}, got {self.gan_loss!r}")
        if self.gp_weight < 0:
            raise ConfigError(f"gp_weight must be >= 0, got {self.gp_weight}")
        if self.voxel_tv_weight < 0:
            raise ConfigError(f"voxel_tv_weight must be >= 0, got {self.voxel_tv_weight}")
        if self.critic_steps < 1:
            raise ConfigError(f"critic_steps must be >= 1, got {self.critic_steps}")
        if self.gan_loss == "wgan_gp" and self.real_label != 1.0:
            raise ConfigError(
                f"real_label={self.real_label} has no meaning for a WGAN-GP critic; use 1"
            )


def check_compatible(model: ModelConfig, train: TrainConfig) -> None:
    """Refuses a TrainConfig that the ModelConfig's DM cannot train (ConfigError).

    WGAN-GP needs DM without batch norm; a rotation loss needs the rotation
    head, and the head needs the loss (untrained, it would only add weights).
    """
    if train.gan_loss == "wgan_gp" and model.dm_batch_norm:
        raise ConfigError(
            "gan_loss='wgan_gp' needs DM without batch norm "
            "(dm_batch_norm=False, flag --nodm_batch_norm)"
        )
    if (train.rotation_weight > 0) != model.dm_rotation_head:
        raise ConfigError(
            f"rotation_weight={train.rotation_weight} and dm_rotation_head="
            f"{model.dm_rotation_head} disagree: the rotation loss needs DM's rotation "
            "head and the head needs the loss (--rotation_weight > 0 sets both)"
        )


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """Everything a training run needs; written as run_dir/config.json."""

    model: ModelConfig = ModelConfig()
    data: DataConfig = DataConfig()
    train: TrainConfig = TrainConfig()
    run_dir: str = ""

    def __post_init__(self):
        check_compatible(self.model, self.train)
        fixed = FIXED_RESOLUTION_KINDS.get(self.data.kind)
        if fixed and self.model.resolution != fixed[0]:
            raise ConfigError(
                f"dataset {self.data.kind} has {fixed[0]}^3 grids only, the model needs "
                f"{self.model.resolution}^3; use {fixed[1]}"
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ExperimentConfig:
        try:
            return cls(
                model=ModelConfig(**d.get("model", {})),
                data=DataConfig(**d.get("data", {})),
                train=TrainConfig(**d.get("train", {})),
                run_dir=d.get("run_dir", ""),
            )
        except TypeError as e:
            raise ConfigError(f"config has unknown or missing fields: {e}") from None

    @classmethod
    def load(cls, path: str | os.PathLike) -> ExperimentConfig:
        try:
            with open(path) as f:
                d = json.load(f)
        except (OSError, json.JSONDecodeError) as e:
            raise ConfigError(f"{os.fspath(path)}: cannot read config: {e}") from None
        return cls.from_dict(d)


# Settings that may change when a run is resumed (they do not change what the
# checkpoint means); every other difference makes a resume refuse to start.
RESUMABLE_FIELDS = frozenset(
    {
        "train.num_steps",
        "train.summary_every",
        "train.checkpoint_every",
        "train.sample_every",
        "train.max_checkpoints",
        "train.num_samples",
        "train.jit_compile",
        "data.data_dir",
        "data.voxel_dir",
        "data.render_dir",
        "data.cache_dir",
        "run_dir",
    }
)


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = list(v) if isinstance(v, tuple) else v
    return out


def incompatible_fields(old: ExperimentConfig, new: ExperimentConfig) -> list[str]:
    """Names the settings (as 'section.field: old -> new') that forbid a resume."""
    a, b = _flatten(old.to_dict()), _flatten(new.to_dict())
    return [
        f"{k}: {a.get(k)!r} -> {b.get(k)!r}"
        for k in sorted(set(a) | set(b))
        if k not in RESUMABLE_FIELDS and a.get(k) != b.get(k)
    ]
