"""Hostile and broken uploads, built from real audio, and broken models: shared by the CI tests
(tests/service/test_hostile.py, test_main.py) and the reliability run (scripts/reliability), which measures the
server's memory while it answers them.

Each case names the file, and what the service must answer with the server's limits of 2 MB and 30 s (as
tests/conftest.py and scripts/reliability set them): the error code (None: classified, 200) and the HTTP status.
gRPC gets the same code with the status of service.errors.STATUS.
"""

import io
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

RATE = 8000


@dataclass(frozen=True)
class Case:
    name: str
    data: bytes
    code: str | None  # None: a valid answer (200)
    http: int
    filename: str = "clip.wav"
    http_only: bool = False  # file names exist only in HTTP forms


def _encode(x: np.ndarray, rate: int, fmt: str, subtype: str | None = None) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, rate, format=fmt, subtype=subtype)
    return buf.getvalue()


def _patch(data: bytes, marker: bytes, offset: int, fmt: str, value: int) -> bytes:
    out = bytearray(data)
    pos = out.index(marker) + offset
    out[pos : pos + struct.calcsize(fmt)] = struct.pack(fmt, value)
    return bytes(out)


def _flac_total_samples(flac: bytes, total: int) -> bytes:
    """Rewrite STREAMINFO's 36-bit total-samples field (0 means 'unknown')."""
    out = bytearray(flac)
    start = 4 + 4 + 10  # 'fLaC', the metadata block header, then 10 bytes of STREAMINFO before the field's byte
    word = int.from_bytes(out[start : start + 8], "big")
    word = (word & ~((1 << 36) - 1)) | total
    out[start : start + 8] = word.to_bytes(8, "big")
    return bytes(out)


def cases(digit_wav: bytes, max_upload_bytes: int = 2_000_000) -> list[Case]:
    """Every hostile input of docs/reliability.md, from the real recording `digit_wav` (8 kHz mono 16-bit)."""
    x, rate = sf.read(io.BytesIO(digit_wav), dtype="float32")
    tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(RATE) / RATE)).astype(np.float32)
    nan = x.copy()
    nan[len(nan) // 2] = np.nan
    inf = x.copy()
    inf[10] = np.inf
    hour = _encode(np.zeros(RATE * 3600, np.int16), RATE, "FLAC")  # ~90 kB
    return [
        Case("empty file", b"", "empty", 400),
        Case("random bytes", np.random.default_rng(0).bytes(50_000), "unsupported_format", 415, "noise.bin"),
        Case("text", b"these are not the samples you are looking for\n" * 100, "unsupported_format", 415, "a.txt"),
        Case("truncated header (20 bytes)", digit_wav[:20], "unsupported_format", 415),
        Case("header only (44 bytes)", digit_wav[:44], "empty", 400),
        Case("header claims 2 GB of data", _patch(digit_wav, b"data", 4, "<I", 0x7FFF_FFF0), None, 200),
        Case("header claims 50 samples", _patch(digit_wav, b"data", 4, "<I", 100), "too_short", 422),
        Case("zero sample rate", _patch(digit_wav, b"fmt ", 12, "<I", 0), "unsupported_format", 415),
        Case("NaN samples", _encode(nan, rate, "WAV", "FLOAT"), "invalid_samples", 422),
        Case("Inf samples", _encode(inf, rate, "WAV", "FLOAT"), "invalid_samples", 422),
        Case("one sample", _encode(np.array([0.5], np.float32), RATE, "WAV", "FLOAT"), "too_short", 422),
        Case("33 channels", _patch(digit_wav, b"fmt ", 10, "<H", 33), "invalid_samples", 422),
        Case("8 channels at 655 kHz", _encode(np.zeros((1000, 8), np.int16), 655_350, "FLAC"), "invalid_samples", 422),
        Case(
            "8 channels at 192 kHz, 30 s (46 M samples)",
            _encode(np.zeros((192_000 * 30, 8), np.int16), 192_000, "FLAC"),
            "too_large",
            413,
        ),
        Case("silence", _encode(np.zeros(RATE, np.float32), RATE, "WAV"), "silent", 422),
        Case("over the size limit", bytes(max_upload_bytes + 1), "too_large", 413),
        Case("tiny FLAC declaring 1 h", hour, "too_long", 413, "hour.flac"),
        Case(
            "FLAC with 1 s, header claims 1 h",
            _flac_total_samples(_encode(tone, RATE, "FLAC"), RATE * 3600),
            "too_long",
            413,
        ),
        Case("tiny FLAC, 1 h, length unknown", _flac_total_samples(hour, 0), "too_long", 413, "hour.flac"),
        Case("name with ../ path", digit_wav, None, 200, "../../../etc/passwd", http_only=True),
        Case("name 300 bytes long", digit_wav, "invalid_form", 400, "a" * 296 + ".wav", http_only=True),
        Case("name with NUL and CR LF", digit_wav, "invalid_form", 400, "a\x00b\r\nX-Evil: 1.wav", http_only=True),
        Case("unicode name", digit_wav, None, 200, "ziffer-sieben-\u2603-\u0663.wav", http_only=True),
    ]


# Broken models, each applied to a copy of a model folder: the service must refuse to start, in one line.
def truncate_model(folder: Path) -> None:
    (folder / "model.keras").write_bytes((folder / "model.keras").read_bytes()[:1000])


def flip_a_byte(folder: Path) -> None:
    data = bytearray((folder / "model.keras").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / "model.keras").write_bytes(bytes(data))


def break_metadata(folder: Path) -> None:
    (folder / "metadata.json").write_text('{"labels": ["a"]')


DAMAGED_MODELS = {  # version name -> (what it is, how it is made)
    "truncated": ("model.keras truncated", truncate_model),
    "flipped": ("model.keras with a flipped byte", flip_a_byte),
    "badmeta": ("metadata.json not JSON", break_metadata),
}
