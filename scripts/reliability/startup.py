"""Phase 5: a missing model and damaged copies of the model (devtools.hostile.DAMAGED_MODELS) at start, through
`python -m service` and through `bentoml serve` (the container's command): exit status and last line."""

import os
import subprocess
import sys
import time
from pathlib import Path

from devtools.hostile import DAMAGED_MODELS
from devtools.server import free_port
from scripts.reliability import ROOT
from scripts.reliability.store import damaged_copy

HEADER = ("model", "started with", "exit status", "message", "time")
COMMANDS = {
    "python -m service": [sys.executable, "-m", "service"],
    "bentoml serve": [sys.executable, "-m", "bentoml", "serve", "service.app:AudioClassifier"],
}


def rows(home: Path, tag: str) -> list[tuple]:
    tags = {"missing model": "no_such_model:latest"}
    tags |= {what: damaged_copy(home, tag, version, damage) for version, (what, damage) in DAMAGED_MODELS.items()}
    out = []
    env = {**os.environ, "BENTOML_HOME": str(home), "AUDIOCLF_HOST": "127.0.0.1"}
    for name, bad in tags.items():
        for how, cmd in COMMANDS.items():
            ports = {"AUDIOCLF_HTTP_PORT": str(free_port()), "AUDIOCLF_GRPC_PORT": str(free_port())}
            started = time.monotonic()
            try:
                done = subprocess.run(
                    cmd,
                    cwd=ROOT,
                    env={**env, "AUDIOCLF_MODEL_TAG": bad, **ports},
                    capture_output=True,
                    text=True,
                    timeout=120,
                )
                code, lines = done.returncode, [x for x in done.stderr.splitlines() if x.strip()]
                last = lines[-1] if lines else ""
            except subprocess.TimeoutExpired:
                code, last = "still running after 120 s", ""
            out.append((name, how, str(code), str(last)[:160], f"{time.monotonic() - started:.0f} s"))
    return out
