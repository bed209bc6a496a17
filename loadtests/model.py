"""Which model the benchmark serves: a store tag, a model folder, or (when the store has none) the small FSDD
model the tests train, in a private store so that the user's store is left as it was."""

import json
import os
from pathlib import Path

from audiocore import store
from devtools.small_model import train_small_model


def use_private_store(folder: Path) -> None:
    """Before bentoml is imported: keep everything the benchmark registers under `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    os.environ["BENTOML_HOME"] = str(folder)


def in_store(tag: str) -> tuple[str, Path] | None:
    try:
        return store.locate(tag)
    except store.NotInStore:
        return None


def register_folder(folder: Path) -> str:
    from audiocore.artifact import read_metadata
    from training.registry import register

    return register(folder, "audio_classifier", read_metadata(folder))


def train_small(fsdd: Path, work: Path) -> str:
    """The tests' small model (devtools.small_model: 10 clips per digit and speaker, 10 epochs, ~1 min)."""
    run = train_small_model(fsdd, work)
    return json.loads((run / "metrics.json").read_text())["bentoml_tag"]
