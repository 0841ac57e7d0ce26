"""Shape features from DM (paper Figure 1c): 57,344 numbers per grid.

DM's last three conv layers (16^3 x 128, 8^3 x 256, 4^3 x 512 at full width,
at both resolutions) are each max-pooled to 4^3 with 'same' padding (kernel
8, 4, 2 and stride 4, 2, 1: kernel = 2 x stride, stride = side / 4) and
concatenated: 8,192 + 16,384 + 32,768 = 57,344 (docs/DESIGN.md#features). DM runs in
inference mode (batch-norm moving statistics), so a shape's feature does not
depend on the other shapes in its batch.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

POOLED_SIDE = 4


def pool_geometry(side: int) -> tuple[int, int]:
    """(kernel, stride) that max-pools a side-`side` feature map to 4."""
    if side % POOLED_SIDE:
        raise ValueError(f"feature map side {side} is not a multiple of {POOLED_SIDE}")
    stride = side // POOLED_SIDE
    return (2 * stride if stride > 1 else 2), stride


def pooled_features(outputs: dict, names) -> tf.Tensor:
    """DM outputs -> [B, F] float32, the named layers pooled to 4^3 and flattened."""
    parts = []
    for name in names:
        x = tf.cast(outputs[name], tf.float32)
        kernel, stride = pool_geometry(int(x.shape[1]))
        pooled = tf.nn.max_pool3d(x, ksize=kernel, strides=stride, padding="SAME")
        parts.append(tf.reshape(pooled, [tf.shape(pooled)[0], -1]))
    return tf.concat(parts, axis=1)


def feature_block_sizes(voxel_discriminator) -> tuple[int, ...]:
    """The length of each pooled layer's block in the feature, in order: 4^3 x channels.

    `conv(name)` is the convolution itself, also when spectral norm wraps it.
    """
    return tuple(
        POOLED_SIDE**3 * voxel_discriminator.conv(name).filters
        for name in voxel_discriminator.feature_layer_names
    )


def feature_size(voxel_discriminator) -> int:
    """F for a built DM: sum over the feature layers of 4^3 x channels."""
    return sum(feature_block_sizes(voxel_discriminator))


class FeatureExtractor:
    """Batched, traced once: grids [N, R, R, R] -> features [N, F]."""

    def __init__(self, voxel_discriminator, batch_size: int = 32):
        self.dm = voxel_discriminator
        self.batch_size = int(batch_size)
        self.resolution = voxel_discriminator.model_config.resolution
        self.size = feature_size(voxel_discriminator)
        r = self.resolution
        self._fn = tf.function(
            self._features,
            input_signature=[tf.TensorSpec([self.batch_size, r, r, r, 1], tf.float32)],
        )

    def _features(self, voxels):
        outputs = self.dm(voxels, training=False)
        return pooled_features(outputs, self.dm.feature_layer_names)

    def __call__(self, grids: np.ndarray, progress: bool = False, dtype=np.float32):
        """Features of `grids` ([N, R, R, R] bool/float, project frame)."""
        from tqdm.auto import tqdm

        grids = np.asarray(grids)
        if grids.ndim != 4 or grids.shape[1:] != (self.resolution,) * 3:
            raise ValueError(
                f"expected grids [N, {self.resolution}, {self.resolution}, {self.resolution}], "
                f"got {grids.shape}"
            )
        n = grids.shape[0]
        out = np.empty((n, self.size), dtype=dtype)
        b = self.batch_size
        for start in tqdm(range(0, n, b), desc="features", disable=not progress, unit="batch"):
            chunk = grids[start : start + b].astype(np.float32)
            k = len(chunk)
            if k < b:  # pad the last batch so the function never retraces
                chunk = np.concatenate([chunk, np.zeros((b - k, *chunk.shape[1:]), np.float32)])
            feats = self._fn(tf.constant(chunk[..., None])).numpy()
            out[start : start + k] = feats[:k]
        return out


FEATURE_FILE_KEYS = ("features", "labels", "class_names", "model_ids", "source")


def save_features(path: str, features, labels, class_names, model_ids, source: dict) -> None:
    """Writes one split's features as .npz atomically (no pickled objects).

    `source` (checkpoint, step, config...) is stored as a JSON string.
    """
    import json

    from enhancer_gan.io_utils import atomic_path

    with atomic_path(path) as tmp:
        np.savez(
            tmp,
            features=features,
            labels=np.asarray(labels, dtype=np.int64),
            class_names=np.array(list(class_names), dtype=str),
            model_ids=np.array(list(model_ids), dtype=str),
            source=np.array(json.dumps(source, sort_keys=True)),
        )


def load_features(path: str) -> dict:
    """Reads a file written by `save_features`, validating everything in it.

    Returns:
      a dict with 'features' [N, F] float32 (finite), 'labels' [N] int64
      indexing 'class_names' (a tuple of str), 'model_ids' (a tuple of N
      str) and 'source' (the dict saved as JSON).

    Raises:
      DataError: the file is not a feature file, is damaged, or any array
        has the wrong type, shape or values; the message names the file.
    """
    import json

    from enhancer_gan.data.npz import read_npz
    from enhancer_gan.errors import DataError

    out = read_npz(path, FEATURE_FILE_KEYS, "feature file")

    def fail(problem):
        raise DataError(path, f"invalid feature file: {problem}")

    feats, labels = out["features"], out["labels"]
    class_names, model_ids, source = out["class_names"], out["model_ids"], out["source"]
    got = {k: f"{v.dtype} {v.shape}" for k, v in out.items()}  # for messages
    if feats.ndim != 2 or feats.dtype.kind != "f":
        fail(f"features must be a 2-D float array, got {got['features']}")
    n = feats.shape[0]
    with np.errstate(over="ignore"):
        feats = feats.astype(np.float32, copy=False)
    if not np.isfinite(feats).all():
        fail("features contain NaN or infinite values (or values beyond float32)")
    if class_names.ndim != 1 or (class_names.size and class_names.dtype.kind != "U"):
        fail(f"class_names must be a 1-D array of strings, got {got['class_names']}")
    if model_ids.shape != (n,) or (n and model_ids.dtype.kind != "U"):
        fail(f"model_ids must be {n} strings, one per feature row; got {got['model_ids']}")
    if labels.shape != (n,) or labels.dtype.kind not in "iu":
        fail(f"labels must be {n} integers, one per feature row; got {got['labels']}")
    if n and (labels.min() < 0 or labels.max() >= len(class_names)):
        fail(f"labels outside 0..{len(class_names) - 1} ({len(class_names)} class names)")
    if source.shape != () or source.dtype.kind != "U":
        fail(f"source must be a JSON string, got {got['source']}")
    try:
        source = json.loads(str(source))
    except (ValueError, RecursionError) as e:
        raise DataError(path, f"invalid feature file: source is not valid JSON: {e}") from None
    if not isinstance(source, dict):
        fail(f"source must be a JSON object, got {type(source).__name__}")
    return {
        "features": feats,
        "labels": labels.astype(np.int64),
        "class_names": tuple(str(c) for c in class_names),
        "model_ids": tuple(str(m) for m in model_ids),
        "source": source,
    }
