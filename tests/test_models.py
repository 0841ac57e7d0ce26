"""Tests of the four networks, the latent projector and their wiring.

Full-size networks are only built (weights created by a symbolic call) and
checked for parameter counts and output shapes; real forward passes run on a
tiny config (resolution 32, width 1/16) through the same code.
"""

import json

import keras
import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from enhancer_gan.config import ModelConfig
from enhancer_gan.errors import ConfigError
from enhancer_gan.models import (
    EnhancerDiscriminator,
    EnhancerGenerator,
    LatentProjector,
    VoxelDiscriminator,
    VoxelGenerator,
    build_networks,
    generate_voxels,
    voxel_input_channels,
)
from enhancer_gan.models.enhancer import enhancer_hidden_channels

TINY = ModelConfig(resolution=32, width_multiplier=1 / 16, image_size=32)
CLASSES = (
    EnhancerGenerator,
    EnhancerDiscriminator,
    LatentProjector,
    VoxelGenerator,
    VoxelDiscriminator,
)


def _input_shape(cls, config):
    """The per-sample input shape of a network class under `config`."""
    r, s = config.resolution, config.image_size
    return {
        EnhancerGenerator: (config.latent_dim,),
        LatentProjector: (config.latent_dim,),
        EnhancerDiscriminator: (s, s, 3),
        VoxelGenerator: (4, 4, 4, voxel_input_channels(config)),
        VoxelDiscriminator: (r, r, r, 1),
    }[cls]


def _symbolic(model, input_shape, batch=1):
    """Output shapes of a symbolic call (builds weights, computes nothing)."""
    out = model(keras.KerasTensor((batch, *input_shape)))
    if isinstance(out, dict):
        return {k: tuple(v.shape) for k, v in out.items()}
    return tuple(out.shape)


def _counts(model):
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    return trainable, model.count_params()


def _z(batch, config, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, (batch, config.latent_dim)).astype(np.float32)


