"""Tests of the analytic cost model (enhancer_gan.models.flops)."""

import keras
import tensorflow as tf
from absl.testing import parameterized

from enhancer_gan.config import ModelConfig
from enhancer_gan.errors import ConfigError
from enhancer_gan.models import build_networks
from enhancer_gan.models.flops import forward_macs, layer_macs, train_step_flops


def _built(layer, input_shape):
    layer.build((1, *input_shape))
    return layer


class LayerMacsTest(tf.test.TestCase, parameterized.TestCase):
    """Per-layer counts against values worked out by hand."""

    def test_dense(self):
        self.assertEqual(layer_macs(_built(keras.layers.Dense(7), (100,))), 700)
        # On a [B, 3, 5, 100] input the Dense runs at 15 positions.
        self.assertEqual(layer_macs(_built(keras.layers.Dense(7), (3, 5, 100))), 15 * 700)

    def test_conv3d_counts_output_positions(self):
        conv = keras.layers.Conv3D(6, 4, strides=2, padding="same")
        # 8^3 -> 4^3 outputs, each 4^3 * 2 * 6 MACs.
        self.assertEqual(layer_macs(_built(conv, (8, 8, 8, 2))), 4**3 * 4**3 * 2 * 6)

    def test_conv2d_valid_padding(self):
        conv = keras.layers.Conv2D(4, 3, padding="valid")
        self.assertEqual(layer_macs(_built(conv, (10, 10, 2))), 8 * 8 * 9 * 2 * 4)

    def test_transposed_conv_counts_input_positions(self):
        deconv = keras.layers.Conv2DTranspose(3, 5, strides=2, padding="same")
        # 4x4 inputs, each scattering a 5x5x2x3 kernel.
        self.assertEqual(layer_macs(_built(deconv, (4, 4, 2))), 16 * 25 * 2 * 3)
        deconv3d = keras.layers.Conv3DTranspose(1, 4, strides=2, padding="same")
        self.assertEqual(layer_macs(_built(deconv3d, (2, 2, 2, 5))), 8 * 64 * 5)

    def test_free_layers(self):
        self.assertEqual(layer_macs(_built(keras.layers.BatchNormalization(), (4, 4))), 0)
        self.assertEqual(layer_macs(keras.layers.Flatten()), 0)

    def test_unbuilt_layer_raises(self):
        with self.assertRaisesRegex(ConfigError, "not built"):
            layer_macs(keras.layers.Dense(3, name="lonely"))

    def test_unknown_weighted_layer_raises(self):
        embedding = _built(keras.layers.Embedding(10, 4), (3,))
        with self.assertRaisesRegex(ConfigError, "Embedding"):
            layer_macs(embedding)


