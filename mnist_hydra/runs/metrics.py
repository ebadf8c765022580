"""Scores computed from predictions: confusion matrix, cross-entropy, per-class precision/recall/F1."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Count (true, predicted) pairs: rows are true classes, columns predicted ones."""
    y_true = np.asarray(y_true).ravel().astype(np.int64)
    y_pred = np.asarray(y_pred).ravel().astype(np.int64)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has {y_true.size} labels but y_pred has {y_pred.size}")
    for name, labels in (("y_true", y_true), ("y_pred", y_pred)):
        if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(
                f"{name} holds labels in [{labels.min()}, {labels.max()}]; expected 0 to {num_classes - 1}"
            )
    counts = np.bincount(y_true * num_classes + y_pred, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes).astype(np.int64)


def per_class_accuracy(matrix: np.ndarray) -> np.ndarray:
    """Fraction of each true class predicted correctly; NaN for a class with no samples."""
    matrix = np.asarray(matrix)
    totals = matrix.sum(axis=1)
    correct = np.diag(matrix).astype(np.float64)
    accuracy: np.ndarray = np.divide(correct, totals, out=np.full(correct.shape, np.nan), where=totals > 0)
    return accuracy


def cross_entropy(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """Mean sparse categorical cross-entropy, clipped as Keras clips it; NaN for no labels."""
    if len(labels) == 0:
        return float("nan")
    picked = np.asarray(probabilities)[np.arange(len(labels)), np.asarray(labels, dtype=np.int64)]
    return float(-np.mean(np.log(np.clip(picked, 1e-7, 1.0))))


def per_class_scores(matrix: np.ndarray, class_names: Sequence[str]) -> pd.DataFrame:
    """Precision, recall, F1 and support per class from a confusion matrix (rows true, columns predicted).

    Undefined ratios are NaN: precision of a class never predicted, recall and F1 of a class absent
    from the labels and never predicted.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    tp = np.diag(matrix)
    predicted, support = matrix.sum(axis=0), matrix.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, np.nan)
        recall = np.where(support > 0, tp / support, np.nan)
        denominator = predicted + support  # 2TP + FP + FN
        f1 = np.where(denominator > 0, 2 * tp / denominator, np.nan)
    scores: pd.DataFrame = pd.DataFrame(
        {
            "class": list(class_names),
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "support": support.astype(np.int64),
        }
    )
    return scores
