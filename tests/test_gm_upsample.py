"""GM's upsampling option beyond the paper (issue 18, speckle): `gm_upsample`
'transpose' is the paper's GM variable for variable; 'resize' and 'resize_last'
replace the transposed convs by nearest-neighbour x2 + a 3^3 conv."""

import dataclasses
import json
import pathlib

import keras
import numpy as np
import pytest

from enhancer_gan.config import ExperimentConfig, ModelConfig
from enhancer_gan.data.pipeline import make_pair_dataset
from enhancer_gan.errors import ConfigError
from enhancer_gan.models import build_networks
from enhancer_gan.models.voxel import RESIZE_KERNEL, VOXEL_KERNEL, VoxelGenerator
from enhancer_gan.training.trainer import GanTrainer
from tests.helpers import tiny_model_config, tiny_source, tiny_train_config, train_dry_run

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _gm(resolution=32, **kw):
    config = tiny_model_config(use_enhancer=False, resolution=resolution, **kw)
    return build_networks(config).voxel_generator


def _convs(gm):
    names = [f"deconv{k}" for k in range(1, gm.num_hidden + 1)] + ["to_voxels"]
    return [getattr(gm, name) for name in names]


def _paths(gm):
    return [v.path.split("/", 1)[1] for v in gm.weights]


def test_default_is_the_papers_transposed_gm_and_old_configs_load():
    assert ModelConfig().gm_upsample == "transpose"
    gm = _gm()
    for conv in _convs(gm):
        assert isinstance(conv, keras.layers.Conv3DTranspose)
        assert conv.strides == (2, 2, 2) and conv.kernel_size == (VOXEL_KERNEL,) * 3
    assert gm.up_voxels is None and all(getattr(gm, f"up{k}") is None for k in (1, 2))
    old = ExperimentConfig().to_dict()
    del old["model"]["gm_upsample"]
    assert ExperimentConfig.from_dict(json.loads(json.dumps(old))) == ExperimentConfig()


@pytest.mark.parametrize("mode, resized", [("resize", (1, 1, 1)), ("resize_last", (0, 0, 1))])
def test_resize_modes_replace_exactly_the_layers_they_name(mode, resized):
    gm, paper = _gm(gm_upsample=mode), _gm()
    ups = [getattr(gm, f"up{k}") for k in (1, 2)] + [gm.up_voxels]
    for conv, up, resize in zip(_convs(gm), ups, resized):
        if resize:
            assert isinstance(up, keras.layers.UpSampling3D) and up.size == (2, 2, 2)
            assert type(conv) is keras.layers.Conv3D and conv.strides == (1, 1, 1)
            assert conv.kernel_size == (RESIZE_KERNEL,) * 3 and conv.padding == "same"
        else:
            assert up is None and isinstance(conv, keras.layers.Conv3DTranspose)
    # The same variables by name and count (checkpoint-compatible names),
    # the same widths; only the kernels' spatial size differs.
    assert _paths(gm) == _paths(paper)
    assert [c.filters for c in _convs(gm)] == [c.filters for c in _convs(paper)]


@pytest.mark.parametrize("mode", ["resize", "resize_last"])
@pytest.mark.parametrize("resolution", [32, 64])
def test_resize_gm_writes_a_full_grid_in_0_1(mode, resolution):
    gm = _gm(resolution, gm_upsample=mode)
    x = np.random.default_rng(0).normal(size=(2, 4, 4, 4, gm.input_channels)).astype("float32")
    out = np.asarray(gm(x, training=False))
    assert out.shape == (2, resolution, resolution, resolution, 1)
    assert np.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
    # Not a constant grid: the input reaches every output voxel's neighbourhood.
    assert out.std() > 0


def test_resize_last_output_is_a_conv_of_the_nearest_upsampled_features():
    """The last layer sees each 16^3 feature voxel copied to a 2^3 block: with
    a 1^3-like kernel (only the centre tap non-zero) every 2^3 block is constant."""
    gm = _gm(gm_upsample="resize_last")
    x = np.random.default_rng(1).normal(size=(1, 4, 4, 4, gm.input_channels)).astype("float32")
    gm(x)
    kernel = np.zeros(gm.to_voxels.kernel.shape, "float32")
    kernel[1, 1, 1] = np.random.default_rng(2).normal(size=kernel.shape[3:])
    gm.to_voxels.kernel.assign(kernel)
    out = np.asarray(gm(x))[0, ..., 0]
    blocks = out.reshape(16, 2, 16, 2, 16, 2)
    np.testing.assert_allclose(
        blocks, blocks[:, :1, :, :1, :, :1].repeat(2, 1).repeat(2, 3).repeat(2, 5), atol=1e-6
    )
    assert out.std() > 0


def test_bad_value_is_refused():
    with pytest.raises(ConfigError, match="gm_upsample must be one of"):
        ModelConfig(gm_upsample="bilinear")


def test_serialized_gm_keeps_the_mode():
    gm = _gm(gm_upsample="resize")
    again = VoxelGenerator.from_config(gm.get_config())
    assert again.model_config.gm_upsample == "resize"


def test_resize_gm_trains(tmp_path):
    trainer = GanTrainer(
        tiny_model_config(use_enhancer=False, gm_upsample="resize"), tiny_train_config()
    )
    gm = trainer.networks.voxel_generator
    source, _ = tiny_source(str(tmp_path), n=4, res=32, views=2)
    batch = next(iter(make_pair_dataset(source, 2, image_size=32)))
    before = [v.numpy().copy() for v in gm.trainable_variables]
    out = trainer.train_step(batch)
    assert all(np.isfinite(float(v)) for v in out.values())
    after = gm.trainable_variables
    assert all(not np.array_equal(a, v.numpy()) for a, v in zip(before, after))


def test_flag_reaches_the_config():
    result = train_dry_run("--gm_upsample=resize_last")
    assert result.returncode == 0, result.stderr
    config = ExperimentConfig.from_dict(json.loads(result.stdout))
    assert dataclasses.asdict(config.model) == {
        **dataclasses.asdict(ModelConfig()),
        "gm_upsample": "resize_last",
    }
