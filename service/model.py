"""The model a worker serves: found in the BentoML store, loaded into this process on the Keras backend that
KERAS_BACKEND names (TensorFlow by default, its threads bounded; JAX or torch on GPU machines), and described by
the metadata it was trained with (tag, labels, feature settings, metrics).

Every worker holds its own copy (about 400 MiB of RSS for the default model with TensorFlow), so a request never
leaves the process that accepted it. On a GPU, memory is allocated as needed rather than all at start (TensorFlow's
memory growth, JAX without preallocation), so several workers can share one card.
"""

import logging
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from audiocore import artifact
from audiocore.aggregate import Aggregator, MeanProbabilities
from audiocore.config import FeatureConfig
from service import model_check

log = logging.getLogger("audioclf.model")

# Windows per Keras call: a batch holding many long clips is scored in slices of this size to bound memory.
PREDICT_CHUNK = 512


@dataclass(frozen=True)
class ModelInfo:
    """What requests need to know about the loaded model; all of it read from the model's metadata."""

    tag: str
    name: str
    version: str
    labels: list[str]
    features: FeatureConfig
    metrics: dict[str, Any] = field(default_factory=dict)
    aggregator: Aggregator = field(default_factory=MeanProbabilities)  # window outputs -> a clip's scores


class ServedModel:
    """The Keras model and its metadata; `predict` maps features (n, frames, n_features) to the model's window
    outputs (softmax scores, or embeddings that `info.aggregator` pools into a clip's scores)."""

    def __init__(self, tag: str, threads: int, backend: str = "tensorflow"):
        _configure_backend(backend, threads)
        exact, folder = model_check.locate(tag)  # checked whole before any worker started (on_deployment)
        self.keras, meta, aggregator = artifact.load(folder)
        name, _, version = exact.partition(":")
        self.info = ModelInfo(
            tag=exact,
            name=name,
            version=version,
            labels=list(meta.labels),
            features=meta.features,
            metrics=meta.metrics,
            aggregator=aggregator,
        )
        for n in (1, 2, 3, 8):  # trace Keras's predict function before the first request pays for it
            self.predict(np.zeros((n, *meta.features.input_shape), dtype=np.float32))
        log.info("model %s loaded on %s: %d labels, input %s", exact, backend, len(meta.labels), self.keras.input_shape)

    def predict(self, features: np.ndarray) -> np.ndarray:
        chunks = [
            np.asarray(self.keras.predict_on_batch(features[lo : lo + PREDICT_CHUNK]))
            for lo in range(0, len(features), PREDICT_CHUNK)
        ]
        return np.concatenate(chunks).astype(np.float32, copy=False)


def _configure_backend(backend: str, threads: int) -> None:
    """Before Keras runs anything: the backend Keras was imported with is the one asked for, and its resources are
    bounded (TensorFlow's threads and GPU memory; JAX's GPU memory, which it would otherwise take 75 % of per
    process, so that several workers could not share a card)."""
    if backend == "jax":
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    import keras

    if keras.backend.backend() != backend:
        raise RuntimeError(
            f"Keras runs on {keras.backend.backend()!r}, not KERAS_BACKEND={backend!r}: keras was imported before the "
            "variable was set, or ~/.keras/keras.json names another backend"
        )
    if backend == "tensorflow":
        _configure_tensorflow(threads)


def _configure_tensorflow(threads: int) -> None:
    """Bound TensorFlow's thread pools (one worker per core is the default layout, so one thread each avoids
    oversubscription) and, on a GPU, allocate memory as needed. Must run before TensorFlow executes anything."""
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:  # already initialised in this process (tests loading twice): keep what it has
        log.debug("TensorFlow already initialised; thread settings unchanged")
    for gpu in tf.config.list_physical_devices("GPU"):
        tf.config.experimental.set_memory_growth(gpu, True)
