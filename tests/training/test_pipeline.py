"""Training-side features equal the serving path, class weights equal scikit-learn's, batches are reproducible, and
the on-disk path (training.store) gives the same statistics and batches as the clips held in memory."""

import subprocess
import sys
from multiprocessing.pool import ThreadPool

import numpy as np
import pytest
from sklearn.utils.class_weight import compute_class_weight

from audiocore.config import FeatureConfig
from audiocore.decode import decode
from audiocore.features import extract
from training.augment import Augmenter
from training.config import AugmentConfig
from training.pipeline import (
    balanced_class_weights,
    bounded_imap,
    clean_features,
    eval_dataset,
    standardisation,
    train_dataset,
)
from training.store import clip_features, content_digests, decode_clips

CFG = FeatureConfig()
N_CLASSES = 4


def clip_paths(fsdd, instrument_flac):
    return [fsdd / f"recordings/{d}_lucas_{i}.wav" for d in range(4) for i in range(3)] + [instrument_flac]


@pytest.fixture(scope="module")
def clips(fsdd, instrument_flac):
    waves = [decode(p, 8000).samples for p in clip_paths(fsdd, instrument_flac)]  # the last is long: many windows
    y = np.array([d for d in range(4) for _ in range(3)] + [0])
    return waves, y


@pytest.fixture(scope="module")
def stored(fsdd, instrument_flac, tmp_path_factory):
    """The same clips through the cache: (WaveStore, FeatureStore)."""
    paths = clip_paths(fsdd, instrument_flac)
    waves = decode_clips(paths, content_digests(paths), 8000, 600.0, tmp_path_factory.mktemp("cache"), True).waves
    return waves, clip_features(waves, CFG)[0]


def test_clean_features_equal_the_service_path_bit_for_bit(clips):
    waves, y = clips
    X, table = clean_features(waves, y, np.arange(len(waves)), CFG)
    per_clip = np.concatenate([extract(w, CFG).windows for w in waves])
    np.testing.assert_array_equal(X, per_clip)
    assert len(table.y) == len(X) and (table.y[table.clip == 12] == 0).all()


@pytest.mark.parametrize("labels", [[0, 0, 0, 1, 2, 2], [3, 1, 1, 1, 1, 0, 2, 2, 0, 0, 0, 0]])
def test_balanced_class_weights_equal_scikit_learn(labels):
    y = np.array(labels)
    n = int(y.max()) + 1
    expected = compute_class_weight("balanced", classes=np.arange(n), y=y)
    got = balanced_class_weights(y, n)
    np.testing.assert_allclose([got[i] for i in range(n)], expected)


def test_class_weights_refuse_a_class_without_windows():
    with pytest.raises(ValueError, match=r"\[1\] have no training windows"):
        balanced_class_weights(np.array([0, 2, 2]), 3)


def test_standardisation_stats_are_per_feature(clips):
    waves, y = clips
    X, _ = clean_features(waves, y, np.arange(len(waves)), CFG)
    mean, var = standardisation(X)
    assert mean.shape == var.shape == (CFG.n_features,) and (var > 0).all()


def batches(ds, epochs=2):
    return [[(x.numpy(), y.numpy()) for x, y in ds] for _ in range(epochs)]


def test_clean_batches_are_reproducible_and_reshuffled(clips):
    waves, y = clips
    X, table = clean_features(waves, y, np.arange(len(waves)), CFG)
    ds1, stop1 = train_dataset(X, table, waves, None, batch_size=4, seed=5, n_classes=N_CLASSES)
    ds2, stop2 = train_dataset(X, table, waves, None, batch_size=4, seed=5, n_classes=N_CLASSES)
    a, b = batches(ds1), batches(ds2)
    for e in range(2):
        for (xa, ya), (xb, yb) in zip(a[e], b[e], strict=True):
            np.testing.assert_array_equal(xa, xb)
            np.testing.assert_array_equal(ya, yb)
    assert not all(np.array_equal(p[1], q[1]) for p, q in zip(a[0], a[1], strict=True))  # a new order each epoch
    assert sum(len(yb) for _, yb in a[0]) == len(table.y)


