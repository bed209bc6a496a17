"""An encoded file -> its decoded audio cut into the model's windows: the first half of every prediction, the same
for the service, training's evaluation and the benchmark's in-process limit.

The windows' features come from audiocore.features.featurize: one clip's at once (training's evaluation), or
batched across clips (the service's scorer, the benchmark's in-process limit).
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from audiocore.config import FeatureConfig
from audiocore.decode import Audio, decode
from audiocore.errors import AudioTooLarge
from audiocore.features import frame


@dataclass(frozen=True)
class Limits:
    """What a caller accepts before decoding: encoded size and audio length (None: no limit)."""

    max_bytes: int | None = None
    max_seconds: float | None = None


NO_LIMITS = Limits()


@dataclass(frozen=True)
class Prepared:
    audio: Audio
    windows: np.ndarray  # (n, window_samples) waveforms: the model's windows before features
    starts_s: np.ndarray  # each window's start in the clip, seconds (negative when centred with padding)
    window_s: float

    @property
    def ends_s(self) -> np.ndarray:
        return self.starts_s + self.window_s


def prepare(data: bytes | Path, cfg: FeatureConfig, limits: Limits = NO_LIMITS) -> Prepared:
    """Encoded file (bytes or a path) -> decoded clip cut into the model's windows; raises AudioError saying what
    is wrong with it."""
    if limits.max_bytes is not None and isinstance(data, bytes) and len(data) > limits.max_bytes:
        raise AudioTooLarge(f"the file has {len(data)} bytes; the limit is {limits.max_bytes}")
    audio = decode(data, cfg.sample_rate, max_seconds=limits.max_seconds)
    windows, starts = frame(audio.samples, cfg)
    return Prepared(audio=audio, windows=windows, starts_s=starts / cfg.sample_rate, window_s=cfg.window_seconds)
