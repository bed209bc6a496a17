"""The Open Inference Protocol (KServe v2) over REST, beside `/classify` on the HTTP port: health, metadata and
inference, so that `tritonclient.http` and KServe's REST clients work unmodified.

Inference takes its body the way `/classify` does (service.http_api.UploadRoute: admission slot, size limit before
reading, upload and request timeouts, metrics with `protocol="rest"`) and checks it the way gRPC does (service.oip),
so the same request gets the same answer or the same refusal over both. The body is the JSON inference request,
optionally followed by raw tensors (the binary tensor data extension: the JSON's length in the
`Inference-Header-Content-Length` header, a BYTES tensor as a 4-byte little-endian length before each element).
In JSON, `audio`'s elements are base64 strings: audio is binary and JSON strings are text. Outputs asked for with
`binary_data` (or the request parameter `binary_data_output`) come back as raw tensors the same way, the others
as JSON. Errors are the protocol's `{"error": "<reason>: <detail>"}` with the status of service.errors.
"""

import base64
import binascii
import json
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from service import oip
from service.admission import Admission
from service.contract import ClipResult
from service.errors import RequestError
from service.http_api import UploadRoute
from service.pipeline import Classifier, Readiness

HEADER_LENGTH = "Inference-Header-Content-Length"
EXTENSIONS = ["binary_tensor_data"]
NOT_TRUE = 400  # the OIP's health answers: 200 is true, a 4xx false (with an empty body)


def add_routes(
    app: FastAPI,
    readiness: Readiness,
    admission: Admission,
    model_name: str,
    max_body_bytes: int,
    upload_timeout_s: float,
    request_timeout_s: float,
) -> None:
    """GET /v2, /v2/health/{live,ready}, /v2/models/<model>[/versions/<v>][/ready], POST .../infer."""
    infer = InferRoute(readiness, admission, model_name, max_body_bytes, upload_timeout_s, request_timeout_s)
    meta = MetadataRoutes(readiness, model_name, infer)
    routes = [
        ("/v2", meta.server, "GET"),
        ("/v2/health/live", meta.live, "GET"),
        ("/v2/health/ready", meta.ready, "GET"),
    ]
    for model in ("/v2/models/{model}", "/v2/models/{model}/versions/{version}"):
        routes += [(model, meta.model, "GET"), (f"{model}/ready", meta.model_ready, "GET")]
        routes += [(f"{model}/infer", infer.handle, "POST")]
    for path, endpoint, method in routes:
        # Out of the OpenAPI document: the protocol has its own specification.
        app.add_api_route(path, endpoint, methods=[method], include_in_schema=False)


class InferRoute(UploadRoute):
    protocol = "rest"

    def __init__(
        self,
        readiness: Readiness,
        admission: Admission,
        model_name: str,
        max_body_bytes: int,
        upload_timeout_s: float,
        request_timeout_s: float,
    ):
        super().__init__(readiness, admission, max_body_bytes, upload_timeout_s, request_timeout_s)
        self.model_name = model_name

    async def answer(self, request: Request) -> Response:
        encoding = request.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            raise _invalid(f"Content-Encoding {encoding[:20]!r} is not supported; send the request uncompressed")
        body = await self.body(request)
        clf = await self.readiness.wait()
        oip.check_model(self.model_name, clf, request.path_params["model"], request.path_params.get("version", ""))
        head, tail = _split(body, request.headers.get(HEADER_LENGTH))
        del body
        files = _input_files(head, tail)
        del tail
        parameters = _object(head.get("parameters", {}), "the request's 'parameters'")
        k = clf.top_k(oip.top_k_parameter(parameters.get("top_k")))
        outputs = _requested_outputs(head, parameters)
        results = await self.in_time(clf.classify_many(files, k=k, name=oip.INPUT))
        return _response(self.model_name, clf, results, k, outputs, head.get("id"))

    def too_large(self) -> RequestError:
        return RequestError(
            "too_large", f"the request exceeds the limit of {self.max_body} bytes (all its files and their framing)"
        )

    def error_body(self, err: RequestError) -> dict[str, str]:
        return {"error": f"{err.code}: {err.detail}"}  # the reason leads the message, as over gRPC

    def counted(self, err: RequestError) -> bool:
        return err.code != "unknown_model"  # as over gRPC


class MetadataRoutes:
    def __init__(self, readiness: Readiness, model_name: str, refusals: InferRoute):
        self.readiness = readiness
        self.model_name = model_name
        self.refusals = refusals  # errors look, and count, as inference's

    async def server(self, request: Request) -> Response:
        return JSONResponse({"name": oip.SERVER_NAME, "version": oip.server_version(), "extensions": EXTENSIONS})

    async def live(self, request: Request) -> Response:
        return Response(status_code=200)

    async def ready(self, request: Request) -> Response:
        return Response(status_code=200 if self.readiness.serving else NOT_TRUE)

    async def model_ready(self, request: Request) -> Response:
        name, version = request.path_params["model"], request.path_params.get("version", "")
        ready = oip.model_ready(self.model_name, self.readiness.classifier, name, version)
        return Response(status_code=200 if ready else NOT_TRUE)

    async def model(self, request: Request) -> Response:
        try:
            clf = await self.readiness.wait()
            oip.check_model(self.model_name, clf, request.path_params["model"], request.path_params.get("version", ""))
        except RequestError as err:
            return self.refusals.refusal(err)
        return JSONResponse(oip.model_metadata(self.model_name, clf))


