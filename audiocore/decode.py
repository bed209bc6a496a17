"""Bytes or a file -> mono float32 waveform at the configured sample rate, or a typed AudioError saying why not.

soundfile (libsndfile) reads wav, flac, ogg and mp3 by content, not by file name, so an mp3 named .wav works.
"""

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from audiocore.errors import (
    AudioTooLong,
    CorruptAudio,
    EmptyAudio,
    InvalidSamples,
    SilentAudio,
    UnsupportedFormat,
)

MAX_CHANNELS = 32
SILENCE_PEAK = 1e-5  # below -100 dBFS everywhere: nothing to classify


@dataclass(frozen=True)
class Audio:
    samples: np.ndarray  # float32, mono, at `sample_rate`
    sample_rate: int
    original_sample_rate: int
    channels: int

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate


def decode(
    data: bytes | str | Path,
    sample_rate: int,
    *,
    max_seconds: float | None = None,
    source: str | None = None,
) -> Audio:
    """Decode `data` (encoded bytes or a path), mix to mono and resample to `sample_rate`.

    The declared length is checked against `max_seconds` before any sample is decoded, so a small compressed
    file that claims an hour of audio costs nothing.
    """
    if isinstance(data, (str, Path)):
        source = source or str(data)
        try:
            data = Path(data).read_bytes()
        except OSError as exc:
            raise CorruptAudio(f"cannot read file ({exc.strerror})", source=source) from exc
    if len(data) == 0:
        raise EmptyAudio("the file is empty (0 bytes)", source=source)
    try:
        handle = sf.SoundFile(io.BytesIO(data))
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise UnsupportedFormat(
            f"not a readable audio file (wav, flac, ogg or mp3 expected): {_short(exc)}", source=source
        ) from exc
    with handle:
        rate, channels, frames = handle.samplerate, handle.channels, handle.frames
        if rate <= 0:
            raise InvalidSamples(f"declared sample rate {rate} Hz is not positive", source=source)
        if channels < 1 or channels > MAX_CHANNELS:
            raise InvalidSamples(f"{channels} channels (at most {MAX_CHANNELS} accepted)", source=source)
        if max_seconds is not None and frames > 0 and frames / rate > max_seconds:
            raise AudioTooLong(
                f"declares {frames / rate:.1f} s of audio; the limit is {max_seconds:g} s", source=source
            )
        try:
            stereo = handle.read(dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError, ValueError, MemoryError) as exc:
            raise CorruptAudio(f"decoding failed: {_short(exc)}", source=source) from exc
    if stereo.shape[0] == 0:
        raise EmptyAudio("the file contains no audio samples", source=source)
    if max_seconds is not None and stereo.shape[0] / rate > max_seconds:  # formats whose header had no length
        raise AudioTooLong(f"{stereo.shape[0] / rate:.1f} s of audio; the limit is {max_seconds:g} s", source=source)
    if not np.isfinite(stereo).all():
        raise InvalidSamples("samples contain NaN or infinity", source=source)
    mono = stereo.mean(axis=1, dtype=np.float32) if channels > 1 else stereo[:, 0]
    if float(np.max(np.abs(mono))) < SILENCE_PEAK:
        raise SilentAudio("the audio is silent (peak below -100 dBFS)", source=source)
    return Audio(
        samples=resample(mono, rate, sample_rate),
        sample_rate=sample_rate,
        original_sample_rate=rate,
        channels=channels,
    )


def resample(samples: np.ndarray, orig_rate: int, target_rate: int) -> np.ndarray:
    """High-quality, deterministic resampling (soxr HQ, the same as librosa's default)."""
    if orig_rate == target_rate:
        return np.ascontiguousarray(samples, dtype=np.float32)
    return soxr.resample(samples, orig_rate, target_rate, quality="HQ").astype(np.float32, copy=False)


def _short(exc: Exception) -> str:
    return str(exc).strip().splitlines()[-1][:200] if str(exc).strip() else type(exc).__name__
