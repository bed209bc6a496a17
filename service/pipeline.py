"""One clip's way through the service, the same for HTTP and gRPC: bytes -> audio -> windows -> (batched)
features -> model -> a typed answer (service.contract.ClipResult), which each protocol renders.

Decoding, windowing and features use audiocore, the code training evaluates with, and the model's own
FeatureConfig, so a file gets the features it would get in training's evaluation. Decoding runs in a thread pool
so that the event loop keeps accepting requests meanwhile; features and the model run in the worker's scorer
(service.scorer), batched across requests.
"""

import asyncio
import logging
import time
from concurrent.futures import Executor

import numpy as np

from audiocore.aggregate import Aggregator, top_k
from audiocore.clip import Limits, Prepared, prepare
from audiocore.errors import AudioError
from service import metrics
from service.contract import ClipResult, Ranked, WindowResult
from service.errors import RequestError
from service.model import ModelInfo
from service.scorer import Scorer

log = logging.getLogger("audioclf.pipeline")


def clip_result(
    prepared: Prepared,
    window_outputs: np.ndarray,
    aggregator: Aggregator,
    labels: list[str],
    k: int,
    segments: bool,
    tag: str,
) -> ClipResult:
    """One clip's typed answer: clip-level top-k (the model's aggregation of its windows, as training evaluates)
    and optionally every window's."""
    audio = prepared.audio
    windows = None
    if segments:
        window_probs = aggregator.windows(window_outputs)
        # A short clip's one window is centred with padding around it: report the part that holds audio.
        windows = tuple(
            WindowResult(max(0.0, float(start)), min(audio.duration_s, float(end)), _ranked(probs, labels, k))
            for start, end, probs in zip(prepared.starts_s, prepared.ends_s, window_probs, strict=True)
        )
    return ClipResult(
        model=tag,
        predictions=_ranked(aggregator.clip(window_outputs), labels, k),
        duration_s=audio.duration_s,
        sample_rate=audio.original_sample_rate,
        channels=audio.channels,
        segments=windows,
    )


def _ranked(scores: np.ndarray, labels: list[str], k: int) -> tuple[Ranked, ...]:
    return tuple(Ranked(label, score) for label, score in top_k(scores, labels, k))


class Classifier:
    """Runs clips through the pipeline: decoded in `executor`, scored by this worker's `scorer`."""

    def __init__(self, scorer: Scorer, info: ModelInfo, limits: Limits, default_top_k: int, executor: Executor):
        self.scorer = scorer
        self.info = info
        self.features = info.features
        self.labels = list(info.labels)
        self.limits = limits
        self.default_top_k = default_top_k
        self.executor = executor
        self.metrics = metrics.get()

    def top_k(self, requested: int | None) -> int:
        """The number of predictions to return: the default when not asked, never more than there are labels."""
        if requested is None:
            requested = self.default_top_k
        if requested < 1:
            raise RequestError("invalid_argument", f"top_k must be at least 1, got {requested}")
        return min(requested, len(self.labels))

    async def prepare(self, data: bytes, where: str | None = None, record: bool = True) -> Prepared:
        started = time.perf_counter()
        try:
            prepared = await asyncio.get_running_loop().run_in_executor(
                self.executor, prepare, data, self.features, self.limits
            )
        except AudioError as exc:
            raise RequestError.from_audio(exc, where) from None
        if record:
            self.metrics.preprocess.observe(time.perf_counter() - started)
            self.metrics.audio_duration.observe(prepared.audio.duration_s)
        return prepared

    async def scores(self, clips: list[Prepared]) -> list[np.ndarray]:
        """Each clip's window outputs (probabilities or embeddings), through the worker's batcher (a request's clips
        may share a batch with each other and with other requests')."""
        return list(await asyncio.gather(*(self.scorer.scores(clip.windows) for clip in clips)))

    async def classify(self, data: bytes, *, k: int, segments: bool = False, record: bool = True) -> ClipResult:
        """One file's answer (HTTP)."""
        (clip,) = await self.classify_many([data], k=k, segments=segments, record=record, name=None)
        return clip

    async def classify_many(
        self, files: list[bytes], *, k: int, segments: bool = False, record: bool = True, name: str | None = "audio"
    ) -> list[ClipResult]:
        """Answers for several files (a gRPC request): prepared concurrently, scored through the batcher.
        If any file is unusable the whole request fails with the first such file's reason, naming it."""
        where = [f"{name}[{i}]" if name else None for i in range(len(files))]
        prepared = await asyncio.gather(
            *(self.prepare(data, w, record) for data, w in zip(files, where, strict=True)), return_exceptions=True
        )
        for result in prepared:
            if isinstance(result, BaseException):
                raise result
        results = [
            clip_result(clip, outputs, self.info.aggregator, self.labels, k, segments, self.info.tag)
            for clip, outputs in zip(prepared, await self.scores(prepared), strict=True)
        ]
        if record:
            for clip in results:
                self.metrics.predictions.labels(label=clip.label).inc()
        return results


class Readiness:
    """An entry worker's classifier, once warmed up. A request that reaches a worker still warming up (workers
    share the port, and the other one may already be ready) waits for it a while rather than failing."""

    def __init__(self, wait_s: float):
        self.classifier: Classifier | None = None
        self.wait_s = wait_s
        self.draining = False  # set at SIGTERM (service.lifecycle): unready from then on
        self._event = asyncio.Event()

    @property
    def ready(self) -> bool:
        return self.classifier is not None

    @property
    def serving(self) -> bool:
        """Warmed up and not draining: what every readiness answer reports (/readyz, gRPC health and ServerReady,
        OIP REST's /v2/health/ready)."""
        return self.ready and not self.draining

    def set(self, classifier: Classifier) -> None:
        self.classifier = classifier
        self._event.set()

    async def wait(self) -> Classifier:
        if self.classifier is None:
            try:
                await asyncio.wait_for(self._event.wait(), self.wait_s)
            except TimeoutError:
                raise RequestError("not_ready", "the model is still loading or warming up; retry shortly") from None
        return self.classifier
