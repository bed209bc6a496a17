"""The model service: the Keras model from the BentoML store behind one adaptive batcher that HTTP and gRPC share.

One request is one clip: all of its windows travel together and are scored in the same model call, however long
the clip is. BentoML's batcher merges the clips of concurrent requests (from every entry worker) into one call.
"""

import logging
import sys
import time
from typing import Annotated

import bentoml
import numpy as np
from bentoml.validators import ContentType, DType
from pydantic import BaseModel, Field

from audiocore import artifact
from service import lifecycle, metrics, model_check
from service.batching import cap_batch_wait
from service.settings import get_settings

log = logging.getLogger("audioclf.model")
settings = get_settings()

# Windows per Keras call: a batch of many long clips is scored in slices of this size to bound memory.
PREDICT_CHUNK = 512


class ClipWindows(bentoml.IODescriptor):  # an IODescriptor, so BentoML knows how to validate the ndarray
    """One clip's model input, stamped when the entry service handed it over (for the batch-wait metric)."""

    windows: Annotated[np.ndarray, DType("float32")] = Field(description="(n_windows, frames, features)")
    sent_at: float = Field(description="time.time() when the entry service sent it")


class ModelInfo(BaseModel):
    """What the entry service needs to know about the loaded model; all of it read from the model's metadata."""

    tag: str
    name: str
    version: str
    labels: list[str]
    features: dict
    metrics: dict = Field(default_factory=dict)


def _use_gpu_politely() -> None:
    """On a GPU, allocate memory as needed instead of all of it at start (nothing changes on CPU)."""
    import tensorflow as tf

    for gpu in tf.config.list_physical_devices("GPU"):
        tf.config.experimental.set_memory_growth(gpu, True)


# BentoML refuses max_batch_size=1 on a batchable API, so batching off (AUDIOCLF_MAX_BATCH_SIZE=1) is a plain
# API: one request, one model call, in arrival order (threads=1). Same signature, so callers do not change.
if settings.max_batch_size > 1:
    cap_batch_wait(settings.max_batch_wait_ms / 1000)
    _predict_api = bentoml.api(
        batchable=True, max_batch_size=settings.max_batch_size, max_latency_ms=settings.max_latency_ms
    )
else:
    _predict_api = bentoml.api


@bentoml.service(
    name="audio_model",
    workers=settings.model_workers,
    threads=1,  # one Keras call at a time per worker: the batcher, not threads, provides the parallelism
    traffic={"timeout": settings.request_timeout_s},
    logging={"access": {"enabled": False}},  # internal hop: the entry service logs each request once
    # The entry service reaches this service through a client that by default replaces its HTTP session every
    # 100 requests and every 300 s, closing the old session under the calls still in flight on it: 2-5 % of
    # requests fail under concurrency (_bentoml_impl/client/proxy2.py, SessionManager._should_refresh). The
    # refresh exists for remote deployments whose addresses change; here the peer is a local socket that lives as
    # long as the server, so refreshing never helps. These are the limits RemoteProxy reads for this service.
    runner_connection={"max_requests": sys.maxsize, "max_age": float("inf")},
)
class ModelService:
    def __init__(self) -> None:
        _use_gpu_politely()
        self.tag, folder = model_check.locate(settings.model_tag)  # checked whole before any worker
        self.model, self.meta = artifact.load(folder)
        self._warm_up()
        metrics.get().model_info(self.tag, self.meta.features.kind)
        log.info("model %s loaded: %d labels, input %s", self.tag, len(self.meta.labels), self.model.input_shape)

    @bentoml.on_startup
    async def _outlive_entry_workers(self) -> None:
        """At SIGTERM, serve until the entry workers have finished their requests (service.lifecycle)."""
        lifecycle.outlive_entry_workers(settings.drain_s + settings.request_timeout_s + 5)

    def _warm_up(self) -> None:
        """Trace the Keras predict function for a few batch sizes before the first request pays for it."""
        for n in (1, 2, 3, 8):
            self._predict(np.zeros((n, *self.meta.features.input_shape), dtype=np.float32))

    def _predict(self, x: np.ndarray) -> np.ndarray:
        chunks = [
            np.asarray(self.model.predict_on_batch(x[lo : lo + PREDICT_CHUNK]))
            for lo in range(0, len(x), PREDICT_CHUNK)
        ]
        return np.concatenate(chunks).astype(np.float32, copy=False)

    # The declared media type is what BentoML would infer anyway; declaring it spares it from rebuilding the output's
    # JSON schema (a pydantic TypeAdapter) on every response, ~15 % of this worker's CPU under load (py-spy).
    @_predict_api
    def predict(self, clips: list[ClipWindows]) -> Annotated[list[np.ndarray], ContentType("application/json")]:
        """Softmax scores (n_windows, n_labels) for each clip's windows, all clips in one model call."""
        started = time.time()
        m = metrics.get()
        for clip in clips:
            m.batch_wait.observe(max(0.0, started - clip.sent_at))
        counts = [len(c.windows) for c in clips]
        m.batch_windows.observe(sum(counts))
        probs = self._predict(np.concatenate([c.windows for c in clips]))
        return np.split(probs, np.cumsum(counts)[:-1])

    @bentoml.api
    def info(self) -> ModelInfo:
        """The loaded model's exact tag, labels and feature settings (from its metadata.json)."""
        name, _, version = self.tag.partition(":")
        return ModelInfo(
            tag=self.tag,
            name=name,
            version=version,
            labels=list(self.meta.labels),
            features=self.meta.features.model_dump(),
            metrics=self.meta.metrics,
        )
