"""HTTP `POST /classify`: a lean route mounted on the BentoML service, from the raw body to the JSON answer.

The handler owns the whole request, so the body is read once, into memory, and parsed once: no temporary files
(an upload whose client went away can leave nothing behind), no second parse, no hop to another process. In order:

1. an admission slot of this worker (service.admission, shared with gRPC), else 503 + Retry-After at once;
2. the body, refused with 413 the moment it exceeds the limit (or at once when Content-Length says so), and with
   408 when it does not arrive within the upload timeout;
3. a multipart form whose `audio` is a file part (400 otherwise), `top_k` and `segments` validated (400);
4. the clip through the pipeline (service.pipeline) within the request timeout (504).

Every error is JSON `{"error": code, "detail": message}` with the status of service.errors, the reason in the
`X-Audioclf-Error` header, and counted in `audioclf_inference_errors_total{protocol="http"}`. It is a FastAPI
app so that BentoML's OpenAPI document (/docs.json) describes the route. Steps 1, 2 and 4, the metrics and the
refusals are `UploadRoute`'s, which OIP inference over REST (service.oip_rest) shares.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import Headers, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from service import metrics
from service.admission import Admission
from service.contract import Classification, ErrorBody, to_json
from service.errors import RETRY_AFTER_S, RequestError
from service.pipeline import Readiness

log = logging.getLogger("audioclf.http")

ROUTES = ("/classify", "/v2/")  # this app's routes (/classify, OIP over REST): BentoML's own stay as they are
ENVELOPE_BYTES = 64 * 1024  # multipart boundaries, part headers and the small form fields beside the file
MAX_FILENAME_BYTES = 200  # longer names are no legitimate client's
MAX_TOP_K = 1000
REASON_HEADER = "X-Audioclf-Error"
T = TypeVar("T")
_TRUE = {"true", "1", "yes", "on", "t", "y"}
_FALSE = {"false", "0", "no", "off", "f", "n", ""}


_FORM_SCHEMA = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["audio"],
                "properties": {
                    "audio": {
                        "type": "string",
                        "format": "binary",
                        "description": "The clip: wav, flac, ogg or mp3 (detected by content).",
                    },
                    "top_k": {"type": "integer", "minimum": 1, "maximum": MAX_TOP_K, "description": "Predictions."},
                    "segments": {"type": "boolean", "default": False, "description": "Every window's predictions."},
                },
            }
        }
    },
}
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": what}
    for code, what in {
        400: "not a multipart form with a file `audio`, a bad field, an empty file",
        408: "the upload did not arrive in time",
        413: "the upload or the audio is too large or too long",
        415: "not audio in a supported format",
        422: "corrupt, silent, too short or invalid audio",
        503: "overloaded or not ready: retry after Retry-After seconds",
        504: "not answered within the request timeout",
    }.items()
}


def create_app(
    readiness: Readiness,
    admission: Admission,
    max_file_bytes: int,
    upload_timeout_s: float,
    request_timeout_s: float,
) -> FastAPI:
    app = FastAPI(title="audio_classifier", openapi_url=None, docs_url=None, redoc_url=None)
    route = ClassifyRoute(readiness, admission, max_file_bytes, upload_timeout_s, request_timeout_s)
    app.add_api_route(
        "/classify",
        route.handle,
        methods=["POST"],
        response_model=Classification,
        responses=_ERRORS,
        openapi_extra={"requestBody": _FORM_SCHEMA},
        summary="Classify one uploaded clip",
        description="Multipart form: file `audio`, optional `top_k` and `segments`. Errors are JSON "
        '`{"error": code, "detail": message}` with a 4xx status (503 with Retry-After when overloaded).',
    )
    return app


class UploadRoute:
    """What every route that classifies an uploaded body shares (`/classify` here, OIP inference in
    service.oip_rest): the protocol's request metrics, an admission slot, the body within its size limit and the
    upload timeout, the classification within the request timeout, and refusals with their status and headers.
    A route implements `answer` (and says how its error bodies look)."""

    protocol = "http"  # the `protocol` label of its metrics

    def __init__(
        self,
        readiness: Readiness,
        admission: Admission,
        max_body_bytes: int,
        upload_timeout_s: float,
        request_timeout_s: float,
    ):
        self.readiness = readiness
        self.admission = admission
        self.max_body = max_body_bytes
        self.upload_timeout_s = upload_timeout_s
        self.request_timeout_s = request_timeout_s
        self.metrics = metrics.get()

    async def handle(self, request: Request) -> Response:
        m, protocol = self.metrics, self.protocol
        started = time.perf_counter()
        m.in_flight.labels(protocol=protocol).inc()
        try:
            with self.admission.slot():
                response = await self.answer(request)
        except RequestError as err:
            response = self.refusal(err)
        except Exception:
            log.exception("%s request failed", protocol)
            response = self.refusal(RequestError("internal", "internal error; see the server log"))
        finally:
            m.in_flight.labels(protocol=protocol).dec()
        m.requests.labels(protocol=protocol, status=str(response.status_code)).inc()
        m.request_duration.labels(protocol=protocol).observe(time.perf_counter() - started)
        return response

    async def answer(self, request: Request) -> Response:
        raise NotImplementedError

    async def body(self, request: Request) -> bytes:
        """The whole body: 413 at once when Content-Length exceeds the limit, or as soon as what arrives does;
        408 when it has not arrived within the upload timeout."""
        try:
            async with asyncio.timeout(self.upload_timeout_s):
                declared = request.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > self.max_body:
                    raise self.too_large()
                chunks, seen = [], 0
                async for chunk in _chunks(request):
                    seen += len(chunk)
                    if seen > self.max_body:  # a chunked upload, counted as it arrives
                        raise self.too_large()
                    chunks.append(chunk)
                return b"".join(chunks)
        except TimeoutError:
            raise RequestError("upload_timeout", f"the upload took longer than {self.upload_timeout_s:g} s") from None

    async def in_time(self, work: Awaitable[T]) -> T:
        """`work` (the classification) within the request timeout, else 504."""
        try:
            async with asyncio.timeout(self.request_timeout_s):
                return await work
        except TimeoutError:
            raise RequestError("timeout", f"not answered within {self.request_timeout_s:g} s") from None

    def too_large(self) -> RequestError:
        return RequestError("too_large", f"the request body exceeds the limit of {self.max_body} bytes")

    def error_body(self, err: RequestError) -> dict[str, str]:
        return err.body()

    def counted(self, err: RequestError) -> bool:
        """Whether the refusal counts in audioclf_inference_errors_total."""
        return True

    def refusal(self, err: RequestError) -> JSONResponse:
        if self.counted(err):
            self.metrics.errors.labels(reason=err.code, protocol=self.protocol).inc()
        headers = {REASON_HEADER: err.code}
        if err.status.http in (429, 503):
            headers["Retry-After"] = str(RETRY_AFTER_S)
        if err.code in ("too_large", "upload_timeout", "invalid_form"):
            headers["Connection"] = "close"  # the rest of the body may never be read: drop the connection
        return JSONResponse(self.error_body(err), status_code=err.status.http, headers=headers)


class ClassifyRoute(UploadRoute):
    def __init__(
        self,
        readiness: Readiness,
        admission: Admission,
        max_file_bytes: int,
        upload_timeout_s: float,
        request_timeout_s: float,
    ):
        super().__init__(readiness, admission, max_file_bytes + ENVELOPE_BYTES, upload_timeout_s, request_timeout_s)
        self.max_file = max_file_bytes

    async def answer(self, request: Request) -> JSONResponse:
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            raise RequestError("invalid_form", "send the clip as multipart/form-data with a file field named 'audio'")
        body = await self.body(request)
        audio, top_k, segments = await self._form(request.headers, body)
        del body
        clf = await self.readiness.wait()
        k = clf.top_k(top_k)
        return JSONResponse(to_json(await self.in_time(clf.classify(audio, k=k, segments=segments))))

    async def _form(self, headers: Headers, body: bytes) -> tuple[bytes, int | None, bool]:
        async def stream():
            yield body

        try:
            form = await MultiPartParser(headers, stream(), max_files=4, max_fields=16).parse()
        except MultiPartException as exc:
            raise RequestError("invalid_form", f"the multipart body does not parse: {exc.message}") from None
        try:
            if "audio" not in form:
                raise RequestError("missing", f"no file field named 'audio' (the form has {sorted(form.keys())})")
            upload = form["audio"]
            if not isinstance(upload, UploadFile):
                raise RequestError("invalid_form", "'audio' must be a file part (a text field was sent)")
            _check_filename(upload.filename or "")
            data = await upload.read()
            if len(data) > self.max_file:
                raise self.too_large()
            return data, _top_k(form.get("top_k")), _flag(form.get("segments"), "segments")
        finally:
            await form.close()

    def too_large(self) -> RequestError:
        return RequestError("too_large", f"the upload exceeds the limit of {self.max_file} bytes per file")


async def _chunks(request: Request):
    """The body as it arrives; a client that disconnects mid-upload ends the request (nobody reads the answer)."""
    receive = request.receive
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise RequestError("invalid_form", "the client disconnected before the upload was complete")
        yield message.get("body", b"")
        if not message.get("more_body", False):
            return


def _field(value: Any, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise RequestError("invalid_argument", f"{name} must be a plain form field, not a file")
    return value.strip()


def _top_k(value: Any) -> int | None:
    text = _field(value, "top_k")
    if text is None:
        return None
    if not text.lstrip("+-").isdigit():
        raise RequestError("invalid_argument", f"top_k must be an integer, got {text[:40]!r}")
    k = int(text)
    if not 1 <= k <= MAX_TOP_K:
        raise RequestError("invalid_argument", f"top_k must be between 1 and {MAX_TOP_K}, got {k}")
    return k


def _flag(value: Any, name: str) -> bool:
    text = _field(value, name)
    if text is None:
        return False
    if text.lower() in _TRUE:
        return True
    if text.lower() in _FALSE:
        return False
    raise RequestError("invalid_argument", f"{name} must be true or false, got {text[:40]!r}")


def _check_filename(name: str) -> None:
    """The upload's name is only a label: refuse those no legitimate client sends (too long, control characters)."""
    if len(name.encode("utf-8", "surrogatepass")) > MAX_FILENAME_BYTES:
        raise RequestError("invalid_form", f"the file name is longer than {MAX_FILENAME_BYTES} bytes")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise RequestError("invalid_form", "the file name contains control characters")
