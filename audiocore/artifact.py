"""The model artifact: a folder with the Keras model and metadata.json, loadable with or without BentoML.

Training writes it (and copies it into the BentoML store); the service reads labels and preprocessing settings
from metadata.json, never from code. Feature standardisation lives inside the Keras model (a Normalization
layer fitted on training data), so it cannot be forgotten on either side.
"""

import json
import zipfile
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from audiocore.aggregate import Aggregator, MeanProbabilities, PooledLogistic
from audiocore.config import FeatureConfig

FORMAT_VERSION = 1
MODEL_FILE = "model.keras"
METADATA_FILE = "metadata.json"
HEAD_FILE = "clip_head.npz"  # the PooledLogistic clip head of a `pooled_logistic` model


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
    aggregation: Literal["mean_probabilities", "pooled_logistic"] = Field(
        "mean_probabilities",
        description="How a clip's window outputs become its scores (audiocore.aggregate): the mean of the model's "
        "window probabilities, or a logistic regression (clip_head.npz) on the mean and max of its window "
        "embeddings.",
    )


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


def load_aggregator(folder: Path, meta: ModelMetadata) -> Aggregator:
    """How this model's window outputs become a clip's scores; ArtifactError when its clip head is missing or
    damaged."""
    if meta.aggregation == "mean_probabilities":
        return MeanProbabilities()
    path = Path(folder) / HEAD_FILE
    if not path.is_file():
        raise ArtifactError(f"{path} not found: a pooled_logistic model needs its clip head")
    try:
        head = PooledLogistic.load(path)
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as exc:  # a damaged file, missing arrays
        raise ArtifactError(f"{path} is not a valid clip head: {exc}") from exc
    if head.n_classes != len(meta.labels):
        raise ArtifactError(
            f"{path}: the clip head scores {head.n_classes} classes, the metadata has {len(meta.labels)}"
        )
    return head


def window_output_dim(meta: ModelMetadata, aggregator: Aggregator) -> int:
    """What the Keras model must give per window: one probability per label, or the clip head's embedding."""
    return aggregator.embedding_dim if isinstance(aggregator, PooledLogistic) else len(meta.labels)


def load(folder: Path):
    """Load (keras_model, metadata, aggregator) from an artifact folder; raises ArtifactError with the reason."""
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
    aggregator = load_aggregator(folder, meta)
    expected = (None, *meta.features.input_shape)
    outputs = window_output_dim(meta, aggregator)
    if tuple(model.input_shape) != expected or model.output_shape[-1] != outputs:
        raise ArtifactError(
            f"{folder}: model input {model.input_shape} / output {model.output_shape} do not match the metadata "
            f"(input {expected}, {outputs} outputs per window for {meta.aggregation})"
        )
    return model, meta, aggregator
