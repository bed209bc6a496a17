"""`python -m service` refuses to start, with one clear line and exit status 2, when the settings are wrong or the
model is missing or corrupt."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

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
    import bentoml

    stored = bentoml.models.get(trained_model.tag)
    folder = Path(stored.path).parent / version
    if not folder.exists():
        shutil.copytree(stored.path, folder)
        damage(folder)
    return f"{stored.tag.name}:{version}"


def _truncate(folder: Path) -> None:
    (folder / "model.keras").write_bytes((folder / "model.keras").read_bytes()[:1000])


def _flip_a_byte(folder: Path) -> None:
    data = bytearray((folder / "model.keras").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / "model.keras").write_bytes(bytes(data))


def _break_metadata(folder: Path) -> None:
    (folder / "metadata.json").write_text('{"labels": ["a"]')


@pytest.mark.e2e
@pytest.mark.parametrize(
    "version, damage, words",
    [
        ("truncated", _truncate, "is corrupt"),
        ("flipped", _flip_a_byte, "is corrupt"),
        ("badmeta", _break_metadata, "not valid model metadata"),
    ],
)
def test_a_corrupt_model_is_refused_in_one_line(trained_model, version, damage, words):
    tag = _damaged_copy(trained_model, version, damage)
    done = run_main(model_tag=tag)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and tag in lines[0] and words in lines[0], done.stderr