def test_augmented_batches_do_not_depend_on_worker_count_or_storage(clips, stored):
    """Same seed, same batches: 1 worker with the clips in memory, 2 workers reading them from the cache."""
    waves, y = clips
    X, table = clean_features(waves, y, np.arange(len(waves)), CFG)
    disk_waves, features = stored
    aug = Augmenter(AugmentConfig(), CFG, standardisation(X)[0])
    ds1, stop1 = train_dataset(
        X, table, waves, aug, batch_size=4, seed=9, n_classes=N_CLASSES, workers=1, mixup_alpha=0.4
    )
    ds2, stop2 = train_dataset(
        features,
        features.windows(y, np.arange(len(waves))),
        disk_waves,
        aug,
        batch_size=4,
        seed=9,
        n_classes=N_CLASSES,
        workers=2,
        mixup_alpha=0.4,
    )
    try:
        a, b = batches(ds1, 1), batches(ds2, 1)
    finally:
        stop1()
        stop2()
    for (xa, ya), (xb, yb) in zip(a[0], b[0], strict=True):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    assert not np.array_equal(a[0][0][0], X[: len(a[0][0][0])])


def test_standardisation_read_in_chunks_equals_numpy_over_the_whole_array(clips, stored):
    waves, y = clips
    X, _ = clean_features(waves, y, np.arange(len(waves)), CFG)
    flat = X.reshape(-1, X.shape[-1]).astype(np.float64)
    expected = flat.mean(axis=0).astype(np.float32), flat.var(axis=0).astype(np.float32)
    _, features = stored
    for got in (standardisation(X), standardisation(features, np.arange(len(features)), chunk=3)):
        np.testing.assert_array_equal(got[0], expected[0])
        np.testing.assert_array_equal(got[1], expected[1])


def test_clean_batches_from_the_cache_equal_batches_from_memory(clips, stored):
    waves, y = clips
    X, table = clean_features(waves, y, np.arange(len(waves)), CFG)
    _, features = stored
    mem, _ = train_dataset(X, table, waves, None, batch_size=4, seed=3, n_classes=N_CLASSES)
    disk, _ = train_dataset(
        features, features.windows(y, np.arange(len(waves))), None, None, batch_size=4, seed=3, n_classes=N_CLASSES
    )
    a, b = batches(mem), batches(disk)
    for e in range(2):
        for (xa, ya), (xb, yb) in zip(a[e], b[e], strict=True):
            np.testing.assert_array_equal(xa, xb)
            np.testing.assert_array_equal(ya, yb)


def test_eval_batches_are_the_windows_in_order(clips, stored):
    waves, y = clips
    X, table = clean_features(waves, y, np.arange(len(waves)), CFG)
    _, features = stored
    got = [
        (x.numpy(), t.numpy())
        for x, t in eval_dataset(features, features.windows(y, np.arange(len(waves))), N_CLASSES, 8)
    ]
    assert [len(t) for _, t in got[:-1]] == [8] * (len(got) - 1)
    np.testing.assert_array_equal(np.concatenate([x for x, _ in got]), X)
    np.testing.assert_array_equal(np.concatenate([t for _, t in got]).argmax(axis=1), table.y)


def test_workers_run_a_bounded_number_of_batches_ahead():
    """The pool is handed a job only when a result is taken: finished batches cannot pile up over an epoch."""
    handed = []

    def jobs():
        for j in range(50):
            handed.append(j)
            yield j

    with ThreadPool(2) as pool:
        results = bounded_imap(pool, lambda j: j * j, jobs(), ahead=3)
        taken = [next(results) for _ in range(10)]
        assert len(handed) == 10 + 3
        assert taken + list(results) == [j * j for j in range(50)]


