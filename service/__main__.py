"""`python -m service`: serve the store model named by AUDIOCLF_MODEL_TAG over HTTP and gRPC.

Validates the settings and checks that the model is in the store and intact first (service.model_check), so a
typo or a missing or corrupt model fails here with one clear line and exit status 2 instead of inside a worker;
then hands over to `bentoml serve` (extra arguments pass through).
"""

import os
import sys
from pathlib import Path

from pydantic import ValidationError

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str]) -> int:
    from service.settings import get_settings

    try:
        settings = get_settings()
    except ValidationError as exc:
        sys.stderr.write(f"invalid AUDIOCLF_* settings:\n{exc}\n")
        return 2
    from service.model_check import ModelUnusable, check, check_backend

    try:
        check_backend(settings.keras_backend)
        check(settings.model_tag)
    except ModelUnusable as exc:
        sys.stderr.write(f"{exc}\n")
        return 2
    command = [
        sys.executable,
        "-m",
        "bentoml",
        "serve",
        "service.app:AudioClassifier",
        "--working-dir",
        str(ROOT),
        "--host",
        settings.host,
        "--port",
        str(settings.http_port),
        *argv,
    ]
    os.execv(sys.executable, command)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
