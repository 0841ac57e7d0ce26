"""Evaluation of features and generators (numpy, scikit-learn, matplotlib only).

Modules (import them directly; this package imports nothing heavy):
  classification: linear-SVM classification through a precomputed Gram
    matrix, C chosen by cross-validation on the train split (Table 1).
  retrieval: retrieval mean average precision and precision-recall curves
    by Euclidean feature distance (Table 2, Figure 4).
  generation_metrics: COV, MMD and 1-NNA under the IoU distance, and
    occupancy statistics, of generated against real voxel grids.
  plots: confusion matrices, PR curves and per-class accuracy as PNG files,
    written atomically.
  kernels: feature checks, the train-split standardiser and block-wise
    linear kernels shared by classification and retrieval.
  paper: the paper's Tables 1-3 and which row a run sits beside.
  run_specs, subsets, feature_cache, report, tables: the table pipeline
    (which runs, toy subsets, features extracted once, the writers, the
    table runners that experiments/table1-3.py call).
  seeds: mean and spread over seeds, paired differences between rows.
"""
