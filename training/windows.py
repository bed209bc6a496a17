"""Clips -> model input windows: which clip each window comes from and where it starts, and the windows' clean
features, computed with audiocore exactly as the service computes them. Imports no TensorFlow (augmentation and
caching workers use it)."""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from audiocore.config import FeatureConfig
from audiocore.features import featurize, take_segment, window_starts


@dataclass(frozen=True)
class Windows:
    """One row per model input window: its clip, start sample, label and row in the feature array or store."""

    clip: np.ndarray
    start: np.ndarray
    y: np.ndarray
    row: np.ndarray


def window_table(lengths: np.ndarray, y: np.ndarray, clips: np.ndarray, cfg: FeatureConfig) -> Windows:
    """The windows of `clips` (in that order) given every clip's length in samples; rows numbered from 0."""
    starts = [window_starts(int(lengths[c]), cfg) for c in clips]
    clip = np.repeat(np.asarray(clips, dtype=np.int64), [len(s) for s in starts])
    start = np.concatenate(starts) if starts else np.zeros(0, dtype=np.int64)
    return Windows(clip=clip, start=start, y=y[clip], row=np.arange(len(clip), dtype=np.int64))


def clip_bounds(table: Windows) -> dict[int, slice]:
    """Each clip's rows of `table` (a clip's windows are consecutive): one slice per clip, found in one pass."""
    first = np.flatnonzero(np.r_[True, table.clip[1:] != table.clip[:-1]]) if len(table.clip) else np.zeros(0, int)
    ends = np.r_[first[1:], len(table.clip)]
    return {
        c: slice(lo, hi) for c, lo, hi in zip(table.clip[first].tolist(), first.tolist(), ends.tolist(), strict=True)
    }


def clean_features(waveforms: Sequence[np.ndarray], y: np.ndarray, clips: np.ndarray, cfg: FeatureConfig):
    """(X windows (n, frames, feats), Windows) for `clips`, computed exactly as the service computes them."""
    lengths = np.zeros(len(waveforms), dtype=np.int64)
    for c in clips:
        lengths[c] = len(waveforms[c])
    table = window_table(lengths, y, clips, cfg)
    if len(table.y) == 0:
        return np.zeros((0, *cfg.input_shape), dtype=np.float32), table
    # The service calls extract() per clip; featurize() is per-window by construction, so computing many clips'
    # windows in one call gives the same numbers bit for bit (tests/audiocore/test_features.py,
    # tests/training/test_pipeline.py), ~6x faster.
    rows = list(zip(table.clip.tolist(), table.start.tolist(), strict=True))
    win = cfg.window_samples
    X = np.concatenate(
        [
            featurize(np.stack([take_segment(waveforms[c], s, win) for c, s in rows[lo : lo + 512]]), cfg)
            for lo in range(0, len(rows), 512)
        ]
    )
    if not np.isfinite(X).all():  # decode rejects NaN input, so this would be a bug in feature extraction
        raise FloatingPointError("non-finite values in extracted features")
    return X, table
