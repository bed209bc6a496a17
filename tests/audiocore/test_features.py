"""Windowing and features: shapes, determinism, and independence of a window from its neighbours."""

import numpy as np
import pytest
from pydantic import ValidationError

from audiocore.config import FeatureConfig
from audiocore.decode import decode
from audiocore.features import extract, featurize, frame, mel_basis, power_spectrogram, take_segment, window_starts

CFG = FeatureConfig(cmn=True)  # FSDD recipe: 8 kHz, 1-s windows, 20 MFCCs, cepstral mean normalisation


def test_short_clip_is_one_centred_window():
    starts = window_starts(3000, CFG)
    assert starts.tolist() == [-2500]  # (8000 - 3000) / 2 samples of padding before the clip
    windows, _ = frame(np.ones(3000, dtype=np.float32), CFG)
    assert windows.shape == (1, 8000)
    assert windows[0, :2500].sum() == 0 and windows[0, 2500:5500].sum() == 3000 and windows[0, 5500:].sum() == 0


def test_long_clip_windows_cover_everything_and_last_is_end_aligned():
    n = 8000 * 3 + 1234
    starts = window_starts(n, CFG)
    assert starts[0] == 0 and starts[-1] == n - CFG.window_samples
    assert np.all(np.diff(starts) <= CFG.hop_samples)


def test_take_segment_pads_outside_the_clip():
    x = np.arange(1, 6, dtype=np.float32)
    assert take_segment(x, -2, 4).tolist() == [0, 0, 1, 2]
    assert take_segment(x, 3, 4).tolist() == [4, 5, 0, 0]


@pytest.mark.parametrize(
    "cfg",
    [
        FeatureConfig(),
        FeatureConfig(deltas=True, n_mfcc=13),
        FeatureConfig(kind="logmel", n_mels=64, sample_rate=16000, n_fft=512, hop_length=160),
    ],
)
def test_shapes_follow_the_config(digit_wav, cfg):
    feats = extract(decode(digit_wav, cfg.sample_rate).samples, cfg)
    assert feats.windows.shape == (1, *cfg.input_shape)
    assert feats.windows.dtype == np.float32 and np.isfinite(feats.windows).all()


def test_features_are_deterministic(instrument_flac):
    cfg = FeatureConfig(kind="logmel", sample_rate=16000, n_fft=512, hop_length=160)
    x = decode(instrument_flac, 16000).samples
    a, b = extract(x, cfg), extract(x, cfg)
    np.testing.assert_array_equal(a.windows, b.windows)
    assert len(a.starts_s) > 1 and np.allclose(a.ends_s - a.starts_s, 1.0)


def test_a_window_does_not_depend_on_its_batch(instrument_flac):
    """The dB floor is per window: featurising windows one by one equals featurising them together."""
    x = decode(instrument_flac, 8000).samples
    windows, _ = frame(x, CFG)
    together = featurize(windows, CFG)
    alone = np.concatenate([featurize(w[None], CFG) for w in windows])
    np.testing.assert_array_equal(together, alone)


def test_digit_windows_batched_together_equal_each_alone(fsdd):
    """Regression: the mel step was one BLAS call per batch, and 2-70 FSDD digits featurised together differed
    from each alone by up to 6e-5. Training caches features in batches of any make-up; serving computes a clip."""
    clips = [decode(fsdd / f"recordings/{d}_jackson_{i}.wav", 8000).samples for d in range(10) for i in range(7)]
    windows = np.concatenate([frame(c, CFG)[0] for c in clips])
    alone = np.concatenate([featurize(w[None], CFG) for w in windows])
    for n in (2, 3, 17, len(windows)):
        np.testing.assert_array_equal(featurize(windows[:n], CFG), alone[:n])


