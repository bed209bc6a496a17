"""Clips -> windows -> tf.data: clean features for evaluation, augmented features on the fly for training.

Clean features come from audiocore.features.extract, the exact call the service makes. Training windows are
re-augmented every epoch; each one's randomness is seeded by (seed, epoch, position), so two runs with the same
seed see the same batches.
"""

import multiprocessing
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from audiocore.config import FeatureConfig
from audiocore.features import featurize, take_segment, window_starts
from training.augment import Augmenter, augmented_batch, init_worker


@dataclass(frozen=True)
class Windows:
    """One row per model input window: which clip it comes from, where it starts, its label."""

    clip: np.ndarray
    start: np.ndarray
    y: np.ndarray


def window_table(waveforms: list[np.ndarray], y: np.ndarray, clips: np.ndarray, cfg: FeatureConfig) -> Windows:
    rows = [(c, s) for c in clips for s in window_starts(len(waveforms[c]), cfg)]
    clip = np.array([r[0] for r in rows], dtype=np.int64)
    return Windows(clip=clip, start=np.array([r[1] for r in rows], dtype=np.int64), y=y[clip])


def clean_features(waveforms: list[np.ndarray], y: np.ndarray, clips: np.ndarray, cfg: FeatureConfig):
    """(X windows (n, frames, feats), Windows) for `clips`, computed exactly as the service computes them."""
    table = window_table(waveforms, y, clips, cfg)
    if len(table.y) == 0:
        return np.zeros((0, *cfg.input_shape), dtype=np.float32), table
    # The service calls extract() per clip; featurize() is per-window by construction, so computing many clips'
    # windows in one call gives the same numbers (tests/training/test_pipeline.py checks equality) ~6x faster.
    X = np.concatenate(
        [
            featurize(np.stack([take_segment(waveforms[c], int(s), cfg.window_samples) for c, s in chunk]), cfg)
            for chunk in _chunks(list(zip(table.clip, table.start, strict=True)), 512)
        ]
    )
    if not np.isfinite(X).all():  # decode rejects NaN input, so this would be a bug in feature extraction
        raise FloatingPointError("non-finite values in extracted features")
    return X, table


def _chunks(items: list, size: int):
    for lo in range(0, len(items), size):
        yield items[lo : lo + size]


def standardisation(X_train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and variance over all training frames (fitted on training data only)."""
    flat = X_train.reshape(-1, X_train.shape[-1]).astype(np.float64)
    return flat.mean(axis=0).astype(np.float32), flat.var(axis=0).astype(np.float32)


def balanced_class_weights(y: np.ndarray, n_classes: int) -> dict[int, float]:
    """n_samples / (n_classes * count): scikit-learn's compute_class_weight('balanced')."""
    counts = np.bincount(y, minlength=n_classes)
    if (counts == 0).any():
        raise ValueError(f"class indices {np.flatnonzero(counts == 0).tolist()} have no training windows")
    return {i: float(len(y) / (n_classes * counts[i])) for i in range(n_classes)}


def train_dataset(
    X_clean: np.ndarray,
    table: Windows,
    waveforms: list[np.ndarray],
    augmenter: Augmenter | None,
    batch_size: int,
    seed: int,
    workers: int = 1,
) -> tuple[tf.data.Dataset, Callable[[], None]]:
    """Shuffled batches of (features, label), augmented afresh each epoch when `augmenter` is given.

    Augmentation runs in worker processes, not threads: numpy code holding the GIL beside the Keras loop
    doubled the epoch time on 2 cores. Workers are spawned (TF's threads make fork unsafe) and get the clips
    once, at start.

    Returns the dataset and a function that stops the augmentation workers. Batch b of epoch e is seeded by
    (seed, e, b), so the batches are the same however many workers build them.
    """
    n = len(table.y)
    epoch = {"n": 0}
    pool = None
    if augmenter is not None:
        ctx = multiprocessing.get_context("spawn")
        pool = ctx.Pool(
            workers, initializer=init_worker, initargs=(augmenter, waveforms, table.clip, table.start, table.y)
        )

    def batches():  # called once per epoch
        e = epoch["n"]
        epoch["n"] += 1
        order = np.random.default_rng([seed, e]).permutation(n)
        jobs = [(seed, e, b, order[lo : lo + batch_size]) for b, lo in enumerate(range(0, n, batch_size))]
        if pool is None:
            for _, _, _, pos in jobs:
                yield X_clean[pos], table.y[pos]
        else:
            yield from pool.imap(augmented_batch, jobs)  # ordered; workers run ahead of training

    signature = (
        tf.TensorSpec((None, *X_clean.shape[1:]), tf.float32),
        tf.TensorSpec((None,), tf.int64),
    )
    ds = tf.data.Dataset.from_generator(batches, output_signature=signature)
    ds = ds.apply(tf.data.experimental.assert_cardinality(-(-n // batch_size))).prefetch(2)
    return ds, (pool.terminate if pool is not None else (lambda: None))
