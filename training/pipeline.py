"""Windows -> tf.data: clean features for validation, augmented features on the fly for training, batch by batch.

Clean features come from training.windows.clean_features (the exact call the service makes), read back from the
feature cache (training.store) a batch at a time; nothing holds every window in memory. Training windows are
re-augmented every epoch; each batch's randomness is seeded by (seed, epoch, batch), so two runs with the same
seed see the same batches.
"""

import ctypes
import ctypes.util
import functools
import itertools
import multiprocessing
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence

import numpy as np
import tensorflow as tf

from training.augment import Augmenter, augmented_batch, init_worker, mixup
from training.windows import Windows, clean_features

__all__ = [
    "Windows",
    "balanced_class_weights",
    "bounded_imap",
    "clean_features",  # re-exported: tests/service compare the service's features with training's through it
    "eval_dataset",
    "standardisation",
    "train_dataset",
]

STATS_CHUNK = 2048  # windows read at a time while fitting the standardisation
AHEAD_PER_WORKER = 4  # augmented batches prepared ahead of training per worker (0.5 MB each at FSDD's size)


# glibc's mallopt parameters, and the values its adaptive threshold reaches by itself on a 64-bit system.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 32 * 1024 * 1024  # DEFAULT_MMAP_THRESHOLD_MAX
TRIM_THRESHOLD = 2 * MMAP_THRESHOLD


@functools.cache
def _glibc_mallopt():
    """glibc's mallopt, looked up once (find_library runs ldconfig); None on other C libraries."""
    name = ctypes.util.find_library("c")
    if not name or "libc.so" not in name:
        return None
    try:
        return ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return None


