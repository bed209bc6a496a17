"""Service fixtures: a small FSDD model trained and registered once per session, and the real server serving it.

The model trains on 10 clips per (digit, speaker) and is tested on FSDD's 300 official test clips, so its
metadata holds a test accuracy that the server must reproduce over HTTP and gRPC. The server is the real
`python -m service` process (bentoml serve, entry + model service workers) on 127.0.0.1 and free ports.
"""

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.conftest import ROOT

CLIPS_PER_DIGIT_AND_SPEAKER = 10
EPOCHS = 10
READY_TIMEOUT_S = 300  # first start on a cold numba cache compiles librosa's kernels (~35 s on 2 cores)


@dataclass(frozen=True)
class TrainedModel:
    tag: str
    folder: Path
    test_accuracy: float
    test_clips: list[tuple[Path, str]]  # (file, label) of the official test split


@dataclass(frozen=True)
class Server:
    http: str  # base URL
    grpc: str  # host:port
    tag: str
    log: Path
    env: dict

    def ready(self) -> bool:
        try:
            return requests.get(f"{self.http}/readyz", timeout=5).status_code == 200
        except requests.RequestException:
            return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def fsdd_test_clips(fsdd) -> list[tuple[Path, str]]:
    with open(fsdd / "manifest.csv", newline="") as handle:
        return [(fsdd / r["path"], r["label"]) for r in csv.DictReader(handle) if r["split"] == "test"]


@pytest.fixture(scope="session")
def trained_model(fsdd, fsdd_test_clips, tmp_path_factory) -> TrainedModel:
    """`python -m training train` on a slice of FSDD, registered in this session's BentoML store."""
    work = tmp_path_factory.mktemp("model")
    with open(fsdd / "manifest.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    taken: dict[tuple[str, str], int] = {}
    picked = []
    for row in rows:  # every test clip, and the first few training clips of each (digit, speaker)
        if row["split"] != "test":
            key = (row["label"], row["speaker"])
            if taken.get(key, 0) == CLIPS_PER_DIGIT_AND_SPEAKER:
                continue
            taken[key] = taken.get(key, 0) + 1
        picked.append({**row, "path": str(fsdd / row["path"])})
    manifest = work / "manifest.csv"
    with open(manifest, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(picked)
    run = work / "run"
    cmd = [
        sys.executable,
        "-m",
        "training",
        "train",
        "--data",
        str(manifest),
        "--out",
        str(run),
        "--epochs",
        str(EPOCHS),
        "--set",
        "augment.enabled=false",
        "--set",
        "fit.tensorboard=false",
    ]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"training failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    summary = json.loads((run / "metrics.json").read_text())
    return TrainedModel(
        tag=summary["bentoml_tag"],
        folder=run / "model",
        test_accuracy=summary["test"]["accuracy"],
        test_clips=fsdd_test_clips,
    )


def start_server(tag: str, log: Path, **settings) -> tuple[subprocess.Popen, Server]:
    http_port, grpc_port = free_port(), free_port()
    env = {
        **os.environ,
        "AUDIOCLF_MODEL_TAG": tag,
        "AUDIOCLF_HOST": "127.0.0.1",
        "AUDIOCLF_HTTP_PORT": str(http_port),
        "AUDIOCLF_GRPC_PORT": str(grpc_port),
        **{f"AUDIOCLF_{k.upper()}": str(v) for k, v in settings.items()},
    }
    handle = open(log, "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "service"],
        cwd=ROOT,
        env=env,
        stdout=handle,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: teardown stops the workers too
    )
    handle.close()
    return proc, Server(f"http://127.0.0.1:{http_port}", f"127.0.0.1:{grpc_port}", tag, log, env)


def wait_ready(proc: subprocess.Popen, server: Server, timeout_s: float = READY_TIMEOUT_S) -> None:
    """Until /readyz answers 200 on 20 fresh connections in a row: the kernel hands each to one of the entry
    workers, and every worker warms up on its own."""
    deadline, in_a_row = time.monotonic() + timeout_s, 0
    while time.monotonic() < deadline and in_a_row < 20:
        if proc.poll() is not None:
            pytest.fail(f"the server exited with {proc.returncode}:\n{log_tail(server.log)}")
        in_a_row = in_a_row + 1 if server.ready() else 0
        time.sleep(0.1 if in_a_row else 1.0)
    if in_a_row < 20:
        pytest.fail(f"the server was not ready within {timeout_s:.0f} s:\n{log_tail(server.log)}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def log_tail(log: Path, lines: int = 60) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else "(no log)"


@pytest.fixture(scope="session")
def server(trained_model, tmp_path_factory) -> Server:
    """The real server with default settings (and a small upload/duration limit the error tests can reach)."""
    log = tmp_path_factory.mktemp("server") / "server.log"
    proc, srv = start_server(trained_model.tag, log, max_upload_bytes=2_000_000, max_audio_seconds=30)
    try:
        wait_ready(proc, srv)
        yield srv
    finally:
        stop(proc)
