"""Past capacity and at shutdown, on a server of its own (1 worker, AUDIOCLF_MAX_CONCURRENCY=1): a request
over the limit gets a fast 503 with Retry-After (gRPC: UNAVAILABLE with retry metadata), service recovers when load
drops, a slow upload cannot hold a slot forever, and SIGTERM turns readiness off before the request in flight
finishes. No timing asserts: a slot is held by an upload that is deliberately left unfinished."""

import os
import signal
import socket
import time

import grpc
import pytest
import requests
from tritonclient.grpc import service_pb2, service_pb2_grpc

from devtools import rawhttp
from devtools.server import start_server, stop
from tests.conftest import serving

pytestmark = pytest.mark.e2e
BOUNDARY = "x7RkQ"


@pytest.fixture(scope="module")
def small_server(trained_model, tmp_path_factory):
    log = tmp_path_factory.mktemp("overload") / "server.log"
    proc, srv = start_server(trained_model.tag, log, workers=1, max_concurrency=1, request_timeout_s=5, drain_s=1)
    try:
        serving(proc, srv)
        yield proc, srv
    finally:
        stop(proc)


class HeldUpload:
    """A real /classify upload sent in two halves over a raw socket: between them it holds an admission slot."""

    def __init__(self, server, data: bytes):
        part = (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="audio"; filename="a.wav"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        self.body = part + data + f"\r\n--{BOUNDARY}--\r\n".encode()
        host, port = server.http.removeprefix("http://").split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=30)
        head = (
            f"POST /classify HTTP/1.1\r\nHost: {host}\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
            f"Content-Length: {len(self.body)}\r\n\r\n"
        ).encode()
        self.sock.sendall(head + self.body[: len(self.body) // 2])

    def finish(self) -> bytes:
        self.sock.sendall(self.body[len(self.body) // 2 :])
        return self.answer()

    def answer(self) -> bytes:
        data = rawhttp.read_response(self.sock, timeout=30)
        self.sock.close()
        return data


def _until(predicate, timeout_s: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def _classify(server, data: bytes) -> requests.Response:
    return requests.post(f"{server.http}/classify", files={"audio": ("a.wav", data)}, timeout=30)


def _grpc_infer(server, data: bytes):
    with grpc.insecure_channel(server.grpc) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        request = service_pb2.ModelInferRequest(model_name="audio_classifier")
        tensor = request.inputs.add(name="audio", datatype="BYTES", shape=[1])
        tensor.contents.bytes_contents.append(data)
        return stub.ModelInfer(request, timeout=30)


def test_past_the_limit_http_and_grpc_are_refused_at_once_with_retry_after_then_recover(small_server, digit_wav):
    _, server = small_server
    wav = digit_wav.read_bytes()
    assert _classify(server, wav).status_code == 200
    held = HeldUpload(server, wav)
    try:
        refused = _classify(server, wav)
        assert refused.status_code == 503, refused.text
        assert refused.headers["Retry-After"] == "1" and refused.json()["error"] == "overloaded"
        assert "limit of 1" in refused.json()["detail"]
        with pytest.raises(grpc.RpcError) as info:
            _grpc_infer(server, wav)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE and info.value.details().startswith("overloaded: ")
        assert dict(info.value.trailing_metadata())["retry-after"] == "1"
        assert server.ready()  # probes are not limited: overload is not unreadiness
    finally:
        answer = held.finish()
    assert answer.startswith(b"HTTP/1.1 200"), answer[:300]  # the held request itself was served
    assert _until(lambda: _classify(server, wav).status_code == 200)
    assert len(_grpc_infer(server, wav).raw_output_contents) == 2


def test_an_upload_that_never_finishes_is_cut_off_with_408(small_server, digit_wav):
    _, server = small_server
    held = HeldUpload(server, digit_wav.read_bytes())  # request_timeout_s=5: the guard gives up on it
    answer = held.answer()
    assert answer.startswith(b"HTTP/1.1 408") and b"upload_timeout" in answer, answer[:300]
    assert _until(lambda: _classify(server, digit_wav.read_bytes()).status_code == 200)


def test_sigterm_drops_readiness_first_and_the_request_in_flight_still_finishes(small_server, digit_wav):
    proc, server = small_server
    wav = digit_wav.read_bytes()
    held = HeldUpload(server, wav)
    os.kill(proc.pid, signal.SIGTERM)  # the arbiter, as Kubernetes signals PID 1
    assert _until(lambda: not server.ready(), 10)
    answer = held.finish()  # accepted before SIGTERM: served although the server is stopping
    assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
    assert b'"predictions"' in answer
    proc.wait(timeout=60)
    assert proc.returncode == 0
