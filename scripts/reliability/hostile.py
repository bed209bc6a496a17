"""Phase 1: every hostile input over HTTP and gRPC, with the server's peak RSS while each is answered."""

import socket
import time

import numpy as np
import requests
import tritonclient.grpc as triton
from tritonclient.utils import InferenceServerException

from devtools.hostile import cases
from devtools.procs import PeakRss
from scripts.reliability import DIGIT, SETTINGS

HEADER = ("case", "protocol", "answer", "message", "server RSS before", "peak RSS increase")


def mib(n: int) -> str:
    return f"{n / 2**20:.0f} MiB"


def rows(server, sampler: PeakRss) -> list[tuple]:
    """One row per case and protocol: HEADER's columns, then the HTTP status expected (None for gRPC)."""
    out = []
    client = triton.InferenceServerClient(server.grpc)
    for case in cases(DIGIT.read_bytes(), SETTINGS["max_upload_bytes"]):
        base = sampler.reset()
        time.sleep(0.1)
        response = requests.post(f"{server.http}/classify", files={"audio": (case.filename, case.data)}, timeout=120)
        time.sleep(0.1)
        body = response.json()
        message = body.get("detail") if "error" in body else f"top label {body['predictions'][0]['label']}"
        answer = f"{response.status_code} {body.get('error', '')}".strip()
        out.append((case.name, "HTTP", answer, str(message)[:110], mib(base), mib(sampler.peak - base), case.http))
        if case.http_only:
            continue
        base = sampler.reset()
        audio = triton.InferInput("audio", [1], "BYTES")
        audio.set_data_from_numpy(np.array([case.data], dtype=object))
        try:
            client.infer("audio_classifier", [audio])
            answer, message = "OK", "classified"
        except InferenceServerException as exc:
            answer, message = exc.status().removeprefix("StatusCode."), exc.message()
        time.sleep(0.1)
        out.append((case.name, "gRPC", answer, message[:110], mib(base), mib(sampler.peak - base), None))
    out.append(declared_gigabyte(server, sampler))
    return out


def declared_gigabyte(server, sampler: PeakRss) -> tuple:
    """A raw request declaring a 1 GB body and sending 1 kB: the answer must come without the rest being sent."""
    host, port = server.http.removeprefix("http://").split(":")
    base = sampler.reset()
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"POST /classify HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=x\r\n"
            b"Content-Length: 1000000000\r\n\r\n" + bytes(1000)
        )
        answer = _response(sock).decode(errors="replace")
    status = " ".join(answer.split("\r\n", 1)[0].split(" ")[1:2])
    detail = answer.rsplit("\r\n\r\n", 1)[-1][:110]
    return (
        "Content-Length 1 GB, 1 kB sent",
        "HTTP",
        f"{status} too_large",
        detail,
        mib(base),
        mib(sampler.peak - base),
        413,
    )


def _response(sock: socket.socket) -> bytes:
    """The whole HTTP response: its headers, then as many body bytes as its Content-Length says (the body may come
    in a later segment than the headers), or until the server closes the connection."""
    data = b""
    while True:
        head, sep, body = data.partition(b"\r\n\r\n")
        if sep:
            length = next(
                (
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                ),
                None,
            )
            if length is not None and len(body) >= length:
                return data
        try:
            chunk = sock.recv(65536)
        except OSError:  # reset after the answer: what has arrived is the answer
            return data
        if not chunk:
            return data
        data += chunk


def wrong(found: list[tuple]) -> list[tuple]:
    """The rows whose HTTP status is not the one expected."""
    return [r for r in found if r[6] is not None and not r[2].startswith(str(r[6]))]
