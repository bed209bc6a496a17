"""A cheap check, before any worker starts, that the model to serve exists and is not damaged, and that the Keras
backend to run it on is installed.

Loading the model takes a framework and seconds; a missing or corrupt model found only then makes workers die and
circus restart them over and over. These checks take milliseconds: the backend's package is importable, the tag
resolves in the store, metadata.json validates (and a pooled model's clip head loads), and model.keras is an intact
zip (every member's CRC) whose config.json parses. `python -m service` runs them and exits 2 with one line; the
service runs them as its deployment hook, so `bentoml serve` (the container's command) refuses to start the same way.
"""

import importlib.util
import json
import zipfile
import zlib
from pathlib import Path

from audiocore import artifact, store


class ModelUnusable(RuntimeError):
    """The model named by AUDIOCLF_MODEL_TAG cannot be served; the message says why and what to do."""


def locate(tag: str) -> tuple[str, Path]:
    """A store tag ('audio_classifier:latest') -> (its exact tag, its folder); ModelUnusable when it is missing."""
    try:
        return store.locate(tag)
    except store.NotInStore as exc:
        raise ModelUnusable(f"{exc}; train one with `python -m training train` or set AUDIOCLF_MODEL_TAG") from None


def check(tag: str) -> Path:
    """The model's folder in the store; ModelUnusable when it is missing or damaged."""
    _, folder = locate(tag)
    try:
        meta = artifact.read_metadata(folder)
        artifact.load_aggregator(folder, meta)  # a pooled_logistic model's clip head (milliseconds)
    except artifact.ArtifactError as exc:
        raise ModelUnusable(f"model {tag!r} is unusable: {_one_line(exc)}") from None
    model_file = folder / artifact.MODEL_FILE
    try:
        with zipfile.ZipFile(model_file) as archive:
            damaged = archive.testzip()
            if damaged is not None:
                raise ModelUnusable(f"model {tag!r} is corrupt: {model_file} member {damaged} fails its checksum")
            json.loads(archive.read("config.json"))
    except (OSError, zipfile.BadZipFile, zlib.error, KeyError, ValueError) as exc:
        raise ModelUnusable(f"model {tag!r} is corrupt: {model_file}: {_one_line(exc)}") from None
    return folder


BACKENDS = ("tensorflow", "jax", "torch")  # Keras's backends, each the name of the package it needs


def check_backend(backend: str) -> None:
    """The Keras backend named by KERAS_BACKEND is installed (ModelUnusable otherwise)."""
    if importlib.util.find_spec(backend) is None:
        installed = ", ".join(b for b in BACKENDS if importlib.util.find_spec(b))
        raise ModelUnusable(
            f"KERAS_BACKEND={backend}, but {backend} is not installed here; install it or choose another backend "
            f"({installed} are)"
        )


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())[:300]
