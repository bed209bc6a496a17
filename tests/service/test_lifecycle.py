"""A worker among its siblings: inside a container (BENTOML_CONTAINERIZED) circus does not restart a killed worker,
so the survivors report themselves not alive once the grace has passed and the liveness probe restarts the pod."""

import os
import signal
import time

import psutil
import requests

from devtools import procs
from devtools.server import start_server, stop
from service.lifecycle import Siblings, is_worker
from tests.conftest import serving


def test_only_bentoml_workers_count_as_workers():
    assert is_worker(["/usr/bin/python", "-m", "_bentoml_impl.worker.service", "--worker-id", "1"])
    assert not is_worker(psutil.Process().cmdline())


def test_outside_a_server_the_siblings_are_always_complete():
    assert Siblings(expected=8, grace_s=0.001).complete()


def test_a_container_that_lost_a_worker_fails_liveness_after_the_grace(trained_model, tmp_path):
    proc, srv = start_server(
        trained_model.tag,
        tmp_path / "server.log",
        extra_env={"BENTOML_CONTAINERIZED": "true"},
        workers=2,
        worker_loss_grace_s=3,
    )
    try:
        serving(proc, srv)
        assert requests.get(f"{srv.http}/livez", timeout=5).status_code == 200
        workers = procs.workers(proc.pid)
        assert len(workers) == 2
        os.kill(workers[0], signal.SIGKILL)
        killed_at, answers = time.monotonic(), []
        while time.monotonic() - killed_at < 30:
            answers.append(
                (round(time.monotonic() - killed_at, 1), requests.get(f"{srv.http}/livez", timeout=5).status_code)
            )
            if answers[-1][1] == 503:
                break
            time.sleep(0.5)
        assert procs.workers(proc.pid) == workers[1:], "circus restarted the worker: not a container's arbiter"
        first_503 = next((t for t, status in answers if status == 503), None)
        assert first_503 is not None, answers
        assert first_503 >= 3, answers  # not before the grace: circus outside containers restarts within it
        # the survivor still answers requests meanwhile: the pod degrades, it does not go dark before its restart
        assert requests.get(f"{srv.http}/readyz", timeout=5).status_code == 200
    finally:
        stop(proc)
