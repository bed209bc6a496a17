"""The model artifact: a folder with the Keras model and metadata.json, loadable with or without BentoML.

Training writes it (and copies it into the BentoML store); the service reads labels and preprocessing settings
from metadata.json, never from code. Feature standardisation lives inside the Keras model (a Normalization
layer fitted on training data), so it cannot be forgotten on either side.
"""

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from audiocore.config import FeatureConfig

FORMAT_VERSION = 1
MODEL_FILE = "model.keras"
METADATA_FILE = "metadata.json"


class ArtifactError(RuntimeError):
    """The artifact folder is missing, incomplete or from an incompatible version."""


class ModelMetadata(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format_version: int = FORMAT_VERSION
    labels: list[str] = Field(min_length=2)
    features: FeatureConfig
    metrics: dict[str, Any] = Field(default_factory=dict, description="Headline metrics per split.")
    data_fingerprint: str = ""
    created_at: str = ""
    training_config: dict[str, Any] = Field(default_factory=dict)


def write_metadata(folder: Path, metadata: ModelMetadata) -> None:
    (Path(folder) / METADATA_FILE).write_text(metadata.model_dump_json(indent=2))


def read_metadata(folder: Path) -> ModelMetadata:
    path = Path(folder) / METADATA_FILE
    if not path.is_file():
        raise ArtifactError(f"{path} not found: not a model folder written by `python -m training train`")
    try:
        meta = ModelMetadata.model_validate(json.loads(path.read_text()))
    except (ValueError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{path} is not valid model metadata: {exc}") from exc
    if meta.format_version != FORMAT_VERSION:
        raise ArtifactError(f"{path}: artifact format {meta.format_version}, this code reads {FORMAT_VERSION}")
    return meta


def load(folder: Path):
    """Load (keras_model, metadata) from an artifact folder; raises ArtifactError with the reason."""
    import keras  # deferred: decoding and features do not need TensorFlow

    folder = Path(folder)
    meta = read_metadata(folder)
    model_path = folder / MODEL_FILE
    if not model_path.is_file():
        raise ArtifactError(f"{model_path} not found")
    try:
        model = keras.saving.load_model(model_path, compile=False)
    except Exception as exc:  # keras raises many types for a damaged zip/h5
        raise ArtifactError(f"{model_path} could not be loaded: {exc}") from exc
    expected = (None, *meta.features.input_shape)
    if tuple(model.input_shape) != expected or model.output_shape[-1] != len(meta.labels):
        raise ArtifactError(
            f"{folder}: model input {model.input_shape} / output {model.output_shape} do not match the metadata "
            f"(input {expected}, {len(meta.labels)} labels)"
        )
    return model, meta