class NetworkMacsTest(tf.test.TestCase):
    """The paper-sized networks against docs/DESIGN.md#cost."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.config = ModelConfig()
        cls.nets = build_networks(cls.config)
        cls.costs = train_step_flops(cls.config, cls.nets)

    def test_forward_macs_match_spec_within_1_percent(self):
        spec = {
            "voxel_generator": 3.89e9,
            "voxel_discriminator": 3.89e9,
            "enhancer_generator": 3.40e9,
            "enhancer_discriminator": 0.65e9,
        }
        for name, expected in spec.items():
            self.assertAllClose(self.costs[name], expected, rtol=0.01, msg=name)

    def test_forward_macs_exact(self):
        # By hand from the layer table (docs/DESIGN.md#networks), per layer
        # positions x kernel volume x c_in x c_out; a transposed convolution
        # scatters one kernel per INPUT position, a convolution gathers one
        # per OUTPUT position.
        gm = (
            4**3 * 4**3 * 512 * 256  # 4^3 inputs -> 8^3 x 256
            + 8**3 * 4**3 * 256 * 128  # -> 16^3 x 128
            + 16**3 * 4**3 * 128 * 64  # -> 32^3 x 64
            + 32**3 * 4**3 * 64 * 1  # -> 64^3 x 1
        )
        dm = (
            32**3 * 4**3 * 1 * 64  # 64^3 -> 32^3 x 64
            + 16**3 * 4**3 * 64 * 128
            + 8**3 * 4**3 * 128 * 256
            + 4**3 * 4**3 * 256 * 512
            + 4**3 * 512  # Dense -> 1 logit
        )
        ge = 100 * 4 * 4 * 2048 + sum(
            side**2 * 25 * c_in * c_out
            for side, c_in, c_out in ((4, 2048, 1024), (8, 1024, 512), (16, 512, 256))
        )
        ge += 32**2 * 25 * 256 * 128 + 64**2 * 25 * 128 * 3
        de = sum(
            side**2 * 25 * c_in * c_out
            for side, c_in, c_out in ((64, 3, 64), (32, 64, 128), (16, 128, 256), (8, 256, 512))
        )
        de += 8 * 8 * 512
        self.assertEqual(forward_macs(self.nets.voxel_generator), gm)
        self.assertEqual(forward_macs(self.nets.voxel_discriminator), dm)
        self.assertEqual(forward_macs(self.nets.enhancer_generator), ge)
        self.assertEqual(forward_macs(self.nets.enhancer_discriminator), de)

    def test_train_step_formula(self):
        c = self.costs
        f_g = c["enhancer_generator"] + c["voxel_generator"]
        f_d = c["enhancer_discriminator"] + c["voxel_discriminator"]
        self.assertEqual(c["generator_forward_macs"], f_g)
        self.assertEqual(c["discriminator_forward_macs"], f_d)
        self.assertEqual(c["train_step_macs"], 7 * f_g + 12 * f_d)
        self.assertEqual(c["train_step_flops"], 2 * c["train_step_macs"])
        self.assertEqual(
            c["train_step_flops"],
            c["discriminator_update_flops"] + 2 * c["generator_update_flops"],
        )
        # docs/DESIGN.md#cost: about 211 GFLOP per sample, ~13.5 TFLOP per 64.
        self.assertAllClose(c["train_step_flops"], 211.05e9, rtol=1e-3)
        self.assertAllClose(64 * c["train_step_flops"], 13.5e12, rtol=0.01)

    def test_generator_steps(self):
        one = train_step_flops(self.config, self.nets, generator_steps=1)
        self.assertEqual(
            self.costs["train_step_flops"] - one["train_step_flops"],
            self.costs["generator_update_flops"],
        )
        with self.assertRaisesRegex(ConfigError, "generator_steps"):
            train_step_flops(self.config, self.nets, generator_steps=0)

    def test_mismatched_networks_raise(self):
        with self.assertRaisesRegex(ConfigError, "different ModelConfig"):
            train_step_flops(ModelConfig(resolution=32), self.nets)


class ConfigVariantsTest(tf.test.TestCase):
    def test_no_enhancer(self):
        config = ModelConfig(use_enhancer=False, width_multiplier=0.25)
        costs = train_step_flops(config)
        self.assertNotIn("enhancer_generator", costs)
        self.assertNotIn("enhancer_discriminator", costs)
        self.assertEqual(costs["latent_projector"], 100 * 4**3 * 128)
        self.assertEqual(
            costs["generator_forward_macs"], costs["latent_projector"] + costs["voxel_generator"]
        )
        self.assertEqual(costs["discriminator_forward_macs"], costs["voxel_discriminator"])

    def test_resolution_32_drops_a_layer(self):
        full = train_step_flops(ModelConfig(width_multiplier=0.25, image_size=32))
        small = train_step_flops(ModelConfig(width_multiplier=0.25, image_size=32, resolution=32))
        # GM at 32 is GM at 64 without its last two layers' cost, plus a
        # 128 -> 1 output layer at 16^3 inputs.
        c = 0.25
        gm32 = 64 * 64 * (512 * c) * (256 * c) + 512 * 64 * (256 * c) * (128 * c)
        gm32 += 4096 * 64 * (128 * c)
        self.assertEqual(small["voxel_generator"], gm32)
        self.assertLess(small["voxel_discriminator"], full["voxel_discriminator"])
        self.assertEqual(small["enhancer_generator"], full["enhancer_generator"])


class ProfilerAgreementTest(tf.test.TestCase):
    """The counts against TensorFlow's own graph profiler, an independent count.

    The profiler counts 2 FLOPs per MAC of Conv2D, Conv3D, MatMul and
    Conv2DBackpropInput (a Conv2DTranspose) from the traced graph's shapes,
    plus the small element-wise ops (bias, batch norm, activations), so its
    total lies at or a little above 2 x our MACs. It does not count
    Conv3DBackpropInput, so GM's transposed convolutions are checked against
    the convolution they are the transpose of (same kernel, channels swapped,
    run on the transposed convolution's output): the same products.
    """

    @staticmethod
    def _profiled_flops(fn, spec) -> int:
        from tensorflow.python.profiler import model_analyzer, option_builder

        graph = tf.function(fn).get_concrete_function(spec).graph
        options = option_builder.ProfileOptionBuilder.float_operation()
        options["output"] = "none"
        return model_analyzer.profile(graph, options=options).total_float_ops

    def test_networks_agree_with_the_profiler(self):
        config = ModelConfig(resolution=32, width_multiplier=1 / 16, image_size=32)
        nets = build_networks(config)
        inputs = {
            "voxel_discriminator": (1, 32, 32, 32, 1),
            "enhancer_generator": (1, 100),
            "enhancer_discriminator": (1, 32, 32, 3),
        }
        for name, shape in inputs.items():
            model = getattr(nets, name)
            profiled = self._profiled_flops(
                lambda x, model=model: model(x, training=False), tf.TensorSpec(shape, tf.float32)
            )
            ours = 2 * forward_macs(model)
            self.assertBetween(profiled / ours, 1.0, 1.01, msg=name)

    def test_transposed_convolutions_agree_with_their_adjoint_convolutions(self):
        config = ModelConfig(resolution=32, width_multiplier=1 / 16, image_size=32)
        gm = build_networks(config).voxel_generator
        deconvs = [layer for layer in gm.layers if isinstance(layer, keras.layers.Conv3DTranspose)]
        self.assertLen(deconvs, 3)
        for deconv in deconvs:
            in_shape = deconv.get_build_config()["input_shape"]
            out_shape = deconv.compute_output_shape(in_shape)
            conv = keras.layers.Conv3D(in_shape[-1], deconv.kernel_size, strides=2, padding="same")
            spec = tf.TensorSpec((1, *out_shape[1:]), tf.float32)
            conv.build(spec.shape)
            profiled = self._profiled_flops(conv, spec)
            self.assertEqual(conv.compute_output_shape(spec.shape)[1:], tuple(in_shape[1:]))
            self.assertBetween(profiled / (2 * layer_macs(deconv)), 1.0, 1.01, msg=deconv.name)