def _invalid(detail: str) -> RequestError:
    return RequestError("invalid_argument", detail)


def _split(body: bytes, header_length: str | None) -> tuple[dict, bytes]:
    """The JSON inference request and the binary tensor data after it (none without the header)."""
    if header_length is None:
        head, tail = body, b""
    else:
        text = header_length.strip()
        if not text.isdigit():
            raise _invalid(f"{HEADER_LENGTH} must be a number of bytes, got {text[:20]!r}")
        length = int(text)
        if length > len(body):
            raise _invalid(f"{HEADER_LENGTH} is {length}, but the body has {len(body)} bytes")
        head, tail = body[:length], body[length:]
    try:
        request = json.loads(head)
    except RecursionError:
        raise _invalid("the inference request is not valid JSON: nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise _invalid(f"the inference request is not valid JSON: {str(exc)[:120]}") from None
    return _object(request, "the inference request"), tail


def _object(value: Any, what: str) -> dict:
    if not isinstance(value, dict):
        raise _invalid(f"{what} must be a JSON object")
    return value


def _input_files(head: dict, tail: bytes) -> list[bytes]:
    inputs = head.get("inputs")
    if not isinstance(inputs, list) or not all(isinstance(t, dict) for t in inputs):
        raise _invalid("the inference request's 'inputs' must be a list of tensor objects")
    tensor = inputs[0] if inputs else {}
    n = oip.check_input([t.get("name") for t in inputs], tensor.get("datatype"), tensor.get("shape"))
    parameters = _object(tensor.get("parameters", {}), f"input {oip.INPUT!r}'s 'parameters'")
    if any(str(key).startswith("shared_memory") for key in parameters):
        raise _invalid("shared memory is not supported: send the files in the request")
    size = parameters.get("binary_data_size")
    if size is not None:
        if "data" in tensor:
            raise _invalid(f"input {oip.INPUT!r} has both 'data' and binary_data_size")
        if size != len(tail):
            raise _invalid(
                f"input {oip.INPUT!r} declares binary_data_size {size!r:.20}; {len(tail)} bytes follow the JSON"
            )
        files = oip.unpack_bytes(tail)
    else:
        if tail:
            raise _invalid(f"{len(tail)} bytes follow the JSON, but input {oip.INPUT!r} declares no binary_data_size")
        data = tensor.get("data")
        if not isinstance(data, list):
            raise _invalid(f"input {oip.INPUT!r} has no 'data' (a list of base64 strings) and no binary data")
        files = [_base64(item, i) for i, item in enumerate(data)]
    return oip.check_count(n, files)


def _base64(item: Any, i: int) -> bytes:
    try:
        if isinstance(item, str):
            return base64.b64decode(item, validate=True)
    except (binascii.Error, ValueError):
        pass
    raise _invalid(f"{oip.INPUT}[{i}] is not a base64 string: in JSON, every element of {oip.INPUT!r} is a base64 file")


def _requested_outputs(head: dict, parameters: dict) -> list[tuple[str, bool]]:
    """(name, whether it goes back as binary data) of every output to answer with."""
    default = _flag(parameters.get("binary_data_output", False), "binary_data_output")
    outputs = head.get("outputs", [])
    named = isinstance(outputs, list) and all(isinstance(o, dict) and isinstance(o.get("name"), str) for o in outputs)
    if not named:
        raise _invalid("the inference request's 'outputs' must be a list of objects with a 'name'")
    binary = {}
    for output in outputs:
        params = _object(output.get("parameters", {}), f"output {output['name']!r}'s 'parameters'")
        unsupported = sorted(set(params) - {"binary_data"})
        if unsupported:
            raise _invalid(f"output parameter(s) {unsupported} are not supported (only binary_data)")
        binary[output["name"]] = _flag(params.get("binary_data", default), "binary_data")
    return [(name, binary.get(name, default)) for name in oip.requested_outputs([o["name"] for o in outputs])]


def _flag(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise _invalid(f"parameter {name} must be true or false, got {value!r:.40}")
    return value


def _response(
    model_name: str,
    clf: Classifier,
    results: list[ClipResult],
    k: int,
    outputs: list[tuple[str, bool]],
    request_id: Any,
) -> Response:
    labels, scores = oip.output_rows(results)
    head: dict[str, Any] = {"model_name": model_name, "model_version": clf.info.version}
    if isinstance(request_id, str) and request_id:
        head["id"] = request_id
    head["outputs"], raw = [], []
    for name, binary in outputs:
        tensor: dict[str, Any] = {"name": name, "datatype": oip.DATATYPES[name], "shape": [len(results), k]}
        if binary:
            if name == "label":
                data = oip.pack_bytes([label.encode() for label in labels])
            else:
                data = np.array(scores, dtype="<f4").tobytes()
            tensor["parameters"] = {"binary_data_size": len(data)}
            raw.append(data)
        else:
            tensor["data"] = labels if name == "label" else scores
        head["outputs"].append(tensor)
    text = json.dumps(head, separators=(",", ":")).encode()
    if not raw:
        return Response(text, media_type="application/json")
    return Response(
        b"".join([text, *raw]), media_type="application/octet-stream", headers={HEADER_LENGTH: str(len(text))}
    )
