"""Window scores -> one clip prediction, and the top-k answer both training and serving report."""

import numpy as np


def clip_scores(window_probs: np.ndarray) -> np.ndarray:
    """Mean of the windows' class probabilities: every part of the clip counts equally."""
    return np.asarray(window_probs, dtype=np.float64).mean(axis=0)


def top_k(scores: np.ndarray, labels: list[str], k: int) -> list[tuple[str, float]]:
    """The k best (label, score) pairs, best first; ties keep label order so answers are stable."""
    k = max(1, min(k, len(labels)))
    order = np.argsort(-np.asarray(scores), kind="stable")[:k]
    return [(labels[i], float(scores[i])) for i in order]