# Run in a fresh interpreter: how many page faults big allocations cause depends on the heap's history.
ALLOCATOR_PROBE = """
import resource, numpy as np, tensorflow as tf
from training.pipeline import M_TRIM_THRESHOLD, _glibc_mallopt, eval_dataset
from training.windows import Windows

def faults(n=40, mb=4):  # minor page faults while allocating, touching and freeing n buffers of mb MB in turn
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(n):
        np.ones(mb * 1024 * 1024 // 8)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

def gen():
    yield np.zeros((2, 3), np.float32)

list(tf.data.Dataset.from_generator(gen, output_signature=tf.TensorSpec((None, 3), tf.float32)))
# TensorFlow's own call ("Memory patch applied: M_TRIM_THRESHOLD=128 kb") did not always land before the next
# line (one CI run measured 120 faults here, against 20560 in the others): make the setting it applies here too.
_glibc_mallopt()(M_TRIM_THRESHOLD, 128 * 1024)
faults(1)
slow = faults()  # after TensorFlow's generator set its allocator option
z = np.zeros(8, np.int64)
list(eval_dataset(np.zeros((8, 3), np.float32), Windows(z, z, z, np.arange(8)), 2, 4))
faults(1)
print(slow, faults(), 40 * 4 * 1024 * 1024 // resource.getpagesize())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator settings")
def test_training_batches_undo_tensorflows_allocator_setting():
    """TensorFlow's generator dataset fixes glibc's trim threshold at 128 kB when it starts, which makes big
    buffers fresh mmaps, zero-filled by the kernel at every use (a 2-4x slower epoch on 2 cores). Once our
    batches are read, freed big buffers are reused again: (almost) no page faults instead of one per page."""
    out = subprocess.run([sys.executable, "-c", ALLOCATOR_PROBE], capture_output=True, text=True, check=True)
    slow, fast, pages = map(int, out.stdout.split())
    assert slow > pages / 4, out.stdout  # the setting that made epochs slow: many buffers are fresh mmaps
    assert fast < slow / 20, out.stdout


def test_batches_carry_the_given_targets_through_augmentation_and_mixup(clips):
    """Soft targets (a teacher's, training.train.teacher_targets) replace the one-hot labels window by window, in
    the batch's order, with or without augmentation; mixup mixes them as it mixes labels."""
    waves, y = clips
    X, table = clean_features(waves, y, np.arange(len(waves)), CFG)
    targets = np.random.default_rng(0).dirichlet(np.ones(N_CLASSES), len(table.y)).astype(np.float32)
    aug = Augmenter(AugmentConfig(), CFG, standardisation(X)[0])
    clean, stop_clean = train_dataset(X, table, waves, None, 4, 3, N_CLASSES, targets=targets)
    augmented, stop_aug = train_dataset(X, table, waves, aug, 4, 3, N_CLASSES, targets=targets)
    mixed, stop_mixed = train_dataset(X, table, waves, aug, 4, 3, N_CLASSES, mixup_alpha=0.4, targets=targets)
    try:
        a, b, c = batches(clean, 1)[0], batches(augmented, 1)[0], batches(mixed, 1)[0]
    finally:
        stop_aug()
        stop_mixed()
    window = {np.asarray(X[r]).tobytes(): i for i, r in enumerate(table.row)}
    for x, t in a:  # clean windows: each batch row's target is its own window's
        for xi, ti in zip(x, t, strict=True):
            np.testing.assert_array_equal(ti, targets[window[xi.tobytes()]])
    for (_, ta), (_, tb), (_, tc) in zip(a, b, c, strict=True):
        np.testing.assert_array_equal(ta, tb)  # the same order: batch b of epoch e holds the same windows
        np.testing.assert_allclose(tc.sum(axis=1), 1, atol=1e-5)
    assert any(not np.array_equal(ta, tc) for (_, ta), (_, tc) in zip(a, c, strict=True))
    with pytest.raises(ValueError, match="targets have shape"):
        train_dataset(X, table, waves, None, 4, 3, N_CLASSES, targets=targets[:-1])
