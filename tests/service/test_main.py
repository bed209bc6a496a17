"""`python -m service` refuses to start, with one clear line, when the settings are wrong or the model is missing."""

import os
import subprocess
import sys

from tests.conftest import ROOT


def run_main(**env) -> subprocess.CompletedProcess:
    full = {**os.environ, **{f"AUDIOCLF_{k.upper()}": str(v) for k, v in env.items()}}
    return subprocess.run(
        [sys.executable, "-m", "service"], cwd=ROOT, env=full, capture_output=True, text=True, timeout=120
    )


def test_a_model_missing_from_the_store_is_named():
    done = run_main(model_tag="no_such_model:latest")
    assert done.returncode == 2
    assert "no_such_model:latest" in done.stderr and "python -m training train" in done.stderr


def test_invalid_settings_are_named():
    done = run_main(http_port="3000", grpc_port="3000")
    assert done.returncode == 2 and "both 3000" in done.stderr
