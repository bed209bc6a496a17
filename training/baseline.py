"""The baseline beside the CNN: logistic regression on standardised clip-mean MFCCs (the classic table row)."""

import librosa
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from audiocore.config import FeatureConfig
from training.evaluate import metrics


def clip_mean_mfcc(wave: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    """Mean of n_mfcc MFCCs over all frames of the whole, unpadded clip."""
    n_fft = min(cfg.n_fft, max(16, len(wave)))
    mfcc = librosa.feature.mfcc(
        y=wave, sr=cfg.sample_rate, n_mfcc=cfg.n_mfcc, n_fft=n_fft, hop_length=cfg.hop_length, n_mels=cfg.n_mels
    )
    return mfcc.mean(axis=1)


def run_baseline(waveforms, y, split: dict[str, np.ndarray], labels, cfg: FeatureConfig, balanced: bool, seed: int):
    """Fit on train, report metrics for every split."""
    X = np.stack([clip_mean_mfcc(w, cfg) for w in waveforms])
    clf = make_pipeline(
        StandardScaler(),
        LogisticRegression(max_iter=5000, class_weight="balanced" if balanced else None, random_state=seed),
    )
    clf.fit(X[split["train"]], y[split["train"]])
    return {name: metrics(y[idx], clf.predict_proba(X[idx]), labels) for name, idx in split.items() if len(idx)}
