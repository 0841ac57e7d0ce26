"""Feature checks, standardisation and block-wise linear kernels (classification, retrieval).

Both the linear SVM (`classification`) and retrieval (`retrieval`) work on
Gram matrices of 57,344-d features. The features are never copied whole:
standardisation and kernels run over blocks of feature COLUMNS,
K = sum_c Z[:, c] Z[:, c]^T, with float32 products accumulated in float64,
so the extra memory is one column block plus the n x n kernel.

This module must not import TensorFlow.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from enhancer_gan.errors import ConfigError, DataError

# Size of one float32 column block of the features while building kernels.
DEFAULT_BLOCK_BYTES = 256 * 2**20


@dataclasses.dataclass(frozen=True)
class Standardizer:
    """Per-feature affine map z = (x - mean) * inv_scale, fitted on train only.

    Attributes:
      mean: [D] float32, the train mean of every feature.
      inv_scale: [D] float32, 1 / (train standard deviation); 0 for features
        that are constant on the train split, so they become 0 everywhere
        (they carry no information a linear SVM trained on train could use,
        and a test value far from the constant must not blow up the kernel).
    """

    mean: np.ndarray
    inv_scale: np.ndarray

    @property
    def num_constant(self) -> int:
        """Number of features that are constant on the train split."""
        return int(np.count_nonzero(self.inv_scale == 0))

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Args: x: [N, D] float. Returns: [N, D] float32 standardised copy."""
        x = np.asarray(x, dtype=np.float32)
        return (x - self.mean) * self.inv_scale


def check_features(x: Any, name: str) -> np.ndarray:
    """Checks that `x` is a non-empty [N, D] real array; no copy when possible."""
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise DataError(None, f"{name} must be a non-empty [N, D] array, got shape {x.shape}")
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise DataError(None, f"{name} must be numeric, got dtype {x.dtype}")
    return x


def check_labels(y: Any, n: int, name: str) -> np.ndarray:
    """Checks that `y` is [n] integer class labels. Returns: [n] int64."""
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != n:
        raise DataError(None, f"{name} must have shape [{n}] (one label per row), got {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        if (
            np.issubdtype(y.dtype, np.floating)
            and np.all(np.isfinite(y))
            and np.all(y == np.round(y))
        ):
            return y.astype(np.int64)
        raise DataError(None, f"{name} must hold integer class labels, got dtype {y.dtype}")
    return y.astype(np.int64, copy=False)


def _column_blocks(num_rows: int, num_cols: int, block_bytes: int) -> list[slice]:
    """Column slices such that one float32 [num_rows, width] block fits `block_bytes`."""
    width = max(1, block_bytes // (4 * max(num_rows, 1)))
    return [slice(c, min(c + width, num_cols)) for c in range(0, num_cols, width)]


def fit_standardizer(
    x: np.ndarray, *, block_bytes: int = DEFAULT_BLOCK_BYTES, name: str = "train_x"
) -> Standardizer:
    """Fits per-feature mean and standard deviation in float64, column block by block.

    sklearn's `StandardScaler` computes each block's statistics; blocks keep
    the float64 copy to one block of columns (a whole-matrix fit would copy
    57,344-d features of ModelNet40 whole). Unlike `StandardScaler.transform`,
    the resulting map sends train-constant features to 0 (see `Standardizer`).

    Args:
      x: [N, D] float features (train split only).
      block_bytes: memory of one float32 column block.
      name: what to call `x` in error messages.

    Returns:
      the fitted `Standardizer`.

    Raises:
      DataError: `x` holds NaN or infinity.
    """
    from sklearn.preprocessing import StandardScaler

    x = check_features(x, name)
    n, d = x.shape
    mean = np.empty(d, np.float64)
    std = np.empty(d, np.float64)
    for cols in _column_blocks(n, d, block_bytes // 2):  # the block is float64 here
        scaler = StandardScaler().fit(x[:, cols].astype(np.float64))
        mean[cols] = scaler.mean_
        std[cols] = np.sqrt(scaler.var_)  # population std, as np.std
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(std))):
        bad = np.flatnonzero(~(np.isfinite(mean) & np.isfinite(std)))
        raise DataError(
            None, f"{name} holds NaN or infinity in feature column(s) {bad[:10].tolist()}"
        )
    # A column whose spread is below float32 resolution of its value is constant.
    constant = std <= 1e-6 * np.abs(mean)
    inv_scale = np.where(constant, 0.0, 1.0 / np.where(constant, 1.0, std))
    return Standardizer(mean=mean.astype(np.float32), inv_scale=inv_scale.astype(np.float32))


