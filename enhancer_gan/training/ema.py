"""An exponential moving average of the generators' weights (beyond the paper).

Many GAN codebases sample from an average of the generator's recent weights
rather than from its last iterate (Karras et al. 2018; Yazici et al. 2019,
"The Unusual Effectiveness of Averaging in GAN Training"): the game's
oscillations average out, and with them much of the speckle a single iterate
shows. `GeneratorAverage` keeps one shadow variable per trainable weight of
GE (or the latent projector) and GM,

  shadow <- decay * shadow + (1 - decay) * weight      after every train step,

and `copy_to` writes the shadows into a set of networks for sampling (their
batch-norm statistics must then be re-estimated: `generation.sampler`).

The shadows are checkpointed with the run (`GanTrainer.checkpoint`), so a
resumed run continues the same average; `training.runs.load_run` reads them.
This module must not read flags, touch the file system or print.
"""

from __future__ import annotations

import tensorflow as tf

# The checkpoint key of the average (beside 'voxel_generator', ...).
CHECKPOINT_NAME = "generator_average"


def generator_weights(networks) -> list[tf.Variable]:
    """The trainable weights the average follows, in a fixed order (GE or projector, GM)."""
    return [v for model in networks.generators for v in model.trainable_variables]


class GeneratorAverage(tf.Module):
    """Shadow copies of the generators' trainable weights, averaged over steps.

    Create it inside `strategy.scope()` when training on several devices.
    """

    def __init__(self, networks, decay: float):
        super().__init__(name=CHECKPOINT_NAME)
        if not 0.0 < decay < 1.0:
            raise ValueError(f"decay must be in (0, 1), got {decay}")
        self.decay = float(decay)
        self._weights = generator_weights(networks)
        self.shadows = [
            tf.Variable(tf.convert_to_tensor(v), trainable=False, name=f"shadow_{i}")
            for i, v in enumerate(self._weights)
        ]

    def update(self) -> None:
        """shadow <- decay * shadow + (1 - decay) * weight, for every weight."""
        d = self.decay
        for shadow, weight in zip(self.shadows, self._weights):
            shadow.assign(d * shadow + (1.0 - d) * tf.cast(weight, shadow.dtype))

    def copy_to(self, networks) -> None:
        """Writes the shadows into `networks`' generators (same config as the trainer's)."""
        targets = generator_weights(networks)
        if [tuple(v.shape) for v in targets] != [tuple(s.shape) for s in self.shadows]:
            raise ValueError("the networks' generators do not match the averaged ones")
        for target, shadow in zip(targets, self.shadows):
            target.assign(shadow)
