"""Bytes or a file -> mono float32 waveform at the configured sample rate, or a typed AudioError saying why not.

soundfile (libsndfile) reads wav, flac, ogg and mp3 by content, not by file name, so an mp3 named .wav works.
"""

import io
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from audiocore.errors import (
    AudioTooLarge,
    AudioTooLong,
    AudioTooShort,
    CorruptAudio,
    EmptyAudio,
    InvalidSamples,
    SilentAudio,
    UnsupportedFormat,
)

MAX_CHANNELS = 32
# Above the highest rate real recordings use (192 kHz): a header claiming more is hostile or broken.
MAX_SAMPLE_RATE = 384_000
# Samples (frames x channels) one file may decode to: 60 s of 8 channels at 48 kHz is 23 M. Together with the
# duration limit this bounds the CPU a small compressed file can demand; memory is bounded by reading in blocks
# and mixing each to mono at once, so only the mono signal (<= max_seconds x MAX_SAMPLE_RATE) is ever held whole.
MAX_DECODED_SAMPLES = 2**25
BLOCK_FRAMES = 2**16
UNKNOWN_FRAMES = 2**62
MIN_SECONDS = 0.01  # the shortest FSDD digit is ~0.14 s; below 10 ms there is nothing to classify
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
        if frames >= UNKNOWN_FRAMES:  # libsndfile's "length unknown" (a FLAC whose header says 0 samples)
            frames = 0
        if rate <= 0 or rate > MAX_SAMPLE_RATE:
            raise InvalidSamples(f"declared sample rate {rate} Hz is outside 1..{MAX_SAMPLE_RATE}", source=source)
        if channels < 1 or channels > MAX_CHANNELS:
            raise InvalidSamples(f"{channels} channels (at most {MAX_CHANNELS} accepted)", source=source)
        if max_seconds is not None and frames > 0 and frames / rate > max_seconds:
            raise AudioTooLong(
                f"declares {frames / rate:.1f} s of audio; the limit is {max_seconds:g} s", source=source
            )
        if frames > 0 and frames * channels > MAX_DECODED_SAMPLES:
            raise AudioTooLarge(
                f"declares {frames * channels} samples ({channels} channels at {rate} Hz); "
                f"the limit is {MAX_DECODED_SAMPLES}",
                source=source,
            )
        mono = _read_mono(handle, rate, channels, max_seconds, source)
    if len(mono) == 0:
        raise EmptyAudio("the file contains no audio samples", source=source)
    if len(mono) < MIN_SECONDS * rate:
        raise AudioTooShort(
            f"{len(mono)} samples ({len(mono) / rate * 1000:.2f} ms); at least {MIN_SECONDS * 1000:g} ms needed",
            source=source,
        )
    if float(np.max(np.abs(mono))) < SILENCE_PEAK:
        raise SilentAudio("the audio is silent (peak below -100 dBFS)", source=source)
    return Audio(
        samples=resample(mono, rate, sample_rate),
        sample_rate=sample_rate,
        original_sample_rate=rate,
        channels=channels,
    )


def _read_mono(handle: sf.SoundFile, rate: int, channels: int, max_seconds: float | None, source) -> np.ndarray:
    """All frames, mixed to mono block by block; stops as soon as the audio passes a limit, whatever the header
    said (formats without a length, or a header that lies about it)."""
    max_frames = min(
        MAX_DECODED_SAMPLES // channels, int(max_seconds * rate) if max_seconds is not None else MAX_DECODED_SAMPLES
    )
    blocks, seen = [], 0
    while True:
        try:
            block = handle.read(BLOCK_FRAMES, dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError, ValueError, MemoryError) as exc:
            raise CorruptAudio(f"decoding failed: {_short(exc)}", source=source) from exc
        if len(block) == 0:
            break
        seen += len(block)
        if seen > max_frames:
            if max_seconds is not None and seen / rate > max_seconds:
                raise AudioTooLong(
                    f"more than {max_seconds:g} s of audio; the limit is {max_seconds:g} s", source=source
                )
            raise AudioTooLarge(f"more than {MAX_DECODED_SAMPLES} samples; that is the limit", source=source)
        if not np.isfinite(block).all():
            raise InvalidSamples("samples contain NaN or infinity", source=source)
        blocks.append(block.mean(axis=1, dtype=np.float32) if channels > 1 else block[:, 0].copy())
    return np.concatenate(blocks) if blocks else np.zeros(0, dtype=np.float32)


def resample(samples: np.ndarray, orig_rate: int, target_rate: int) -> np.ndarray:
    """High-quality, deterministic resampling (soxr HQ, the same as librosa's default)."""
    if orig_rate == target_rate:
        return np.ascontiguousarray(samples, dtype=np.float32)
    return soxr.resample(samples, orig_rate, target_rate, quality="HQ").astype(np.float32, copy=False)


_BUFFER_REPR = re.compile(r"<_io\.BytesIO object at 0x[0-9a-fA-F]+>")


def _short(exc: Exception) -> str:
    """libsndfile's last line, without the Python object it names when reading from memory."""
    text = str(exc).strip()
    if not text:
        return type(exc).__name__
    return _BUFFER_REPR.sub("the file", text.splitlines()[-1])[:200]
