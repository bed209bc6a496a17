"""Training-side features equal the serving path, class weights equal scikit-learn's, batches are reproducible."""

import numpy as np
import pytest
from sklearn.utils.class_weight import compute_class_weight

from audiocore.config import FeatureConfig
from audiocore.decode import decode
from audiocore.features import extract
from training.augment import Augmenter
from training.config import AugmentConfig
from training.pipeline import balanced_class_weights, clean_features, standardisation, train_dataset

CFG = FeatureConfig()


@pytest.fixture(scope="module")
def clips(fsdd, instrument_flac):
    waves = [decode(fsdd / f"recordings/{d}_lucas_{i}.wav", 8000).samples for d in range(4) for i in range(3)]
    waves.append(decode(instrument_flac, 8000).samples)  # a long clip: many windows
    y = np.array([d for d in range(4) for _ in range(3)] + [0])
    return waves, y


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
    ds1, stop1 = train_dataset(X, table, waves, None, batch_size=4, seed=5)
    ds2, stop2 = train_dataset(X, table, waves, None, batch_size=4, seed=5)
    a, b = batches(ds1), batches(ds2)
    for e in range(2):
        for (xa, ya), (xb, yb) in zip(a[e], b[e], strict=True):
            np.testing.assert_array_equal(xa, xb)
            np.testing.assert_array_equal(ya, yb)
    assert not all(np.array_equal(p[1], q[1]) for p, q in zip(a[0], a[1], strict=True))  # a new order each epoch
    assert sum(len(yb) for _, yb in a[0]) == len(table.y)


def test_augmented_batches_do_not_depend_on_worker_count(clips):
    waves, y = clips
    X, table = clean_features(waves, y, np.arange(len(waves)), CFG)
    aug = Augmenter(AugmentConfig(), CFG, standardisation(X)[0])
    ds1, stop1 = train_dataset(X, table, waves, aug, batch_size=4, seed=9, workers=1)
    ds2, stop2 = train_dataset(X, table, waves, aug, batch_size=4, seed=9, workers=2)
    try:
        a, b = batches(ds1, 1), batches(ds2, 1)
    finally:
        stop1()
        stop2()
    for (xa, ya), (xb, yb) in zip(a[0], b[0], strict=True):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    assert not np.array_equal(a[0][0][0], X[: len(a[0][0][0])])