class FullSizeTest(tf.test.TestCase, parameterized.TestCase):
    """The paper-sized networks: exact parameter counts and output shapes."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        keras.utils.set_random_seed(0)
        cls.nets = build_networks(ModelConfig())

    def test_parameter_counts_resolution_64(self):
        # (trainable, total): totals add BN moving mean/variance. docs/DESIGN.md#networks:
        # GE about 72.9 M, DE 4.3 M, GM 11.0 M, DM 11.0 M.
        self.assertEqual(_counts(self.nets.enhancer_generator), (72_926_339, 72_934_275))
        self.assertEqual(_counts(self.nets.enhancer_discriminator), (4_340_225, 4_342_017))
        self.assertEqual(_counts(self.nets.voxel_generator), (11_015_041, 11_015_937))
        self.assertEqual(_counts(self.nets.voxel_discriminator), (11_048_769, 11_050_561))
        self.assertIsNone(self.nets.latent_projector)

    def test_parameter_counts_resolution_32(self):
        config = ModelConfig(resolution=32)
        gm, dm = VoxelGenerator(config), VoxelDiscriminator(config)
        _symbolic(gm, _input_shape(VoxelGenerator, config))
        _symbolic(dm, _input_shape(VoxelDiscriminator, config))
        self.assertEqual(_counts(gm), (10_494_721, 10_495_489))
        self.assertEqual(_counts(dm), (10_528_385, 10_529_921))

    def test_latent_projector_parameter_count(self):
        projector = LatentProjector(ModelConfig(use_enhancer=False))
        _symbolic(projector, (100,))
        # Dense 100 -> 32,768 without bias, BN over 512 channels.
        self.assertEqual(_counts(projector), (3_277_824, 3_278_848))

    def test_dcgan_initialisation(self):
        kernel = self.nets.enhancer_generator.deconv2.kernel.numpy()
        self.assertAllClose(kernel.mean(), 0.0, atol=1e-3)
        self.assertAllClose(kernel.std(), 0.02, rtol=0.01)
        gammas = np.concatenate(
            [
                layer.gamma.numpy()
                for net in (self.nets.enhancer_generator, self.nets.voxel_generator)
                for layer in net.layers
                if isinstance(layer, keras.layers.BatchNormalization)
            ]
        )
        self.assertAllClose(gammas.mean(), 1.0, atol=2e-3)
        self.assertAllClose(gammas.std(), 0.02, rtol=0.1)

    def test_only_layers_without_batch_norm_have_biases(self):
        with_bias = {
            (net.name, layer.name)
            for net in (
                self.nets.enhancer_generator,
                self.nets.enhancer_discriminator,
                self.nets.voxel_generator,
                self.nets.voxel_discriminator,
            )
            for layer in net.layers
            if getattr(layer, "bias", None) is not None
        }
        self.assertEqual(
            with_bias,
            {
                ("enhancer_generator", "to_image"),
                ("enhancer_discriminator", "conv1"),
                ("enhancer_discriminator", "logits"),
                ("voxel_generator", "to_voxels"),
                ("voxel_discriminator", "conv32_64"),
                ("voxel_discriminator", "logits"),
            },
        )

    @parameterized.parameters(
        (1, (4, 4, 2048), (8, 8, 1024), (16, 16, 512)),
        (2, (4, 4, 2048), (8, 8, 512), (16, 16, 512)),
        (3, (4, 4, 2048), (8, 8, 1024), (16, 16, 128)),
    )
    def test_enhancer_generator_output_shapes(self, layer, shape1, shape2, shape3):
        config = ModelConfig(enhancer_layer=layer)
        if layer == 1:
            ge = self.nets.enhancer_generator
            shapes = _symbolic(ge, (100,), batch=2)
        else:
            ge = EnhancerGenerator(config)
            shapes = _symbolic(ge, (100,), batch=2)
        self.assertEqual(
            shapes,
            {
                "layer1": (2, *shape1),
                "layer2": (2, *shape2),
                "layer3": (2, *shape3),
                "layer4": (2, 32, 32, 256),
                "layer5": (2, 64, 64, 128),
                "image": (2, 128, 128, 3),
            },
        )
        self.assertEqual(ge.feature_layer, f"layer{layer}")
        # Layer i holds exactly GM's 4 x 4 x 4 x 512 input.
        self.assertEqual(int(np.prod(shapes[ge.feature_layer][1:])), 4 * 4 * 4 * 512)
        features = ge.voxel_features(
            {ge.feature_layer: keras.KerasTensor(shapes[ge.feature_layer])}
        )
        self.assertEqual(tuple(features.shape), (2, 4, 4, 4, 512))

    @parameterized.parameters((64,), (32,))
    def test_voxel_network_output_shapes(self, resolution):
        config = ModelConfig(resolution=resolution)
        if resolution == 64:
            gm, dm = self.nets.voxel_generator, self.nets.voxel_discriminator
        else:
            gm, dm = VoxelGenerator(config), VoxelDiscriminator(config)
        r = resolution
        self.assertEqual(_symbolic(gm, (4, 4, 4, 512), batch=2), (2, r, r, r, 1))
        shapes = _symbolic(dm, (r, r, r, 1), batch=2)
        expected = {
            "conv16_128": (2, 16, 16, 16, 128),
            "conv8_256": (2, 8, 8, 8, 256),
            "conv4_512": (2, 4, 4, 4, 512),
            "logits": (2, 1),
        }
        if resolution == 64:
            expected["conv32_64"] = (2, 32, 32, 32, 64)
        self.assertEqual(shapes, expected)
        self.assertEqual(dm.feature_layer_names, ("conv16_128", "conv8_256", "conv4_512"))
        self.assertEqual(
            [shapes[n][1:] for n in dm.feature_layer_names],
            [(16, 16, 16, 128), (8, 8, 8, 256), (4, 4, 4, 512)],
        )

    def test_no_enhancer_networks(self):
        nets = build_networks(ModelConfig(use_enhancer=False, resolution=32))
        self.assertIsNone(nets.enhancer_generator)
        self.assertIsNone(nets.enhancer_discriminator)
        self.assertEqual(_symbolic(nets.latent_projector, (100,), batch=2), (2, 4, 4, 4, 512))
        self.assertEqual(nets.generators, (nets.latent_projector, nets.voxel_generator))
        self.assertEqual(nets.discriminators, (nets.voxel_discriminator,))

    def test_enhancer_discriminator_output_shape(self):
        self.assertEqual(_symbolic(self.nets.enhancer_discriminator, (128, 128, 3), 2), (2, 1))

    def test_full_size_enhancer_generator_forward_at_batch_1(self):
        outputs = self.nets.enhancer_generator(_z(1, ModelConfig()), training=False)
        image = outputs["image"].numpy()
        self.assertEqual(image.shape, (1, 128, 128, 3))
        self.assertTrue(np.all(np.abs(image) <= 1.0))
        self.assertGreater(image.std(), 0.0)


class TinyForwardTest(tf.test.TestCase, parameterized.TestCase):
    """Real forward passes through the same code at resolution 32, width 1/16."""

    def setUp(self):
        super().setUp()
        keras.utils.set_random_seed(1)

    def test_tiny_widths(self):
        self.assertEqual(voxel_input_channels(TINY), 32)
        self.assertEqual(enhancer_hidden_channels(TINY), (128, 64, 32))
        self.assertEqual(
            enhancer_hidden_channels(ModelConfig(width_multiplier=1 / 16, enhancer_layer=3)),
            (128, 64, 8, 16, 8),
        )

    @parameterized.parameters((1,), (2,), (3,))
    def test_forward_shapes_and_ranges(self, layer):
        config = ModelConfig(
            resolution=32, width_multiplier=1 / 16, image_size=32, enhancer_layer=layer
        )
        nets = build_networks(config)
        voxels, outputs = generate_voxels(nets, _z(2, config), training=False)
        self.assertEqual(voxels.shape, (2, 32, 32, 32, 1))
        self.assertEqual(outputs["image"].shape, (2, 32, 32, 3))
        self.assertEqual(
            {k: tuple(v.shape) for k, v in outputs.items() if k != "image"},
            {
                "layer1": (2, 4, 4, 4 * 32 if layer == 1 else 128),
                "layer2": (2, 8, 8, 32 if layer == 2 else 64),
                "layer3": (2, 16, 16, 8 if layer == 3 else 32),
            },
        )
        v, img = voxels.numpy(), outputs["image"].numpy()
        self.assertTrue(np.all((v >= 0) & (v <= 1)), "sigmoid output outside [0, 1]")
        self.assertTrue(np.all((img >= -1) & (img <= 1)), "tanh output outside [-1, 1]")
        self.assertGreater(v.std(), 0.0)
        de_logits = nets.enhancer_discriminator(outputs["image"], training=False)
        dm_out = nets.voxel_discriminator(voxels, training=False)
        self.assertEqual(de_logits.shape, (2, 1))
        self.assertEqual(dm_out["logits"].shape, (2, 1))
        self.assertEqual(dm_out["conv4_512"].shape, (2, 4, 4, 4, 32))
        self.assertTrue(np.all(np.isfinite(dm_out["logits"].numpy())))

    def test_default_image_size_with_tiny_width(self):
        config = ModelConfig(resolution=32, width_multiplier=1 / 16)
        nets = build_networks(config)
        voxels, outputs = generate_voxels(nets, _z(2, config))
        self.assertEqual(outputs["image"].shape, (2, 128, 128, 3))
        self.assertEqual(outputs["layer5"].shape, (2, 64, 64, 8))
        self.assertEqual(nets.enhancer_discriminator(outputs["image"]).shape, (2, 1))
        self.assertEqual(voxels.shape, (2, 32, 32, 32, 1))

    def test_image_size_64_drops_last_hidden_layer(self):
        config = ModelConfig(resolution=32, width_multiplier=1 / 16, image_size=64)
        outputs = EnhancerGenerator(config)(_z(2, config))
        self.assertEqual(sorted(outputs), ["image", "layer1", "layer2", "layer3", "layer4"])
        self.assertEqual(outputs["image"].shape, (2, 64, 64, 3))

    @parameterized.parameters((1,), (2,), (3,))
    def test_enhancer_layer_feeds_voxel_generator(self, layer):
        config = ModelConfig(
            resolution=32, width_multiplier=1 / 16, image_size=32, enhancer_layer=layer
        )
        nets = build_networks(config)
        ge, gm = nets.enhancer_generator, nets.voxel_generator
        outputs = ge(_z(2, config), training=False)
        features = ge.voxel_features(outputs)
        # voxel_features is exactly layer i's output, reshaped.
        self.assertAllEqual(
            features.numpy(), np.reshape(outputs[f"layer{layer}"].numpy(), (2, 4, 4, 4, 32))
        )
        voxels = gm(features, training=False).numpy()
        perturbed = dict(outputs)
        perturbed[f"layer{layer}"] = outputs[f"layer{layer}"] + 1.0
        voxels2 = gm(ge.voxel_features(perturbed), training=False).numpy()
        self.assertGreater(np.abs(voxels - voxels2).max(), 1e-4)
        # GM's voxels depend on z through GE: LM's gradient reaches GE's Dense.
        with tf.GradientTape() as tape:
            v, _ = generate_voxels(nets, _z(2, config, seed=3), training=True)
            loss = tf.reduce_mean(v)
        grad = tape.gradient(loss, ge.dense1.kernel)
        self.assertIsNotNone(grad)
        self.assertGreater(float(tf.reduce_max(tf.abs(grad))), 0.0)
        # ... and does not depend on GE's layers after layer i.
        if layer < 3:
            with tf.GradientTape() as tape:
                v, _ = generate_voxels(nets, _z(2, config), training=True)
                loss = tf.reduce_mean(v)
            self.assertIsNone(tape.gradient(loss, ge.deconv3.kernel))

    def test_no_enhancer_generate_voxels(self):
        config = ModelConfig(resolution=32, width_multiplier=1 / 16, use_enhancer=False)
        nets = build_networks(config)
        voxels, outputs = generate_voxels(nets, _z(2, config))
        self.assertIsNone(outputs)
        self.assertEqual(voxels.shape, (2, 32, 32, 32, 1))
        self.assertEqual(nets.latent_projector(_z(2, config)).shape, (2, 4, 4, 4, 32))

    def test_inference_is_per_sample_and_training_uses_the_batch(self):
        """What the project relies on from its networks' `training` plumbing:
        with training=False a sample's output does not depend on its
        batch-mates (features extracted in any batching are the same); with
        training=True every batch-norm layer of the network normalises with
        the batch's statistics and moves its moving mean."""
        nets = build_networks(TINY)
        rng = np.random.default_rng(0)
        inputs = {
            "enhancer_generator": rng.uniform(-1, 1, (3, TINY.latent_dim)),
            "enhancer_discriminator": rng.uniform(-1, 1, (3, 32, 32, 3)),
            "voxel_generator": rng.normal(size=(3, 4, 4, 4, 32)),
            "voxel_discriminator": rng.uniform(0, 1, (3, 32, 32, 32, 1)),
        }

        def first(net, x, training):
            out = net(x.astype(np.float32), training=training)
            if isinstance(out, dict):
                out = out["image"] if "image" in out else out["logits"]
            return np.asarray(out)[0]

        for name, x in inputs.items():
            net = getattr(nets, name)
            alone = first(net, x[:1], False)
            self.assertAllClose(first(net, x[[0, 1]], False), alone, atol=1e-5, msg=name)
            self.assertAllClose(first(net, x[[0, 2]], False), alone, atol=1e-5, msg=name)
            bns = [b for b in net.layers if isinstance(b, keras.layers.BatchNormalization)]
            self.assertNotEmpty(bns)
            before = [b.moving_mean.numpy().copy() for b in bns]
            with_1, with_2 = first(net, x[[0, 1]], True), first(net, x[[0, 2]], True)
            self.assertNotAllClose(with_1, with_2, atol=1e-5, msg=name)
            for b, m in zip(bns, before):
                self.assertNotAllClose(b.moving_mean.numpy(), m, msg=f"{name}/{b.name}")

    @parameterized.parameters((1,), (3,))
    def test_generation_without_enhancer_outputs_gives_the_same_voxels(self, layer):
        config = ModelConfig(
            resolution=32, width_multiplier=1 / 16, image_size=32, enhancer_layer=layer
        )
        nets = build_networks(config)
        full, outputs = generate_voxels(nets, _z(3, config), training=False)
        short, none = generate_voxels(nets, _z(3, config), training=False, enhancer_outputs=False)
        self.assertIsNone(none)
        self.assertIn("image", outputs)
        self.assertAllClose(short, full, atol=1e-6)

    @parameterized.parameters(("relu", True), ("leaky_relu", False))
    def test_discriminator_activation(self, activation, non_negative):
        config = ModelConfig(
            resolution=32, width_multiplier=1 / 16, discriminator_activation=activation
        )
        dm = VoxelDiscriminator(config)
        x = np.random.default_rng(0).uniform(0, 1, (2, 32, 32, 32, 1)).astype(np.float32)
        features = dm(x, training=True)
        lowest = min(float(tf.reduce_min(features[n])) for n in dm.feature_layer_names)
        self.assertEqual(lowest >= 0.0, non_negative)

    def test_mixed_precision_outputs_are_float32(self):
        keras.mixed_precision.set_global_policy("mixed_float16")
        try:
            nets = build_networks(TINY)
            voxels, outputs = generate_voxels(nets, _z(2, TINY))
            self.assertEqual(outputs["layer1"].dtype, tf.float16)
            self.assertEqual(voxels.dtype, tf.float32)
            self.assertEqual(outputs["image"].dtype, tf.float32)
            self.assertEqual(nets.enhancer_discriminator(outputs["image"]).dtype, tf.float32)
            self.assertEqual(nets.voxel_discriminator(voxels)["logits"].dtype, tf.float32)
            self.assertEqual(nets.voxel_generator.deconv1.kernel.dtype, "float32")
        finally:
            keras.mixed_precision.set_global_policy("float32")


