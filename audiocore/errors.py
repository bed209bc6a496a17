"""Typed errors for audio input: each has a stable `code` that the service maps to an HTTP or gRPC status."""


class AudioError(ValueError):
    """Base class: the input is not usable audio. `code` is machine-readable, the message is for people."""

    code = "invalid_audio"

    def __init__(self, message: str, *, source: str | None = None):
        self.source = source
        self.reason = message
        super().__init__(f"{source}: {message}" if source else message)


class EmptyAudio(AudioError):
    code = "empty"


class UnsupportedFormat(AudioError):
    code = "unsupported_format"


class CorruptAudio(AudioError):
    code = "corrupt"


class AudioTooLong(AudioError):
    code = "too_long"


class AudioTooShort(AudioError):
    """Less audio than anything can be heard in (a few samples): the model would answer noise."""

    code = "too_short"


class AudioTooLarge(AudioError):
    code = "too_large"


class SilentAudio(AudioError):
    code = "silent"


class InvalidSamples(AudioError):
    """NaN/Inf samples, a zero sample rate or an absurd channel count."""

    code = "invalid_samples"
