"""Training learns something real at toy size, and a broken step would not.

The data are solid boxes filling a few percent of the grid; an untrained GM
outputs sigmoid values near 0.5 everywhere, so about half its voxels are on.
The adversarial game alone (no reconstruction loss) must pull the generated
occupancy toward the data's within a few dozen steps. With the generators'
updates switched off the occupancy must stay where it was: the measurement
can fail.
"""

import numpy as np
import pytest

from enhancer_gan.data.pipeline import make_pair_dataset
from enhancer_gan.training.trainer import GanTrainer
from tests.helpers import tiny_model_config, tiny_source, tiny_train_config

STEPS = 30


def _occupancy_gap(trainer, z, real_occupancy):
    voxels, _ = trainer.generate(z, training=False)
    return abs(float(np.mean(voxels.numpy() > 0.5)) - real_occupancy)


def _train(tmp_path, freeze_generators: bool):
    source, grids = tiny_source(str(tmp_path), n=8, res=32, views=2)
    real_occupancy = float(grids.mean())
    trainer = GanTrainer(
        tiny_model_config(), tiny_train_config(batch_size=4, num_steps=STEPS, learning_rate=1e-3)
    )
    if freeze_generators:  # a broken step: only the discriminators are updated
        apply = trainer._apply
        trainer._apply = lambda grads: apply(
            {n: g for n, g in grads.items() if n in trainer.discriminator_names}
        )
    dataset = make_pair_dataset(source, 4, image_size=32, num_noise=3, seed=0)
    z = np.random.default_rng(0).uniform(-1, 1, (16, 100)).astype(np.float32)
    before = _occupancy_gap(trainer, z, real_occupancy)
    accuracies = []
    for batch in dataset.take(STEPS):
        out = trainer.train_step(batch)
        accuracies.append(float(out["voxel/d_accuracy"]))
    return before, _occupancy_gap(trainer, z, real_occupancy), accuracies, real_occupancy


@pytest.mark.slow
def test_generated_occupancy_moves_toward_the_data(tmp_path):
    before, after, accuracies, real = _train(tmp_path, freeze_generators=False)
    assert real < 0.2 and before > 0.25  # the premise: far apart at the start
    assert after < 0.5 * before, (before, after)
    assert max(accuracies) > 0.5  # DM did learn to tell them apart at some point
