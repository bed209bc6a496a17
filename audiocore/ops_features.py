"""The same MFCC / log-mel features as audiocore.features, computed with keras.ops: batched on whatever backend
Keras runs (TensorFlow here, JAX or torch on a GPU), so features can move to the accelerator with the model.

Step for step what `features.featurize` does with librosa: a centred, zero-padded STFT with the periodic Hann
window, the power spectrum, the cached mel filter bank (the very array librosa builds, see features.mel_basis),
10 log10 with a 1e-10 floor, the per-window `top_db` floor, then for MFCC the orthonormal DCT-II as a matrix
product, and the per-window normalisation when `cmn` (features.normalise). Float32 throughout, so values differ
from librosa's by float32 rounding of a different order of operations (tests/audiocore/test_ops_features.py states
the bound).
Deltas (librosa's Savitzky-Golay filter with its edge handling) are not implemented here: `supports(cfg)` says
which configs this path computes.

librosa stays the reference and the path that training and serving use; this one is measured against it
(docs/performance.md) and is what the GPU work builds on. `waveform_model` wraps a trained model so that it takes
waveform windows, as YAMNet does: features and model then compile into one graph on any backend.
"""

from functools import lru_cache

import keras
import numpy as np
from keras import ops

from audiocore.config import FeatureConfig
from audiocore.features import hann_window, mel_basis


def supports(cfg: FeatureConfig) -> bool:
    """Whether `featurize` below computes this config (everything but deltas)."""
    return not cfg.deltas


@lru_cache(maxsize=16)
def dct_matrix(n_mfcc: int, n_mels: int) -> np.ndarray:
    """(n_mfcc, n_mels) orthonormal DCT-II: scipy.fftpack.dct(x, type=2, norm="ortho", axis=0)[:n_mfcc] = D @ x,
    what librosa.feature.mfcc applies to the dB mel spectrogram."""
    k = np.arange(n_mfcc)[:, None]
    n = np.arange(n_mels)[None, :]
    basis = np.cos(np.pi * k * (2 * n + 1) / (2 * n_mels)) * np.sqrt(2.0 / n_mels)
    basis[0] /= np.sqrt(2.0)
    basis = basis.astype(np.float32)
    basis.flags.writeable = False
    return basis


def featurize(windows, cfg: FeatureConfig):
    """(n, window_samples) waveforms (array or backend tensor) -> (n, frames, n_features) float32 backend tensor."""
    if not supports(cfg):
        raise ValueError("deltas are computed by audiocore.features (librosa) only")
    x = ops.convert_to_tensor(windows, dtype="float32")
    if len(x.shape) != 2 or x.shape[1] != cfg.window_samples:
        raise ValueError(f"expected windows of shape (n, {cfg.window_samples}), got {tuple(x.shape)}")
    half = cfg.n_fft // 2
    x = ops.pad(x, [[0, 0], [half, half]])  # librosa's centring with pad_mode="constant"
    real, imag = ops.stft(
        x,
        sequence_length=cfg.n_fft,
        sequence_stride=cfg.hop_length,
        fft_length=cfg.n_fft,
        window=ops.convert_to_tensor(hann_window(cfg.n_fft), dtype="float32"),
        center=False,
    )  # (n, frames, bins)
    power = real * real + imag * imag
    mel = ops.matmul(power, ops.convert_to_tensor(mel_basis(cfg).T, dtype="float32"))  # (n, frames, n_mels)
    if cfg.scale == "log1p":
        db = ops.log10(10000.0 * mel + 1.0)
    else:
        db = 10.0 * ops.log10(ops.maximum(mel, 1e-10))
        db = ops.maximum(db, ops.max(db, axis=(1, 2), keepdims=True) - cfg.top_db)
    feats = db
    if cfg.kind == "mfcc":
        feats = ops.matmul(db, ops.convert_to_tensor(dct_matrix(cfg.n_mfcc, cfg.n_mels).T))  # (n, frames, n_mfcc)
    if cfg.cmn:
        feats = _normalise(feats, mel, cfg)
    return feats


def _normalise(feats, mel, cfg: FeatureConfig):
    """features.normalise on (n, frames, coefficients): the mean (and with cvn the deviation) over every frame, or
    over the frames within cmn_floor_db of the window's loudest mel energy."""
    if cfg.cmn_floor_db is None:
        mean = lambda x: ops.mean(x, axis=1, keepdims=True)  # noqa: E731
    else:
        energy = 10.0 * ops.log10(ops.maximum(ops.sum(mel, axis=2, keepdims=True), 1e-10))  # (n, frames, 1)
        weights = ops.cast(energy >= ops.max(energy, axis=1, keepdims=True) - cfg.cmn_floor_db, "float32")
        count = ops.sum(weights, axis=1, keepdims=True)
        mean = lambda x: ops.sum(x * weights, axis=1, keepdims=True) / count  # noqa: E731
    out = feats - mean(feats)
    if cfg.cvn:
        out = out / ops.maximum(ops.sqrt(mean(out * out)), 1e-3)
    return out


@keras.saving.register_keras_serializable(package="audioclf")
class WaveformFeatures(keras.layers.Layer):
    """(batch, window_samples) waveforms -> (batch, frames, n_features) features, as `featurize`; the config
    travels in the saved model."""

    def __init__(self, features: dict, **kwargs):
        super().__init__(**kwargs)
        self.features = dict(features)
        self.cfg = FeatureConfig(**self.features)

    def call(self, waveforms):
        return featurize(waveforms, self.cfg)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self.cfg.input_shape)

    def get_config(self):
        return {**super().get_config(), "features": self.features}


def waveform_model(model, cfg: FeatureConfig):
    """`model` (features -> scores) behind a WaveformFeatures layer: (batch, window_samples) waveforms -> scores."""
    if not supports(cfg):
        raise ValueError("deltas are computed by audiocore.features (librosa) only")
    waves = keras.Input(shape=(cfg.window_samples,), dtype="float32", name="waveform")
    feats = WaveformFeatures(cfg.model_dump(mode="json"), name="features")(waves)
    return keras.Model(waves, model(feats), name=f"{model.name}_on_waveforms")
