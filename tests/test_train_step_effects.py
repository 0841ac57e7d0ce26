"""What one GanTrainer.train_step changes: weights, batch-norm statistics, counters.

One step on a tiny configuration (32^3, width 1/16, 32^2 images), checked
against a snapshot taken before it: every trainable variable of each
optimised network moves, every batch-norm layer's moving statistics move
(all four networks run in training mode inside the step), the step counter
goes from 0 to 1, and the optimisers' iteration counters show one
discriminator update and two generator updates.
"""

import keras
import numpy as np
import pytest

from enhancer_gan.data.pipeline import make_pair_dataset
from enhancer_gan.training.runs import network_parts
from enhancer_gan.training.trainer import GanTrainer
from tests.helpers import tiny_model_config, tiny_source, tiny_train_config


def _batch_norms(model):
    return [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]


def _moving(model):
    return {
        b.name: (b.moving_mean.numpy().copy(), b.moving_variance.numpy().copy())
        for b in _batch_norms(model)
    }


@pytest.fixture(scope="module", params=[True, False], ids=["enhancer", "no_enhancer"])
def one_step(request, tmp_path_factory):
    """(trainer, snapshot before the step, the step's metrics)."""
    keras.utils.set_random_seed(0)
    use_enhancer = request.param
    trainer = GanTrainer(tiny_model_config(use_enhancer=use_enhancer), tiny_train_config())
    source, _ = tiny_source(str(tmp_path_factory.mktemp("data")), n=4, res=32, views=2)
    batch = next(iter(make_pair_dataset(source, 2, image_size=32)))
    models = network_parts(trainer.networks)  # every network the step runs
    assert ("latent_projector" in models) != use_enhancer
    before = {
        "step": int(trainer.step),
        "iterations": {n: int(o.iterations) for n, o in trainer.optimizers.items()},
        "variables": {n: [v.numpy().copy() for v in vs] for n, vs in trainer.variables_of.items()},
        "moving": {n: _moving(m) for n, m in models.items()},
    }
    metrics = trainer.train_step(batch)
    return trainer, models, before, {k: float(v) for k, v in metrics.items()}


def test_step_counter_and_update_counts(one_step):
    trainer, _, before, metrics = one_step
    assert before["step"] == 0 and int(trainer.step) == 1
    assert all(v == 0 for v in before["iterations"].values())
    for name in trainer.discriminator_names:
        assert int(trainer.optimizers[name].iterations) == 1, name
    for name in trainer.generator_names:
        assert int(trainer.optimizers[name].iterations) == 2, name
    assert all(np.isfinite(v) for v in metrics.values())


def test_every_variable_of_each_optimised_network_moves(one_step):
    trainer, _, before, _ = one_step
    assert set(trainer.variables_of) == set(trainer.optimizers)
    for name, variables in trainer.variables_of.items():
        assert variables, name
        unchanged = [
            v.path
            for v, old in zip(variables, before["variables"][name])
            if np.array_equal(v.numpy(), old)
        ]
        assert not unchanged, f"{name}: not updated: {unchanged}"


def test_batch_norm_moving_statistics_move_in_every_network(one_step):
    _, models, before, _ = one_step
    # DM's must move (it sees real and generated grids in training mode); so
    # must every other network's, which all run in training mode in the step.
    assert _batch_norms(models["voxel_discriminator"])
    for name, model in models.items():
        bns = _batch_norms(model)
        assert bns, name
        for b in bns:
            mean0, var0 = before["moving"][name][b.name]
            assert not np.allclose(b.moving_mean.numpy(), mean0), f"{name}/{b.name} mean"
            assert not np.allclose(b.moving_variance.numpy(), var0), f"{name}/{b.name} variance"
            # A variance is an average of squares: never negative.
            assert np.all(b.moving_variance.numpy() > 0), f"{name}/{b.name}"
