"""The error table: every way audio can be unusable has a 4xx status and a gRPC code, never a 500."""

import grpc
import pytest

from audiocore import errors as audio_errors
from service.errors import STATUS, RequestError

AUDIO_ERRORS = [
    cls for cls in vars(audio_errors).values() if isinstance(cls, type) and issubclass(cls, audio_errors.AudioError)
]


@pytest.mark.parametrize("cls", AUDIO_ERRORS, ids=lambda c: c.__name__)
def test_every_audio_error_is_a_client_error(cls):
    err = RequestError.from_audio(cls("why"))
    assert err.code == cls.code
    assert 400 <= err.status.http < 500
    assert err.status.grpc in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED)
    assert err.body() == {"error": cls.code, "detail": "why"}


def test_size_and_length_limits_are_resource_exhausted():
    for code in ("too_large", "too_long"):
        assert STATUS[code] == (413, grpc.StatusCode.RESOURCE_EXHAUSTED)


def test_the_message_names_the_file_and_not_a_python_object():
    from audiocore.decode import decode

    with pytest.raises(audio_errors.UnsupportedFormat) as info:
        decode(b"not audio at all" * 10, 8000)
    err = RequestError.from_audio(info.value, "audio[2]")
    assert err.detail.startswith("audio[2]: not a readable audio file") and "BytesIO" not in err.detail
    assert "the file" in err.detail


def test_retryable_refusals_are_the_service_ones():
    from service.errors import RETRYABLE

    assert {STATUS[code].http for code in RETRYABLE} == {503}


def test_only_known_reasons_exist():
    with pytest.raises(ValueError, match="unknown error code"):
        RequestError("teapot", "no")
