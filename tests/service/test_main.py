"""`python -m service` refuses to start, with one clear line and exit status 2, when the settings are wrong or the
model is missing or corrupt."""

import os
import shutil
import subprocess
import sys

import pytest

from audiocore import store
from devtools.hostile import DAMAGED_MODELS
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


def _damaged_copy(trained_model, version: str, damage) -> str:
    """A copy of the session's model, damaged, as another version in the same (private) store."""
    exact, stored = store.locate(trained_model.tag)
    folder = stored.parent / version
    if not folder.exists():
        shutil.copytree(stored, folder)
        damage(folder)
    return f"{exact.split(':')[0]}:{version}"


@pytest.mark.e2e
@pytest.mark.parametrize(
    "version, words",
    [("truncated", "is corrupt"), ("flipped", "is corrupt"), ("badmeta", "not valid model metadata")],
)
def test_a_corrupt_model_is_refused_in_one_line(trained_model, version, words):
    tag = _damaged_copy(trained_model, version, DAMAGED_MODELS[version][1])
    done = run_main(model_tag=tag)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and tag in lines[0] and words in lines[0], done.stderr