class ConfigTest(tf.test.TestCase, parameterized.TestCase):
    @parameterized.parameters(*CLASSES)
    def test_get_config_round_trip(self, cls):
        config = ModelConfig(
            resolution=32, width_multiplier=0.125, enhancer_layer=2, use_enhancer=False
        )
        model = cls(config)
        _symbolic(model, _input_shape(cls, config))
        serialized = json.loads(json.dumps(model.get_config()))
        self.assertEqual(ModelConfig(**serialized), config)
        clone = cls.from_config(serialized)
        _symbolic(clone, _input_shape(cls, config))
        self.assertIsInstance(clone, cls)
        self.assertEqual(clone.model_config, config)
        self.assertEqual(clone.count_params(), model.count_params())
        self.assertEqual(
            [(w.path, tuple(w.shape)) for w in clone.weights],
            [(w.path, tuple(w.shape)) for w in model.weights],
        )

    def test_from_config_rejects_unknown_fields(self):
        with self.assertRaisesRegex(ConfigError, "bogus"):
            VoxelGenerator.from_config({"resolution": 32, "bogus": 1})

    def test_rejects_non_model_config(self):
        with self.assertRaisesRegex(ConfigError, "ModelConfig"):
            VoxelGenerator({"resolution": 32})

    def test_layer_3_needs_channels_divisible_by_4(self):
        # width 0.01: C = round(5.12) = 5; layer 3 (16 x 16) would need 5/4 channels.
        config = ModelConfig(width_multiplier=0.01, enhancer_layer=3)
        with self.assertRaisesRegex(ConfigError, r"width_multiplier 0.01 .* layer 3 .*cannot hold"):
            EnhancerGenerator(config)
        # Layers 1 and 2 can hold 4 x 4 x 4 x 5 numbers.
        self.assertEqual(enhancer_hidden_channels(ModelConfig(width_multiplier=0.01))[0], 20)
        self.assertEqual(
            enhancer_hidden_channels(ModelConfig(width_multiplier=0.01, enhancer_layer=2))[1], 5
        )

    def test_build_networks_uses_latent_dim(self):
        config = ModelConfig(resolution=32, width_multiplier=1 / 16, latent_dim=7)
        nets = build_networks(config)
        self.assertEqual(tuple(nets.enhancer_generator.dense1.kernel.shape), (7, 16 * 128))
