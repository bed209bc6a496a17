"""Hostile and broken input against the real server, over HTTP and gRPC alike: each gets its specific 4xx (or gRPC
status) and a message, never a 500, and the service stays ready. Also: a body over the limit is refused from its
declared length before it is sent, the HTTP and gRPC size limits come from one setting, and CORS is off."""

import grpc
import numpy as np
import pytest
import requests
import tritonclient.grpc as triton
from tritonclient.utils import InferenceServerException

from devtools import rawhttp
from devtools.hostile import cases
from service.errors import STATUS
from service.grpc_oip import message_limit
from service.http_api import ENVELOPE_BYTES
from service.settings import Settings

pytestmark = pytest.mark.e2e
MODEL = "audio_classifier"


@pytest.fixture(scope="module")
def hostile(digit_wav):
    return {c.name: c for c in cases(digit_wav.read_bytes())}


@pytest.fixture(scope="module")
def client(server):
    with triton.InferenceServerClient(server.grpc) as c:
        yield c


def _names(filter_):
    from tests.conftest import FSDD

    return [c.name for c in cases((FSDD / "recordings" / "7_jackson_12.wav").read_bytes()) if filter_(c)]


@pytest.mark.parametrize("name", _names(lambda c: True))
def test_http(server, hostile, name):
    case = hostile[name]
    response = requests.post(
        f"{server.http}/classify",
        files={"audio": (case.filename, case.data)},
        timeout=60,
        headers={"Connection": "close"},
    )
    assert response.status_code == case.http, response.text
    if case.code is None:
        assert response.json()["predictions"]
    else:
        body = response.json()
        assert body["error"] == case.code and body["detail"], body
        assert response.headers["X-Audioclf-Error"] == case.code
        assert "BytesIO" not in body["detail"]
    assert server.ready()


@pytest.mark.parametrize("name", _names(lambda c: not c.http_only))
def test_grpc(client, server, hostile, name):
    case = hostile[name]
    audio = triton.InferInput("audio", [1], "BYTES")
    audio.set_data_from_numpy(np.array([case.data], dtype=object))
    if case.code is None:
        assert client.infer(MODEL, [audio]).as_numpy("label").shape == (1, 3)
    else:
        with pytest.raises(InferenceServerException) as info:
            client.infer(MODEL, [audio])
        assert info.value.status() == f"StatusCode.{STATUS[case.code].grpc.name}"
        assert info.value.message().startswith(f"{case.code}: audio[0]: "), info.value.message()
    assert client.is_server_ready()


@pytest.mark.parametrize(
    "headers, body, code",
    [
        ({}, b"", "invalid_form"),  # no content type at all
        ({"Content-Type": "multipart/form-data; boundary=x"}, b"", "missing"),  # empty body: an empty form
        ({"Content-Type": "multipart/form-data; boundary=x"}, b"--x\r\nContent-Disposition: form-da", "missing"),
        ({"Content-Type": "application/json"}, b'{"audio": "http://169.254.169.254/"}', "invalid_form"),
        ({"Content-Type": "multipart/form-data"}, b"--x\r\n\r\n--x--\r\n", "invalid_form"),  # no boundary
    ],
    ids=["no content type", "empty body", "truncated multipart", "json with a URL", "no boundary"],
)
def test_malformed_requests(server, headers, body, code):
    response = requests.post(f"{server.http}/classify", data=body, headers=headers, timeout=30)
    assert response.status_code == 400 and response.json()["error"] == code, response.text


def test_misnamed_field_is_a_400_naming_the_field(server, digit_wav):
    response = requests.post(f"{server.http}/classify", files={"sound": ("a.wav", digit_wav.read_bytes())}, timeout=30)
    assert response.status_code == 400 and response.json()["error"] == "missing", response.text
    assert "'audio'" in response.json()["detail"] and "sound" in response.json()["detail"]


def test_an_upload_over_the_limit_is_refused_from_its_declared_length_before_it_is_sent(server):
    head = (
        b"POST /classify HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=x\r\n"
        b"Content-Length: 1000000000\r\n\r\n"
    )
    answer = rawhttp.exchange(
        server.http, head + b"--x\r\nContent-Disposition: form-data; name=audio; filename=a.wav\r\n\r\n" + bytes(1000)
    )
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"too_large" in answer and b"connection: close" in answer.lower()


def test_http_and_grpc_size_limits_come_from_max_upload_bytes(server, client):
    settings = Settings(
        **{k.removeprefix("AUDIOCLF_").lower(): v for k, v in server.env.items() if k.startswith("AUDIOCLF_")}
    )
    assert settings.max_upload_bytes == 2_000_000
    assert message_limit(settings) == settings.max_upload_bytes + (1 << 20)
    # HTTP: a body one byte over max_upload_bytes + the multipart envelope is refused from its declared length
    over = settings.max_upload_bytes + ENVELOPE_BYTES + 1
    head = (
        "POST /classify HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=x\r\n"
        f"Content-Length: {over}\r\n\r\n"
    )
    assert rawhttp.exchange(server.http, head.encode()).startswith(b"HTTP/1.1 413")
    # gRPC: a message one byte over its limit is refused by gRPC itself; one file over max_upload_bytes by the service
    for size, expected in ((message_limit(settings), "larger than max"), (settings.max_upload_bytes + 1, "too_large")):
        audio = triton.InferInput("audio", [1], "BYTES")
        audio.set_data_from_numpy(np.array([bytes(size)], dtype=object))
        with pytest.raises(InferenceServerException) as info:
            client.infer(MODEL, [audio])
        assert info.value.status() == "StatusCode.RESOURCE_EXHAUSTED" and expected in info.value.message()


def test_grpc_requests_without_the_input_or_with_garbage_get_invalid_argument(server):
    from tritonclient.grpc import service_pb2, service_pb2_grpc

    with grpc.insecure_channel(server.grpc) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            stub.ModelInfer(service_pb2.ModelInferRequest(model_name=MODEL), timeout=10)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "missing" in info.value.details()
        raw = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")  # bytes in, bytes out
        with pytest.raises(grpc.RpcError) as info:
            raw(b"\xff\xfe not a protobuf \x00" * 10, timeout=10)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "not a valid" in info.value.details()
    assert server.ready()


def test_cors_is_off(server):
    origin = {"Origin": "https://evil.example"}
    preflight = requests.options(
        f"{server.http}/classify", headers={**origin, "Access-Control-Request-Method": "POST"}, timeout=10
    )
    assert "access-control-allow-origin" not in {k.lower() for k in preflight.headers}
    for response in (
        requests.get(f"{server.http}/readyz", headers=origin, timeout=10),
        requests.post(f"{server.http}/classify", headers=origin, files={"audio": ("a", b"x" * 100)}, timeout=10),
    ):
        assert "access-control-allow-origin" not in {k.lower() for k in response.headers}
