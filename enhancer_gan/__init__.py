"""enhancer-gan: 3D shape GANs driven by a 2D image enhancer (Zhu et al., AAAI 2018).

Sub-packages:
  voxels/      voxel grids: binvox I/O, resolution changes, rendering, meshes.
  data/        data sets in their on-disk layouts and the tf.data pipeline.
  models/      the four networks (GE, DE, GM, DM) and their cost model.
  training/    losses, the joint train step, the training loop.
  evaluation/  shape features, SVM classification, retrieval, generation metrics.
"""

__version__ = "0.1.0"

import os as _os

# TensorFlow turns its oneDNN kernels on by default only on some Intel CPUs;
# elsewhere (AMD EPYC here) Conv3D and its gradients fall back to Eigen, and
# the train step is slower (the measurement: benchmarks/RESULTS.md#onednn).
# Set before TensorFlow is imported; TF_ENABLE_ONEDNN_OPTS=0 in the
# environment wins.
_os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
