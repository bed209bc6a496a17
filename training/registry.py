"""Copy a model folder into the BentoML model store (bentoml.models.create), with its metadata as labels/metadata."""

import shutil
from pathlib import Path

import bentoml

from audiocore.artifact import ModelMetadata


def register(folder: Path, name: str, meta: ModelMetadata) -> str:
    """Store every file of `folder` as a new version of model `name`; returns the tag (name:version)."""
    summary = {
        "labels": meta.labels,
        "features": meta.features.model_dump(exclude_none=True),  # the store refuses None values
        "metrics": meta.metrics,
        "data_fingerprint": meta.data_fingerprint,
        "format_version": meta.format_version,
    }
    with bentoml.models.create(
        name,
        labels={"task": "audio-classification", "framework": "keras", "features": meta.features.kind},
        metadata=summary,
    ) as model:
        for item in Path(folder).iterdir():
            if item.is_file():
                shutil.copy2(item, Path(model.path) / item.name)
    return str(model.tag)
