"""Property-based tests of decode + features: on random bytes, mutated real files and random valid audio, only the
documented AudioError subclasses come out, and whatever decodes yields finite features of the model's shape.

Bounded and deterministic (derandomize, fixed example counts, no deadline on a shared 2-core machine), so CI is
stable; a failure prints the falsifying example.
"""

import io

import numpy as np
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audiocore import errors
from audiocore.config import FeatureConfig
from audiocore.decode import decode
from audiocore.features import extract

DOCUMENTED = (
    errors.EmptyAudio,
    errors.UnsupportedFormat,
    errors.CorruptAudio,
    errors.AudioTooLong,
    errors.AudioTooShort,
    errors.AudioTooLarge,
    errors.SilentAudio,
    errors.InvalidSamples,
)
CFG = FeatureConfig(cmn=True)
FUZZ = settings(
    max_examples=150, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)


def _check(data: bytes) -> None:
    """decode + extract: either features of the right shape, or a documented error; nothing else."""
    try:
        audio = decode(data, CFG.sample_rate, max_seconds=5.0)
    except errors.AudioError as exc:
        assert type(exc) in DOCUMENTED, type(exc)
        assert exc.reason and "BytesIO" not in exc.reason
        return
    feats = extract(audio.samples, CFG)
    assert feats.windows.shape[1:] == CFG.input_shape and np.isfinite(feats.windows).all()


@FUZZ
@given(st.binary(max_size=4096))
def test_random_bytes(data):
    _check(data)


@FUZZ
@given(st.sampled_from([b"RIFF", b"fLaC", b"OggS", b"ID3\x03", b"\xff\xfb"]), st.binary(max_size=4096))
def test_random_bytes_after_a_real_magic_number(magic, rest):
    _check(magic + rest)


def _encoded(samples: np.ndarray, rate: int, fmt: str, subtype: str) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, samples, rate, format=fmt, subtype=subtype)
    return buf.getvalue()


@st.composite
def valid_audio(draw) -> bytes:
    """Random but valid files: format, rate, channels, length and content (noise, silence, clipping, DC) vary."""
    fmt, subtype = draw(
        st.sampled_from([("WAV", "PCM_16"), ("WAV", "FLOAT"), ("WAV", "PCM_U8"), ("FLAC", "PCM_24"), ("OGG", "VORBIS")])
    )
    rate = draw(st.sampled_from([8000, 11025, 16000, 22050, 44100, 48000]))
    channels = draw(st.integers(1, 4))
    frames = draw(st.integers(1, 3 * rate))
    seed = draw(st.integers(0, 2**32 - 1))
    kind = draw(st.sampled_from(["noise", "silence", "clipped", "dc", "tiny"]))
    rng = np.random.default_rng(seed)
    x = {
        "noise": lambda: rng.uniform(-0.5, 0.5, (frames, channels)),
        "silence": lambda: np.zeros((frames, channels)),
        "clipped": lambda: np.clip(rng.normal(0, 3, (frames, channels)), -1, 1),
        "dc": lambda: np.full((frames, channels), 0.25),
        "tiny": lambda: rng.uniform(-1e-6, 1e-6, (frames, channels)),
    }[kind]().astype(np.float32)
    return _encoded(x, rate, fmt, subtype)


@settings(max_examples=60, derandomize=True, deadline=None, database=None)
@given(valid_audio())
def test_random_valid_audio(data):
    _check(data)


@FUZZ
@given(valid_audio(), st.data())
def test_real_files_with_random_damage(data, draw):
    """Truncate or overwrite bytes anywhere, header included: the decoder must still only raise documented errors."""
    damaged = bytearray(data)
    for _ in range(draw.draw(st.integers(1, 8))):
        pos = draw.draw(st.integers(0, len(damaged) - 1))
        damaged[pos] = draw.draw(st.integers(0, 255))
    cut = draw.draw(st.integers(0, len(damaged)))
    _check(bytes(damaged[:cut]))