def linear_kernel(
    a: np.ndarray,
    b: np.ndarray | None = None,
    *,
    standardizer: Standardizer | None = None,
    center: np.ndarray | None = None,
    block_bytes: int = DEFAULT_BLOCK_BYTES,
    b_rows: np.ndarray | None = None,
    names: tuple[str, str] = ("a", "b"),
) -> np.ndarray:
    """Linear kernel between (optionally standardised or centred) feature sets.

    K[i, j] = <z(a_i), z(b_j)>, z the standardiser's map, or x - center, or
    the identity. The sum over features runs in column blocks: each block is
    transformed once, multiplied in float32 (BLAS; `a @ a.T` becomes a
    symmetric rank-k update when b is None) and added to a float64 total.

    Args:
      a: [N, D] features.
      b: [M, D] features, or None for the symmetric K(a, a).
      standardizer: applied to both sides; exclusive with `center`.
      center: [D] subtracted from both sides (a translation that changes no
        distance but avoids cancellation in ||a||^2 + ||b||^2 - 2ab).
      block_bytes: memory of one float32 column block of `a` (and of `b`).
      b_rows: [M'] int, use only these rows of `b` (read block by block, so
        the selection is never copied whole).
      names: what to call a and b in error messages.

    Returns:
      [N, M] (or [N, M'] with b_rows, or [N, N]) float64.

    Raises:
      DataError: shapes disagree, or the features hold NaN or infinity.
    """
    if standardizer is not None and center is not None:
        raise ConfigError("linear_kernel: give a standardizer or a center, not both")
    a = check_features(a, names[0])
    if b is not None:
        b = check_features(b, names[1])
        if b.shape[1] != a.shape[1]:
            raise DataError(
                None,
                f"{names[1]} has {b.shape[1]} features per row but {names[0]} has {a.shape[1]}",
            )
    d = a.shape[1]
    for vec in (standardizer.mean if standardizer else None, center):
        if vec is not None and np.shape(vec) != (d,):
            raise DataError(
                None, f"the standardizer/center has shape {np.shape(vec)}, expected ({d},)"
            )
    if b_rows is not None and b is None:
        raise ConfigError("linear_kernel: b_rows needs b")
    num_b = 0 if b is None else (b.shape[0] if b_rows is None else len(b_rows))
    out = np.zeros((a.shape[0], a.shape[0] if b is None else num_b), np.float64)

    # One float32 buffer per side, reused by every block of the same width,
    # transformed in place: fresh block-sized temporaries per block and per
    # operation cost page faults and extra passes over memory (measured: the
    # largest cost of `retrieval_map` after the BLAS product itself).
    buffers: dict[str, np.ndarray] = {}

    def transform(
        side: str, x: np.ndarray, cols: slice, rows: np.ndarray | None = None
    ) -> np.ndarray:
        block = x[:, cols] if rows is None else x[rows, cols]
        buf = buffers.get(side)
        if buf is None or buf.shape != block.shape:
            buf = buffers[side] = np.empty(block.shape, np.float32)
        # dtype=float32: the block is cast to float32 first, then transformed.
        if standardizer is not None:
            np.subtract(block, standardizer.mean[cols], out=buf, dtype=np.float32)
            np.multiply(buf, standardizer.inv_scale[cols], out=buf)
        elif center is not None:
            np.subtract(block, center[cols], out=buf, dtype=np.float32)
        else:
            buf[...] = block
        return buf

    for cols in _column_blocks(a.shape[0] + num_b, d, block_bytes):
        za = transform("a", a, cols)
        out += za @ (za.T if b is None else transform("b", b, cols, b_rows).T)
    if not np.all(np.isfinite(out)):
        which = names[0] if b is None else f"{names[0]} or {names[1]}"
        raise DataError(None, f"{which} holds NaN or infinity (the kernel is not finite)")
    return out