def keep_freed_memory() -> bool:
    """Undo the allocator setting TensorFlow's generator dataset makes when it starts (the log line "Memory patch
    applied: M_TRIM_THRESHOLD=128 kb was set"). A fixed trim threshold switches off glibc's adaptive mmap
    threshold, so every buffer above 128 kB (a batch is 0.5 MB, a conv activation 8 MB) is mmap'd and zero-filled
    afresh at every step: the kernel time that made a real epoch 2-4x slower than the same model fed from arrays
    (docs/training.md, "Training speed"). Sets both thresholds to the values glibc's adaptive rule reaches on its
    own. Called from inside the generators (after TensorFlow's call); a no-op without glibc. True if set."""
    mallopt = _glibc_mallopt()
    if mallopt is None:
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def standardisation(X, rows: np.ndarray | None = None, chunk: int = STATS_CHUNK) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and variance over all frames of the windows `rows` of X (an array or a FeatureStore;
    default all), fitted on training data only, reading `chunk` windows at a time.

    Read in chunks, the float64 sums carried from one chunk to the next row by row: the same additions in the
    same order as numpy's mean/var over one (frames, features) array, so the same numbers bit for bit."""
    rows = np.arange(len(X)) if rows is None else np.asarray(rows)
    n_features = X.shape[-1]

    def carried(total: np.ndarray, f: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        for lo in range(0, len(rows), chunk):
            flat = f(np.asarray(X[rows[lo : lo + chunk]]).reshape(-1, n_features).astype(np.float64))
            total = np.concatenate([total[None], flat]).sum(axis=0)
        return total

    n = len(rows) * X.shape[1]
    mean = carried(np.zeros(n_features), lambda x: x) / n
    var = carried(np.zeros(n_features), lambda x: (x - mean) ** 2) / n
    return mean.astype(np.float32), var.astype(np.float32)


def balanced_class_weights(y: np.ndarray, n_classes: int) -> dict[int, float]:
    """n_samples / (n_classes * count): scikit-learn's compute_class_weight('balanced')."""
    counts = np.bincount(y, minlength=n_classes)
    if (counts == 0).any():
        raise ValueError(f"class indices {np.flatnonzero(counts == 0).tolist()} have no training windows")
    return {i: float(len(y) / (n_classes * counts[i])) for i in range(n_classes)}


def _signature(X, n_classes: int) -> tuple[tf.TensorSpec, tf.TensorSpec]:
    return tf.TensorSpec((None, *X.shape[1:]), tf.float32), tf.TensorSpec((None, n_classes), tf.float32)


def one_hot(y: np.ndarray, n_classes: int) -> np.ndarray:
    return np.eye(n_classes, dtype=np.float32)[np.asarray(y, dtype=np.int64)]


def train_dataset(
    X_clean,
    table: Windows,
    waveforms: Sequence[np.ndarray],
    augmenter: Augmenter | None,
    batch_size: int,
    seed: int,
    n_classes: int,
    workers: int = 1,
    mixup_alpha: float = 0.0,
    targets: np.ndarray | None = None,
) -> tuple[tf.data.Dataset, Callable[[], None]]:
    """Shuffled batches of (features, target), augmented afresh each epoch when `augmenter` is given, and then
    mixed up (`mixup_alpha` > 0; in this process, seeded by (seed, epoch, batch) as well). The target of window i
    is `targets[i]` (a probability row per window of `table`, e.g. labels blended with a teacher's), one-hot
    labels by default.

    `X_clean` (an array or a FeatureStore) holds the clean features, window i of `table` at row table.row[i];
    `waveforms` (a list or a WaveStore) the clips. Augmentation runs in worker processes, not threads: numpy code
    holding the GIL beside the Keras loop doubled the epoch time on 2 cores. Workers are spawned (TF's threads
    make fork unsafe); they get the window table and the WaveStore's path and offsets at start, and read each
    clip from disk when a batch needs it.

    Workers run at most AHEAD_PER_WORKER batches each ahead of training, so memory does not grow with the epoch.
    Returns the dataset and a function that stops the augmentation workers. Batch b of epoch e is seeded by
    (seed, e, b), so the batches are the same however many workers build them.
    """
    n = len(table.y)
    targets = one_hot(table.y, n_classes) if targets is None else np.asarray(targets, dtype=np.float32)
    if targets.shape != (n, n_classes):
        raise ValueError(f"targets have shape {targets.shape}; the table needs ({n}, {n_classes})")
    epoch = {"n": 0}
    pool = None
    if augmenter is not None:
        ctx = multiprocessing.get_context("spawn")
        pool = ctx.Pool(workers, initializer=init_worker, initargs=(augmenter, waveforms, table.clip, table.start))

    def batches():  # called once per epoch
        keep_freed_memory()
        e = epoch["n"]
        epoch["n"] += 1
        order = np.random.default_rng([seed, e]).permutation(n)
        jobs = [(seed, e, b, order[lo : lo + batch_size]) for b, lo in enumerate(range(0, n, batch_size))]
        if pool is None:
            for _, _, _, pos in jobs:
                yield X_clean[table.row[pos]], targets[pos]
            return
        made = bounded_imap(pool, augmented_batch, jobs, ahead=AHEAD_PER_WORKER * workers)
        for (_, _, b, pos), x in zip(jobs, made, strict=True):
            yield mixup(x, targets[pos], mixup_alpha, np.random.default_rng([seed, e, b, 1]))

    ds = tf.data.Dataset.from_generator(batches, output_signature=_signature(X_clean, n_classes))
    ds = ds.apply(tf.data.experimental.assert_cardinality(-(-n // batch_size))).prefetch(2)
    return ds, (pool.terminate if pool is not None else (lambda: None))


def bounded_imap(pool, fn: Callable, jobs: Iterable, ahead: int) -> Iterator:
    """fn(job) for every job, in order, computed by `pool` at most `ahead` jobs ahead of the consumer.

    pool.imap hands the pool every job at once, so workers faster than training pile up finished batches in the
    parent: a whole epoch's worth (0.6 GB at 100k clips) by its end."""
    jobs = iter(jobs)
    pending = deque(pool.apply_async(fn, (job,)) for job in itertools.islice(jobs, ahead))
    while pending:
        result = pending.popleft().get()
        for job in itertools.islice(jobs, 1):
            pending.append(pool.apply_async(fn, (job,)))
        yield result


def eval_dataset(X, table: Windows, n_classes: int, batch_size: int = 32) -> tf.data.Dataset:
    """(features, one-hot target) batches in table order, read from X (an array or a FeatureStore) one batch at a time.

    32 a batch, in order: the batches Keras makes of arrays passed as `validation_data`, so validation figures
    are those of the in-memory arrays."""
    n = len(table.y)

    def batches():
        keep_freed_memory()
        for lo in range(0, n, batch_size):
            yield X[table.row[lo : lo + batch_size]], one_hot(table.y[lo : lo + batch_size], n_classes)

    ds = tf.data.Dataset.from_generator(batches, output_signature=_signature(X, n_classes))
    return ds.apply(tf.data.experimental.assert_cardinality(-(-n // batch_size))).prefetch(2)