def test_featurize_rejects_wrong_window_length():
    with pytest.raises(ValueError, match="expected windows"):
        featurize(np.zeros((2, 100), dtype=np.float32), CFG)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"fmax": 5000}, "Nyquist"),
        ({"n_fft": 16000}, "longer than one window"),
        ({"n_mfcc": 50}, "cannot exceed n_mels"),
        ({"kind": "logmel", "deltas": True}, "only defined for kind='mfcc'"),
        ({"sample_rate": 0}, "greater than 0"),
        ({"windw_seconds": 1}, "Extra inputs"),
        ({"cvn": True}, "set cmn: true"),
        ({"cmn_floor_db": 40}, "set cmn: true"),
    ],
)
def test_config_errors_are_clear(kwargs, message):
    with pytest.raises(ValidationError, match=message):
        FeatureConfig(**kwargs)


def test_cmn_makes_features_independent_of_gain(digit_wav):
    x = decode(digit_wav, 8000).samples
    loud, quiet = extract(x, CFG).windows, extract(0.25 * x, CFG).windows
    np.testing.assert_allclose(loud, quiet, atol=2e-3)
    no_cmn = CFG.model_copy(update={"cmn": False})
    assert np.abs(extract(x, no_cmn).windows - extract(0.25 * x, no_cmn).windows).max() > 1.0


VOICED = CFG.model_copy(update={"cmn_floor_db": 40.0})


def test_voiced_cmn_ignores_what_is_quiet_around_the_word(digit_wav):
    """With cmn_floor_db, frames 40 dB below the loudest do not enter the mean: faint noise in the padding around a
    short word leaves the word's frames as they were, where the all-frames mean moves them."""
    x = decode(digit_wav, 8000).samples
    pad = np.zeros(2000, np.float32)
    hiss = np.random.default_rng(0).normal(0, 1e-4, 2000).astype(np.float32)  # ~60 dB below the word
    clean, noisy = np.concatenate([pad, x, pad]), np.concatenate([hiss, x, hiss])
    word = slice(30, 70)  # frames of the centred word (the clip is ~0.4 s of the 1-s window)
    for cfg, moves in [(VOICED, False), (CFG, True)]:
        a, b = extract(clean, cfg).windows[0, word], extract(noisy, cfg).windows[0, word]
        assert bool(np.abs(a - b).max() > 0.5) is moves, cfg


def test_cvn_gives_unit_deviation_over_the_voiced_frames(digit_wav):
    cfg = VOICED.model_copy(update={"cvn": True})
    x = decode(digit_wav, 8000).samples
    windows, _ = frame(x, cfg)
    mel = np.matmul(mel_basis(cfg), power_spectrogram(windows, cfg))[0]
    energy = 10 * np.log10(np.maximum(mel.sum(axis=0), 1e-10))
    voiced = energy >= energy.max() - 40
    assert 10 < voiced.sum() < 101
    feats = featurize(windows, cfg)[0, voiced]
    np.testing.assert_allclose(feats.mean(axis=0), 0, atol=1e-4)
    np.testing.assert_allclose(feats.std(axis=0), 1, atol=1e-3)


def test_log1p_scale_is_musicnns_input(instrument_flac):
    """scale='log1p' on a 16 kHz clip: what musicnn's extractor computes, log10(1 + 10000 * librosa mel power)
    (n_fft 512, hop 256, 96 bands), window by window."""
    import librosa

    cfg = FeatureConfig(
        sample_rate=16000, window_seconds=2.976, kind="logmel", n_fft=512, hop_length=256, n_mels=96, scale="log1p"
    )
    windows, _ = frame(decode(instrument_flac, 16000, max_seconds=600).samples, cfg)
    mel = librosa.feature.melspectrogram(y=windows, sr=16000, n_fft=512, hop_length=256, n_mels=96)
    expected = np.transpose(np.log10(10000 * mel + 1), (0, 2, 1))
    got = featurize(windows, cfg)
    assert got.shape == (len(windows), 187, 96)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_log1p_scale_is_for_log_mel_only():
    with pytest.raises(ValidationError, match="log1p"):
        FeatureConfig(kind="mfcc", scale="log1p")
