"""The Locust smoke profile, headless, against the real server: both users (HTTP and gRPC) make requests and none
fails. A real `locust` process with the project's locustfile, as `make loadtest-smoke` runs it; no timing asserts."""

import subprocess
import sys

import pytest

from devtools.server import ROOT, log_tail
from loadtests import summary as summaries

pytestmark = pytest.mark.e2e


def test_smoke_profile_http_and_grpc_without_failures(server, tmp_path):
    out = tmp_path / "smoke"
    command = [sys.executable, "-m", "loadtests.run", "smoke", "--host", server.http, "--grpc-host", server.grpc]
    done = subprocess.run([*command, "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=180)
    locust_log = (out / "locust.log").read_text(errors="replace")[-3000:] if (out / "locust.log").exists() else ""
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}\n{locust_log}\n{log_tail(server.log)}"

    result = summaries.read(out / "locust")
    by_type = {}
    for row in result.rows:
        by_type[row.type] = by_type.get(row.type, 0) + row.requests
    assert by_type.get("POST", 0) > 0 and by_type.get("grpc", 0) > 0, by_type
    assert result.total.failures == 0, result.errors  # not even load shedding at this load
    assert (out / "report.html").stat().st_size > 0
    assert server.ready()
