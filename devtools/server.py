"""The real server as a process, for tests and tools: start `python -m service` on 127.0.0.1 and free ports, wait
until every worker is ready, stop its whole process group."""

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
READY_TIMEOUT_S = 300  # first start on a cold numba cache compiles librosa's kernels (~35 s on 2 cores)


class ServerFailed(RuntimeError):
    """The server exited or did not become ready in time; the message ends with its log's tail."""


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

    def dead(self) -> bool:
        """A worker answers /livez with 503: its warm-up failed or its scoring stopped (it will never be ready)."""
        try:
            return requests.get(f"{self.http}/livez", timeout=5).status_code == 503
        except requests.RequestException:
            return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(tag: str, log: Path, extra_env: dict | None = None, **settings) -> tuple[subprocess.Popen, Server]:
    """`python -m service` with AUDIOCLF_* `settings` (and any `extra_env`), its own process group and its own
    BENTOML_HOME beside the log (see `private_home`)."""
    http_port, grpc_port = free_port(), free_port()
    env = {
        **os.environ,
        **private_home(log.parent / f"bentoml-{http_port}"),
        **(extra_env or {}),
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


def private_home(folder: Path) -> dict:
    """Environment for a server of its own: a BENTOML_HOME in `folder` whose `models` is the current store's (a
    symbolic link, read only by the server). `bentoml serve` empties $BENTOML_HOME/prometheus_multiproc_dir at
    start, so a second server on the same home would wipe the first one's metrics."""
    store = Path(os.environ.get("BENTOML_HOME", Path.home() / "bentoml")) / "models"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "models").symlink_to(store.resolve(), target_is_directory=True)
    return {"BENTOML_HOME": str(folder)}


def wait_ready(proc: subprocess.Popen, server: Server, timeout_s: float = READY_TIMEOUT_S) -> None:
    """Until /readyz answers 200 on 20 fresh connections in a row: the kernel hands each to one of the workers, and
    every worker warms up on its own. ServerFailed when the server exits, a worker reports itself dead (a failed
    warm-up: no need to wait out the timeout) or `timeout_s` passes first."""
    deadline, in_a_row = time.monotonic() + timeout_s, 0
    while time.monotonic() < deadline and in_a_row < 20:
        if proc.poll() is not None:
            raise ServerFailed(f"the server exited with {proc.returncode}:\n{log_tail(server.log)}")
        in_a_row = in_a_row + 1 if server.ready() else 0
        if not in_a_row and server.dead():
            raise ServerFailed(f"a worker answers /livez with 503 (warm-up failed?):\n{log_tail(server.log)}")
        time.sleep(0.1 if in_a_row else 1.0)
    if in_a_row < 20:
        raise ServerFailed(f"the server was not ready within {timeout_s:.0f} s:\n{log_tail(server.log)}")


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
