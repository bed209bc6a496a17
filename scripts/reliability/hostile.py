"""Phase 1: every hostile input over HTTP and gRPC, with the server's peak RSS while each is answered."""

import time

import numpy as np
import requests
import tritonclient.grpc as triton
from tritonclient.utils import InferenceServerException

from devtools import rawhttp
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
    base = sampler.reset()
    answer = rawhttp.exchange(
        server.http,
        b"POST /classify HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=x\r\n"
        b"Content-Length: 1000000000\r\n\r\n" + bytes(1000),
    ).decode(errors="replace")
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


def wrong(found: list[tuple]) -> list[tuple]:
    """The rows whose HTTP status is not the one expected."""
    return [r for r in found if r[6] is not None and not r[2].startswith(str(r[6]))]
