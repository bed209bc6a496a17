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


def predict_clips(model, X: np.ndarray, window_clip: np.ndarray, clips: np.ndarray, batch_size: int = 256):
    """Clip probabilities (len(clips), n_classes), in the order of `clips`, by averaging each clip's windows."""
    probs = model.predict(X, batch_size=batch_size, verbose=0) if len(X) else np.zeros((0, 0))
    return np.stack([clip_scores(probs[window_clip == c]) for c in clips]) if len(clips) else probs


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
