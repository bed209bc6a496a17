"""Why a request was refused, and the one table that turns that reason into an HTTP status and a gRPC code.

HTTP and gRPC share the table, so a file refused on one protocol is refused for the same reason on the other. Every
reason also labels `audioclf_inference_errors_total`.
"""

from typing import NamedTuple

import grpc

from audiocore.errors import AudioError


class Status(NamedTuple):
    http: int
    grpc: grpc.StatusCode


_BAD = grpc.StatusCode.INVALID_ARGUMENT
STATUS: dict[str, Status] = {
    # the request itself
    "missing": Status(400, _BAD),  # no file / no input tensor
    "invalid_form": Status(400, _BAD),  # HTTP only: not a multipart form with a file part 'audio'
    "upload_timeout": Status(408, grpc.StatusCode.DEADLINE_EXCEEDED),  # HTTP only: the body came too slowly
    "invalid_argument": Status(400, _BAD),  # top_k, shapes, datatypes, parameters
    "unknown_model": Status(404, grpc.StatusCode.NOT_FOUND),
    # the audio (audiocore.errors codes)
    "empty": Status(400, _BAD),
    "unsupported_format": Status(415, _BAD),
    "corrupt": Status(422, _BAD),
    "invalid_samples": Status(422, _BAD),
    "invalid_audio": Status(422, _BAD),
    "silent": Status(422, _BAD),
    "too_short": Status(422, _BAD),
    "too_large": Status(413, grpc.StatusCode.RESOURCE_EXHAUSTED),
    "too_long": Status(413, grpc.StatusCode.RESOURCE_EXHAUSTED),
    # the service
    "not_ready": Status(503, grpc.StatusCode.UNAVAILABLE),
    "overloaded": Status(503, grpc.StatusCode.UNAVAILABLE),
    "timeout": Status(504, grpc.StatusCode.DEADLINE_EXCEEDED),
    "internal": Status(500, grpc.StatusCode.INTERNAL),
}
# Refusals worth retrying soon: HTTP answers carry `Retry-After`, gRPC ones `retry-after` and
# `grpc-retry-pushback-ms` trailing metadata.
RETRYABLE = frozenset({"not_ready", "overloaded"})
RETRY_AFTER_S = 1


class RequestError(Exception):
    """A refused request: `code` is a key of STATUS (machine-readable), `detail` says why, for people."""

    def __init__(self, code: str, detail: str):
        if code not in STATUS:
            raise ValueError(f"unknown error code {code!r}")
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail

    @property
    def status(self) -> Status:
        return STATUS[self.code]

    def body(self) -> dict[str, str]:
        """The JSON body of the HTTP answer."""
        return {"error": self.code, "detail": self.detail}

    @classmethod
    def from_audio(cls, exc: AudioError, where: str | None = None) -> "RequestError":
        code = exc.code if exc.code in STATUS else "invalid_audio"
        return cls(code, f"{where}: {exc.reason}" if where else exc.reason)
