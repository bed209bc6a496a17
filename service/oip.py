"""The Open Inference Protocol (KServe v2) as this service speaks it, whatever the transport: the model's metadata
and every check of an inference request, shared by gRPC (service.grpc_oip) and REST (service.oip_rest) so that both
accept the same requests and refuse the others with the same reason and message.

Model `audio_classifier` (the tag's name): input `audio` BYTES [N] (N encoded files), outputs `label` BYTES [N, k]
and `score` FP32 [N, k], best first; request parameter `top_k`.
"""

import importlib.metadata
import struct
from typing import Any

from service.contract import SCORE_DECIMALS, ClipResult
from service.errors import RequestError
from service.pipeline import Classifier
from service.settings import Settings

INPUT = "audio"
OUTPUTS = ("label", "score")
DATATYPES = {"label": "BYTES", "score": "FP32"}
MAX_FILES = 256  # files in one inference request; together they must also fit the request size limit
REQUEST_ENVELOPE = 1 << 20  # framing and tensor metadata around the files (protobuf, or JSON and its header)
SERVER_NAME = "audioclf"


def request_limit(settings: Settings) -> int:
    """Largest inference request, either protocol: the upload limit (the setting behind HTTP's body limit) plus
    framing. It holds all the request's files together."""
    return settings.max_upload_bytes + REQUEST_ENVELOPE


def server_version() -> str:
    try:
        return importlib.metadata.version("audioclf")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def model_metadata(model_name: str, clf: Classifier) -> dict[str, Any]:
    """The ModelMetadata answer, as the REST JSON object (gRPC's message has the same fields)."""
    return {
        "name": model_name,
        "versions": [clf.info.version],
        "platform": "keras",
        "inputs": [{"name": INPUT, "datatype": "BYTES", "shape": [-1]}],
        "outputs": [{"name": name, "datatype": DATATYPES[name], "shape": [-1, -1]} for name in OUTPUTS],
    }


def check_model(model_name: str, clf: Classifier, name: str, version: str) -> None:
    """The request names the served model, and its version or none ("")."""
    if name != model_name or version not in ("", clf.info.version):
        served = f"{model_name} (version {clf.info.version})"
        raise RequestError("unknown_model", f"model {name!r} version {version!r} is not served; this serves {served}")


def model_ready(model_name: str, clf: Classifier | None, name: str, version: str) -> bool:
    return clf is not None and name == model_name and version in ("", clf.info.version)


def check_input(names: list, datatype: Any, shape: Any) -> int:
    """The request's inputs are exactly `audio`, BYTES, shape [N] with 1 <= N <= MAX_FILES: returns N."""
    if names != [INPUT]:
        raise RequestError("missing", f"expected exactly one input named {INPUT!r} (BYTES, shape [N]); got {names}")
    if datatype != "BYTES":
        raise RequestError("invalid_argument", f"input {INPUT!r} must be BYTES, got {datatype}")
    if not (isinstance(shape, list) and len(shape) == 1 and _is_int(shape[0]) and shape[0] >= 1):
        raise RequestError("invalid_argument", f"input {INPUT!r} must have shape [N] with N >= 1, got {shape!r:.60}")
    n = shape[0]
    if n > MAX_FILES:
        raise RequestError("too_large", f"{n} files in one request; the limit is {MAX_FILES}")
    return n


def check_count(n: int, files: list[bytes]) -> list[bytes]:
    if len(files) != n:
        raise RequestError("invalid_argument", f"input {INPUT!r} declares shape [{n}] but holds {len(files)} files")
    return files


def requested_outputs(names: list[str]) -> list[str]:
    """The outputs to answer with: those named, in their order, or all of them when none is named."""
    names = names or list(OUTPUTS)
    unknown = sorted(set(names) - set(OUTPUTS), key=str)
    if unknown:
        raise RequestError("invalid_argument", f"unknown output(s) {unknown}; outputs are {list(OUTPUTS)}")
    return names


def top_k_parameter(value: Any) -> int | None:
    """The `top_k` request parameter: an integer, an integral float or a numeric string (None: not given)."""
    if value is None:
        return None
    if _is_int(value):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    raise RequestError("invalid_argument", f"parameter top_k must be an integer, got {value!r:.40}")


def pack_bytes(items: list[bytes]) -> bytes:
    """A BYTES tensor's raw content: each element as a little-endian uint32 length, then its bytes."""
    return b"".join(struct.pack("<I", len(item)) + item for item in items)


def unpack_bytes(raw: bytes) -> list[bytes]:
    items, offset = [], 0
    while offset < len(raw):
        if offset + 4 > len(raw):
            raise RequestError("invalid_argument", "raw BYTES content ends inside an element's length prefix")
        (size,) = struct.unpack_from("<I", raw, offset)
        offset += 4
        if offset + size > len(raw):
            raise RequestError("invalid_argument", "raw BYTES content is shorter than an element's declared length")
        items.append(raw[offset : offset + size])
        offset += size
    return items


def output_rows(results: list[ClipResult]) -> tuple[list[str], list[float]]:
    """The renderer of OIP's outputs: every file's top-k labels and scores, flattened row-major ([N, k] -> N*k),
    best first within a row. Scores are rounded as `/classify`'s are, so every protocol gives the same answer."""
    labels = [p.label for r in results for p in r.predictions]
    scores = [round(p.score, SCORE_DECIMALS) for r in results for p in r.predictions]
    return labels, scores


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
