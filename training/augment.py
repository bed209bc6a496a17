"""Seeded on-the-fly augmentation of training windows, a batch at a time.

Waveform: time shift, gain, additive noise at a random SNR. Spectrogram (before the mel/MFCC step, so the
features are then computed by the shared audiocore code): time stretch and pitch shift, done as the phase
vocoder and resampler would leave the power spectrum (time-axis and frequency-axis interpolation), which costs
a fraction of a millisecond instead of librosa.effects' ~5 ms per window. Then SpecAugment masks.
Every random choice comes from the `rng` passed in, so a run is reproducible.
"""

from collections.abc import Sequence

import numpy as np

from audiocore.config import FeatureConfig
from audiocore.features import features_from_power, power_spectrogram, take_segment
from training.config import AugmentConfig


class Augmenter:
    def __init__(self, cfg: AugmentConfig, features: FeatureConfig, feature_mean: np.ndarray):
        self.cfg = cfg
        self.features = features
        self.fill = np.asarray(feature_mean, dtype=np.float32)  # masked cells become 0 after standardisation

    def batch(self, clips: list[np.ndarray], starts: list[int], rng: np.random.Generator) -> np.ndarray:
        """Augmented features (n, frames, n_features) of the windows of `clips` starting at `starts`."""
        cfg, f = self.cfg, self.features
        sr, win, frames = f.sample_rate, f.window_samples, f.frames_per_window
        n = len(clips)
        rates = np.where(rng.random(n) < cfg.stretch_prob, rng.uniform(*cfg.stretch_range, n), 1.0)
        steps = np.where(rng.random(n) < cfg.pitch_prob, rng.uniform(-1, 1, n) * cfg.pitch_semitones, 0.0)
        shifts = (rng.uniform(-1, 1, n) * cfg.time_shift_s * sr).astype(np.int64)
        gains = np.where(rng.random(n) < cfg.gain_prob, rng.uniform(*cfg.gain_db_range, n), 0.0)
        snrs = np.where(rng.random(n) < cfg.noise_prob, rng.uniform(*cfg.snr_db_range, n), np.inf)

        spans = np.ceil(win * rates).astype(np.int64)  # a faster tempo needs more source audio per window
        segs = np.zeros((n, int(spans.max())), dtype=np.float32)
        for i in range(n):
            centre = starts[i] + win // 2 + shifts[i]
            seg = take_segment(clips[i], int(centre - spans[i] // 2), int(spans[i]))
            seg *= np.float32(10 ** (gains[i] / 20))
            segs[i, : spans[i]] = add_noise(seg, snrs[i], rng)
        power = power_spectrogram(segs, f)
        out = np.empty((n, power.shape[1], frames), dtype=np.float32)
        for i in range(n):
            src_frames = 1 + int(spans[i]) // f.hop_length
            p = stretch_time(power[i, :, :src_frames], frames)
            out[i] = shift_pitch(p, steps[i])
        feats = features_from_power(out, f)
        return np.stack([self.spec(x, rng) for x in feats])

    def spec(self, feats: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """SpecAugment masks over time frames and feature bins of one (frames, features) matrix."""
        cfg = self.cfg
        out = feats.copy()
        frames, bins = out.shape
        for _ in range(cfg.time_masks):
            width = int(rng.integers(0, cfg.time_mask_frames + 1))
            if 0 < width < frames:
                t0 = int(rng.integers(0, frames - width + 1))
                out[t0 : t0 + width, :] = self.fill
        for _ in range(cfg.freq_masks):
            width = int(rng.integers(0, cfg.freq_mask_bins + 1))
            if 0 < width < bins:
                f0 = int(rng.integers(0, bins - width + 1))
                out[:, f0 : f0 + width] = self.fill[f0 : f0 + width]
        return out


def mixup(x: np.ndarray, targets: np.ndarray, alpha: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Mix every window of a batch with another of the same batch (Zhang et al., 2018): features and one-hot
    targets alike, weight lam ~ Beta(alpha, alpha) folded to >= 0.5, so each window stays mostly itself and its
    own class stays the target's largest entry (what Keras's class weights then look up). Mixing raw features
    equals mixing standardised ones: the model's Normalization layer is affine."""
    n = len(x)
    if alpha <= 0 or n < 2:
        return x, targets
    lam = rng.beta(alpha, alpha, n).astype(np.float32)
    lam = np.maximum(lam, 1 - lam)
    other = rng.permutation(n)
    mixed_x = lam[:, None, None] * x + (1 - lam[:, None, None]) * x[other]
    mixed_t = lam[:, None] * targets + (1 - lam[:, None]) * targets[other]
    return mixed_x.astype(np.float32), mixed_t.astype(np.float32)


def add_noise(seg: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """White noise at `snr_db` relative to the power of the non-silent samples (inf: no noise)."""
    if not np.isfinite(snr_db):
        return seg
    active = seg[seg != 0]
    power = float(np.mean(active**2)) if active.size else 0.0
    if power == 0.0:
        return seg
    noise_power = power / (10 ** (snr_db / 10))
    return seg + rng.normal(0.0, np.sqrt(noise_power), size=seg.shape).astype(np.float32)


def stretch_time(power: np.ndarray, frames: int) -> np.ndarray:
    """Resample a (bins, src_frames) power spectrogram to `frames` frames by linear interpolation in time:
    the magnitudes a phase-vocoder time stretch by src_frames/frames would produce."""
    src = power.shape[1]
    if src == frames:
        return power
    pos = np.linspace(0, src - 1, frames)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, src - 1)
    frac = (pos - lo).astype(np.float32)
    return power[:, lo] * (1 - frac) + power[:, hi] * frac


def shift_pitch(power: np.ndarray, semitones: float) -> np.ndarray:
    """Move every frequency f to f * 2^(semitones/12) (linear interpolation over bins; above Nyquist is lost)."""
    if semitones == 0:
        return power
    bins = power.shape[0]
    src = np.arange(bins) / 2 ** (semitones / 12)
    lo = np.floor(src).astype(np.int64)
    frac = (src - lo).astype(np.float32)[:, None]
    valid = lo < bins - 1
    out = np.zeros_like(power)
    out[valid] = power[lo[valid]] * (1 - frac[valid]) + power[lo[valid] + 1] * frac[valid]
    return out


# Worker-process side of training.pipeline.train_dataset: this module imports no TensorFlow, so spawned
# workers start fast and small. `waveforms` is a training.store.WaveStore (it pickles as a path and the clips'
# offsets, and reads a clip from disk when indexed), so no worker holds a copy of the data set.
_WORKER: dict = {}


def init_worker(augmenter: Augmenter, waveforms: Sequence[np.ndarray], clip, start) -> None:
    _WORKER.update(augmenter=augmenter, waveforms=waveforms, clip=clip, start=start)


def augmented_batch(job: tuple[int, int, int, np.ndarray]) -> np.ndarray:
    """Batch b of epoch e's features (its targets stay with the parent): its randomness depends on (seed, e, b)
    alone, whichever worker builds it."""
    seed, e, b, pos = job
    w = _WORKER
    rng = np.random.default_rng([seed, e, b])
    return w["augmenter"].batch([w["waveforms"][c] for c in w["clip"][pos]], w["start"][pos].tolist(), rng)
