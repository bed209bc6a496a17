"""Augmentation keeps shapes, is reproducible from its seed, and each transform does what it says."""

import numpy as np
import pytest

from audiocore.config import FeatureConfig
from audiocore.decode import decode
from audiocore.features import featurize, power_spectrogram, take_segment
from training.augment import Augmenter, add_noise, mixup, shift_pitch, stretch_time
from training.config import AugmentConfig

CFG = FeatureConfig()


@pytest.fixture(scope="module")
def clips(fsdd):
    return [decode(fsdd / f"recordings/{d}_theo_20.wav", 8000).samples for d in range(8)]


def starts(clips):
    return [-(CFG.window_samples - len(c)) // 2 for c in clips]


def make(cfg: AugmentConfig | None = None):
    return Augmenter(cfg or AugmentConfig(), CFG, np.zeros(CFG.n_features, dtype=np.float32))


def test_batch_keeps_the_feature_shape(clips):
    out = make().batch(clips, starts(clips), np.random.default_rng(0))
    assert out.shape == (len(clips), *CFG.input_shape) and out.dtype == np.float32
    assert np.isfinite(out).all()


def test_same_seed_same_batch_other_seed_other_batch(clips):
    aug = make()
    a = aug.batch(clips, starts(clips), np.random.default_rng(7))
    b = aug.batch(clips, starts(clips), np.random.default_rng(7))
    c = aug.batch(clips, starts(clips), np.random.default_rng(8))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_everything_off_gives_the_clean_features(clips):
    off = AugmentConfig(
        time_shift_s=0, stretch_prob=0, pitch_prob=0, noise_prob=0, gain_prob=0, time_masks=0, freq_masks=0
    )
    out = make(off).batch(clips, starts(clips), np.random.default_rng(0))
    clean = featurize(
        np.stack([take_segment(c, s, CFG.window_samples) for c, s in zip(clips, starts(clips), strict=True)]), CFG
    )
    np.testing.assert_allclose(out, clean, atol=1e-4)


def test_noise_hits_the_requested_snr():
    rng = np.random.default_rng(0)
    x = np.sin(np.linspace(0, 800 * np.pi, 8000)).astype(np.float32)
    noisy = add_noise(x, 20.0, rng)
    snr = 10 * np.log10(np.mean(x**2) / np.mean((noisy - x) ** 2))
    assert abs(snr - 20.0) < 0.5


def test_pitch_shift_moves_a_tone_by_the_semitones():
    t = np.arange(8000) / 8000
    tone = np.sin(2 * np.pi * 500 * t).astype(np.float32)[None]
    power = power_spectrogram(tone, CFG)[0]
    shifted = shift_pitch(power, 12.0)  # one octave up: 500 Hz -> 1000 Hz
    peak_hz = lambda p: np.argmax(p.mean(axis=1)) * 8000 / CFG.n_fft  # noqa: E731
    assert abs(peak_hz(power) - 500) < 40 and abs(peak_hz(shifted) - 1000) < 40


def test_time_stretch_resamples_the_frames():
    power = np.arange(12, dtype=np.float32)[None].repeat(3, axis=0)
    out = stretch_time(power, 6)
    assert out.shape == (3, 6) and out[0, 0] == 0 and out[0, -1] == 11


def test_spec_masks_use_the_fill_value(clips):
    cfg = AugmentConfig(time_masks=3, time_mask_frames=20, freq_masks=2, freq_mask_bins=5)
    aug = Augmenter(cfg, CFG, np.full(CFG.n_features, 123.0, dtype=np.float32))
    x = np.zeros(CFG.input_shape, dtype=np.float32)
    out = aug.spec(x, np.random.default_rng(1))
    assert out.shape == x.shape and (out == 123.0).any() and set(np.unique(out)) <= {0.0, 123.0}


def test_mixup_blends_features_and_targets_alike_and_keeps_each_window_its_own_class():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, *CFG.input_shape)).astype(np.float32)
    y = np.eye(4, dtype=np.float32)[np.arange(16) % 4]
    mx, my = mixup(x, y, 0.4, np.random.default_rng(3))
    assert mx.shape == x.shape and mx.dtype == np.float32 and my.dtype == np.float32
    np.testing.assert_allclose(my.sum(axis=1), 1.0, rtol=1e-6)
    assert (my[np.arange(16), np.arange(16) % 4] >= 0.5).all()  # each window's own class keeps >= half the target
    # window i = lam_i * itself + (1 - lam_i) * window j of the batch, with the same lam_i and j for its target
    draws = np.random.default_rng(3)
    lam = draws.beta(0.4, 0.4, 16).astype(np.float32)
    lam = np.maximum(lam, 1 - lam)
    other = draws.permutation(16)
    np.testing.assert_allclose(mx, lam[:, None, None] * x + (1 - lam[:, None, None]) * x[other], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(my, lam[:, None] * y + (1 - lam[:, None]) * y[other], rtol=1e-5, atol=1e-6)
    assert not np.array_equal(mx, x)


def test_mixup_off_returns_the_batch_unchanged():
    x = np.ones((4, *CFG.input_shape), dtype=np.float32)
    y = np.eye(4, dtype=np.float32)
    mx, my = mixup(x, y, 0.0, np.random.default_rng(0))
    assert mx is x and my is y
