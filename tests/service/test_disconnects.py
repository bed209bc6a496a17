"""Clients that go away leave nothing behind: on a server of its own, with its own TMPDIR, a bounded run of requests
whose clients vanish at every stage (before the body is complete, right after sending it, mid-answer, gRPC calls
cancelled or their channel closed) leaves no file or folder in TMPDIR, no growth in the workers' open file
descriptors, and a server that is ready and answers as before. (The two-process design left one empty
`/tmp/bentoml-request-*` folder per upload whose client disconnected: 73 after two 20-s runs at 64 clients.)"""

import socket
import struct
import time

import grpc
import psutil
import pytest
import requests
import tritonclient.grpc as triton
from tritonclient.grpc import service_pb2, service_pb2_grpc

from devtools.server import start_server, stop
from tests.conftest import serving

pytestmark = pytest.mark.e2e
BOUNDARY = "d1sc0nnect"
ROUNDS = 40  # each round: five HTTP requests abandoned in different ways and two gRPC calls; about 30 s in all
DEADLINE_S = 180
FD_SLACK = 8  # descriptors a worker may hold on top of its baseline (connections still closing, log rotation)


@pytest.fixture(scope="module")
def isolated_server(trained_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("disconnects")
    tmp = root / "tmp"
    tmp.mkdir()
    proc, srv = start_server(trained_model.tag, root / "server.log", extra_env={"TMPDIR": str(tmp)})
    try:
        serving(proc, srv)
        yield proc, srv, tmp
    finally:
        stop(proc)


def form(data: bytes) -> bytes:
    return (
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="audio"; filename="a.wav"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )


def request_head(server, length: int) -> bytes:
    host = server.http.removeprefix("http://")
    return (
        f"POST /classify HTTP/1.1\r\nHost: {host}\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


def connect(server) -> socket.socket:
    host, port = server.http.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = RST, abruptly
    return sock


def abandon_http(server, body: bytes, stage: str) -> None:
    sock = connect(server)
    try:
        if stage == "connect":
            return
        if stage == "headers":
            sock.sendall(request_head(server, len(body)))
        elif stage == "half body":
            sock.sendall(request_head(server, len(body)) + body[: len(body) // 2])
        elif stage == "whole body":
            sock.sendall(request_head(server, len(body)) + body)
        elif stage == "mid answer":
            sock.sendall(request_head(server, len(body)) + body)
            sock.recv(16)  # the answer has started
        time.sleep(0.01)
    finally:
        sock.close()


def worker_fds(proc) -> dict[int, int]:
    workers = [p for p in psutil.Process(proc.pid).children(recursive=True) if "--service-name" in p.cmdline()]
    return {p.pid: p.num_fds() for p in workers}


def files_under(folder) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def test_clients_that_disconnect_leave_no_files_and_no_descriptors(isolated_server, digit_wav):
    proc, server, tmp = isolated_server
    wav = digit_wav.read_bytes()
    body = form(wav)
    ok = requests.post(f"{server.http}/classify", files={"audio": ("a.wav", wav)}, timeout=60)
    assert ok.status_code == 200
    files_before, fds_before = files_under(tmp), worker_fds(proc)
    audio = triton.InferInput("audio", [1], "BYTES")
    audio.set_data_from_numpy(__import__("numpy").array([wav], dtype=object))
    infer = service_pb2.ModelInferRequest(model_name="audio_classifier")
    tensor = infer.inputs.add(name="audio", datatype="BYTES", shape=[1])
    tensor.contents.bytes_contents.append(wav)

    stop_at = time.monotonic() + DEADLINE_S
    rounds = 0
    for _ in range(ROUNDS):
        if time.monotonic() > stop_at:
            break
        for stage in ("connect", "headers", "half body", "whole body", "mid answer"):
            abandon_http(server, body, stage)
        with grpc.insecure_channel(server.grpc) as channel:  # a call cancelled in flight, then one whose channel closes
            stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
            stub.ModelInfer.future(infer, timeout=30).cancel()
            stub.ModelInfer.future(infer, timeout=30)
        rounds += 1
    assert rounds == ROUNDS, f"only {rounds} rounds within {DEADLINE_S} s"

    deadline, fds_after = time.monotonic() + 30, {}
    while time.monotonic() < deadline:  # the server notices the last closed connections within a moment
        time.sleep(0.5)
        fds_after = worker_fds(proc)
        if fds_after.keys() == fds_before.keys() and all(
            fds_after[pid] <= fds_before[pid] + FD_SLACK for pid in fds_before
        ):
            break
    assert fds_after.keys() == fds_before.keys(), f"workers changed: {fds_before} -> {fds_after}"
    for pid, count in fds_after.items():
        assert count <= fds_before[pid] + FD_SLACK, f"worker {pid}: {fds_before[pid]} -> {count} open descriptors"
    assert files_under(tmp) == files_before, f"left behind in TMPDIR: {sorted(files_under(tmp) - files_before)}"
    assert server.ready()
    again = requests.post(f"{server.http}/classify", files={"audio": ("a.wav", wav)}, timeout=60)
    assert again.status_code == 200 and again.json()["predictions"][0]["label"] == ok.json()["predictions"][0]["label"]
