"""decode(): every supported format of a real recording decodes to the same mono waveform at the target rate,
and every kind of bad input raises its own typed error."""

import io
import struct

import numpy as np
import pytest
import soundfile as sf

from audiocore.decode import decode
from audiocore.errors import (
    AudioTooLong,
    CorruptAudio,
    EmptyAudio,
    InvalidSamples,
    SilentAudio,
    UnsupportedFormat,
)
from tests.conftest import encode


def test_wav_from_path_and_bytes_agree(digit_wav):
    a = decode(digit_wav, 8000)
    b = decode(digit_wav.read_bytes(), 8000)
    np.testing.assert_array_equal(a.samples, b.samples)
    assert a.sample_rate == 8000 and a.original_sample_rate == 8000 and a.channels == 1
    assert a.samples.dtype == np.float32 and a.samples.ndim == 1
    assert 0.2 < a.duration_s < 1.5


@pytest.mark.parametrize(
    "name", ["wav", "flac", "ogg", "mp3", "stereo_wav", "u8_wav", "pcm24_wav", "wav_44k", "flac_48k", "float_wav"]
)
def test_every_format_decodes_to_about_the_same_signal(digit_encodings, name):
    ref = decode(digit_encodings["wav"], 16000).samples
    got = decode(digit_encodings[name], 16000)
    assert got.sample_rate == 16000
    # mp3 adds encoder delay/padding; everything else keeps the length to within resampler rounding
    tolerance = 0.15 if name == "mp3" else 0.01
    assert abs(got.duration_s - len(ref) / 16000) < tolerance
    if name not in ("mp3", "ogg"):  # lossy codecs shift phase; compare the lossless ones sample by sample
        scale = 0.75 if name == "stereo_wav" else 1.0  # mean of x and 0.5x
        n = min(len(ref), len(got.samples))
        err = np.abs(got.samples[:n] - scale * ref[:n]).max()
        assert err < 0.02, err


def test_mp3_named_wav_is_decoded_by_content(digit_encodings, tmp_path):
    path = tmp_path / "really_an_mp3.wav"
    path.write_bytes(digit_encodings["mp3"])
    assert decode(path, 8000).duration_s > 0.2


def test_stereo_is_mixed_to_mono(digit_encodings):
    audio = decode(digit_encodings["stereo_wav"], 8000)
    assert audio.channels == 2 and audio.samples.ndim == 1


def test_resampling_is_deterministic(instrument_flac):
    a = decode(instrument_flac, 16000).samples
    b = decode(instrument_flac, 16000).samples
    np.testing.assert_array_equal(a, b)


def test_empty_bytes():
    with pytest.raises(EmptyAudio, match="empty"):
        decode(b"", 8000)


def test_random_bytes_and_text_are_unsupported():
    rng = np.random.default_rng(0)
    with pytest.raises(UnsupportedFormat):
        decode(rng.bytes(5000), 8000)
    with pytest.raises(UnsupportedFormat):
        decode(b"hello, this is not audio at all\n" * 20, 8000)


def test_header_only_wav_has_no_samples(digit_encodings):
    with pytest.raises((EmptyAudio, UnsupportedFormat, CorruptAudio)):
        decode(digit_encodings["wav"][:44], 8000)


def test_declared_length_checked_before_decoding(instrument_flac):
    info = sf.info(instrument_flac)
    with pytest.raises(AudioTooLong, match="limit is 1 s"):
        decode(instrument_flac, 16000, max_seconds=1.0)
    assert info.duration > 1.0


def test_silence_is_refused():
    with pytest.raises(SilentAudio):
        decode(encode(np.zeros(8000, dtype=np.float32), 8000, "WAV", "PCM_16"), 8000)


def test_nan_samples_are_refused():
    x = np.full(8000, 0.1, dtype=np.float32)
    x[100] = np.nan
    with pytest.raises(InvalidSamples, match="NaN"):
        decode(encode(x, 8000, "WAV", "FLOAT"), 8000)


def test_zero_sample_rate_header_is_refused(digit_encodings):
    data = bytearray(digit_encodings["wav"])
    pos = data.index(b"fmt ") + 12  # RIFF fmt chunk: tag(2) channels(2) then sample rate(4)
    data[pos : pos + 4] = struct.pack("<I", 0)
    with pytest.raises((InvalidSamples, UnsupportedFormat)):
        decode(bytes(data), 8000)


def test_missing_file_names_the_file(tmp_path):
    with pytest.raises(CorruptAudio, match="nope.wav"):
        decode(tmp_path / "nope.wav", 8000)


def test_error_codes_are_stable():
    with pytest.raises(UnsupportedFormat) as info:
        decode(io.BytesIO(b"x" * 100).getvalue(), 8000, source="upload.bin")
    assert info.value.code == "unsupported_format" and "upload.bin" in str(info.value)
