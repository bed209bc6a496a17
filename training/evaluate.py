"""Clip-level evaluation: window outputs -> clip scores (the model's audiocore.aggregate) -> metrics dict."""

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    log_loss,
    precision_recall_fscore_support,
)

from audiocore.aggregate import Aggregator, MeanProbabilities
from training.windows import Windows, clip_bounds


def predict_clips(
    model,
    X,
    table: Windows,
    clips: np.ndarray,
    batch_size: int = 256,
    chunk: int = 64 * 256,
    aggregator: Aggregator | None = None,
):
    """Clip probabilities (len(clips), n_classes), in the order of `clips`: each clip's window outputs turned into
    its scores by `aggregator` (the mean of window probabilities by default), as the service does.

    X is an array or a training.store.FeatureStore (window i of `table` at row table.row[i]); it is read and
    predicted `chunk` windows at a time (a multiple of `batch_size`, so the batches are those of one call)."""
    if len(table.y) == 0:
        return np.zeros((0, 0))
    aggregator = aggregator or MeanProbabilities()
    outputs = np.concatenate(
        [
            model.predict(X[table.row[lo : lo + chunk]], batch_size=batch_size, verbose=0)
            for lo in range(0, len(table.y), chunk)
        ]
    )
    bounds = clip_bounds(table)
    return np.stack([aggregator.clip(outputs[bounds[c]]) for c in np.asarray(clips).tolist()])


def metrics(y_true: np.ndarray, probs: np.ndarray, labels: list[str]) -> dict:
    """accuracy, balanced_accuracy, macro_f1, loss (clip-level cross-entropy), per-class P/R/F1, confusion."""
    n = len(labels)
    if len(y_true) == 0:
        return {}
    y_pred = probs.argmax(axis=1)
    p, r, f, support = precision_recall_fscore_support(y_true, y_pred, labels=range(n), zero_division=0)
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=range(n), average="macro", zero_division=0)),
        "loss": float(log_loss(y_true, _renormalised(probs), labels=range(n))),
        "clips": int(len(y_true)),
        "per_class": {
            labels[i]: {
                "precision": float(p[i]),
                "recall": float(r[i]),
                "f1": float(f[i]),
                "support": int(support[i]),
            }
            for i in range(n)
        },
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=range(n)).tolist(),
    }


def _renormalised(probs: np.ndarray) -> np.ndarray:
    """Clip away exact zeros (log 0) and restore rows summing to one (float32 softmax sums drift by ~1e-7)."""
    p = np.clip(np.asarray(probs, dtype=np.float64), 1e-7, 1.0)
    return p / p.sum(axis=1, keepdims=True)
