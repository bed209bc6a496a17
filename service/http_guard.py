"""ASGI middleware in front of /classify: only a well-formed upload of bounded size reaches BentoML.

BentoML answers 500 to a malformed multipart body and, given a text field named `audio`, tries to download it as
a URL; both are the client's mistake, so this guard answers them with 400 first. It reads the body (refusing it
with 413 the moment it exceeds the limit, before BentoML spools it to disk), checks that it parses as a form
whose `audio` is a file, and hands BentoML the same bytes. The exact per-file limit is checked again on the
parsed upload (the body also carries the multipart envelope).

Before any of that it takes one of the worker's admission slots (service.admission), shared with gRPC: past the
limit the request is refused at once with 503, before its body is read. Every 503 and 429 that leaves, the guard's
own or BentoML's (the batcher shedding load, a worker still warming up), carries `Retry-After`. An upload that does
not arrive within the request timeout is refused with 408, so slow clients cannot hold slots forever.

Every error answer is counted in `audioclf_inference_errors_total{protocol="http"}`: by the reason named in the
X-Audioclf-Error header, or, for BentoML's own refusals (field validation, overload, timeout), by status.
"""

import asyncio
import json
from collections.abc import Awaitable, Callable

from starlette.datastructures import Headers, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from service import metrics
from service.admission import Admission
from service.errors import RETRY_AFTER_S, RequestError

Scope = dict
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]

ENVELOPE_BYTES = 64 * 1024  # multipart boundaries, part headers and the small form fields beside the file
MAX_FILENAME_BYTES = 200  # BentoML puts the upload's name into a temporary file's name (255 bytes at most)
REASON_HEADER = "X-Audioclf-Error"
_REASON_KEY = REASON_HEADER.lower().encode()
_RETRY_AFTER = (b"retry-after", str(RETRY_AFTER_S).encode())
# BentoML's own error answers carry no reason header: name them by status
_BENTOML_REASONS = {400: "invalid_argument", 503: "overloaded", 504: "timeout"}


class HttpGuard:
    def __init__(self, app, max_file_bytes: int, paths: tuple[str, ...], admission: Admission, upload_timeout_s: float):
        self.app = app
        self.max_body = max_file_bytes + ENVELOPE_BYTES
        self.max_file = max_file_bytes
        self.paths = paths
        self.admission = admission
        self.upload_timeout_s = upload_timeout_s
        self.errors = metrics.get().errors

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in self.paths or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        try:
            with self.admission.slot():
                await self._guarded(scope, receive, send)
        except RequestError as err:  # no slot free
            await self._refuse(send, err)

    async def _guarded(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with asyncio.timeout(self.upload_timeout_s):
                body = await self._checked_body(scope, receive)
        except TimeoutError:
            body, err = None, RequestError("upload_timeout", f"the upload took longer than {self.upload_timeout_s:g} s")
        except RequestError as exc:
            body, err = None, exc
        if body is None:
            await self._refuse(send, err)
            return

        replayed = False

        async def replay() -> dict:
            nonlocal replayed
            if replayed:
                return await receive()  # the client disconnecting, as BentoML may wait for it
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def counting_send(message: dict) -> None:
            if message["type"] == "http.response.start" and message["status"] >= 400:
                self._count(message)
                if message["status"] in (429, 503):
                    message = {**message, "headers": [*message.get("headers", []), _RETRY_AFTER]}
            await send(message)

        await self.app(scope, replay, counting_send)

    async def _checked_body(self, scope: Scope, receive: Receive) -> bytes:
        headers = Headers(scope=scope)
        if not headers.get("content-type", "").startswith("multipart/form-data"):
            raise RequestError("invalid_form", "send the clip as multipart/form-data with a file field named 'audio'")
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body:
            raise self._too_large()
        chunks, seen = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise RequestError("invalid_form", "the client disconnected before the upload was complete")
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.max_body:  # a chunked upload, counted as it arrives
                raise self._too_large()
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        await self._check_form(headers, body)
        return body

    async def _check_form(self, headers: Headers, body: bytes) -> None:
        async def stream():
            yield body

        try:
            form = await MultiPartParser(headers, stream(), max_files=4, max_fields=16).parse()
        except MultiPartException as exc:
            raise RequestError("invalid_form", f"the multipart body does not parse: {exc.message}") from None
        try:
            if "audio" not in form:
                raise RequestError("missing", f"no file field named 'audio' (the form has {sorted(form.keys())})")
            if not isinstance(form["audio"], UploadFile):
                raise RequestError("invalid_form", "'audio' must be a file part (a text field was sent)")
            _check_filename(form["audio"].filename or "")
        finally:
            await form.close()

    def _too_large(self) -> RequestError:
        return RequestError("too_large", f"the upload exceeds the limit of {self.max_file} bytes per file")

    def _count(self, start: dict) -> None:
        reason = dict(start.get("headers", [])).get(_REASON_KEY, b"").decode()
        if not reason:
            reason = _BENTOML_REASONS.get(start["status"], "internal" if start["status"] >= 500 else "invalid_argument")
        self.errors.labels(reason=reason, protocol="http").inc()

    async def _refuse(self, send: Send, err: RequestError) -> None:
        body = json.dumps(err.body()).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (_REASON_KEY, err.code.encode()),
        ]
        if err.status.http in (429, 503):
            headers.append(_RETRY_AFTER)
        if err.code in ("too_large", "upload_timeout", "invalid_form"):
            headers.append((b"connection", b"close"))  # the rest of the body is never read: drop the connection
        start = {"type": "http.response.start", "status": err.status.http, "headers": headers}
        self._count(start)
        await send(start)
        await send({"type": "http.response.body", "body": body})


def _check_filename(name: str) -> None:
    """The upload's name is only a label, but BentoML builds a temporary file name from it: refuse the names that
    would fail there (too long, NUL) or that no legitimate client sends (control characters)."""
    if len(name.encode("utf-8", "surrogatepass")) > MAX_FILENAME_BYTES:
        raise RequestError("invalid_form", f"the file name is longer than {MAX_FILENAME_BYTES} bytes")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise RequestError("invalid_form", "the file name contains control characters")
