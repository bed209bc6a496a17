"""`evaluate`: score a saved model (folder or BentoML tag) on labelled clips, with the serving feature path."""

from pathlib import Path

import numpy as np

from audiocore import artifact, store
from audiocore.clip import prepare
from audiocore.features import featurize
from training.dataset import DataError, discover
from training.evaluate import metrics


def resolve_model_dir(ref: str) -> Path:
    """A model folder path, or a BentoML tag looked up in the local store."""
    if Path(ref).is_dir():
        return Path(ref)
    try:
        return store.locate(ref)[1]
    except store.NotInStore as exc:
        raise FileNotFoundError(f"{ref!r} is neither a model folder nor a model in the BentoML store") from exc


def evaluate_model(ref: str, data: Path, split: str = "all") -> dict:
    model, meta, aggregator = artifact.load(resolve_model_dir(ref))
    clips = [c for c in discover(data) if split == "all" or c.split == split]
    if not clips:
        raise DataError(f"{data}: no clips with split {split!r}")
    unknown = sorted({c.label for c in clips} - set(meta.labels))
    if unknown:
        raise DataError(f"labels {unknown} are not among the model's labels {meta.labels}")
    cfg = meta.features
    probs = []
    for clip in clips:
        windows = prepare(clip.path, cfg).windows
        probs.append(aggregator.clip(model.predict(featurize(windows, cfg), verbose=0)))
    y = np.array([meta.labels.index(c.label) for c in clips])
    return metrics(y, np.stack(probs), meta.labels)
