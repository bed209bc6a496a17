"""Clip-level evaluation: window probabilities -> clip scores (audiocore.aggregate) -> metrics dict."""

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    log_loss,
    precision_recall_fscore_support,
)

from audiocore.aggregate import clip_scores
from training.windows import Windows


def predict_clips(model, X, table: Windows, clips: np.ndarray, batch_size: int = 256, chunk: int = 64 * 256):
    """Clip probabilities (len(clips), n_classes), in the order of `clips`, by averaging each clip's windows.

    X is an array or a training.store.FeatureStore (window i of `table` at row table.row[i]); it is read and
    predicted `chunk` windows at a time (a multiple of `batch_size`, so the batches are those of one call)."""
    if len(table.y) == 0:
        return np.zeros((0, 0))
    probs = np.concatenate(
        [
            model.predict(X[table.row[lo : lo + chunk]], batch_size=batch_size, verbose=0)
            for lo in range(0, len(table.y), chunk)
        ]
    )
    # A clip's windows are consecutive in the table: one slice per clip, not one scan of all windows per clip.
    first = np.flatnonzero(np.r_[True, table.clip[1:] != table.clip[:-1]])
    ends = np.r_[first[1:], len(table.clip)]
    bounds = {c: slice(lo, hi) for c, lo, hi in zip(table.clip[first].tolist(), first, ends, strict=True)}
    return np.stack([clip_scores(probs[bounds[c]]) for c in np.asarray(clips).tolist()])


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
