"""The entry service: HTTP API, the gRPC server and the CPU half of every request (validate, decode, features).

`bentoml serve service.app:AudioClassifier` runs it with the model service (service.model_service) behind
`bentoml.depends`, so HTTP and gRPC requests from every entry worker share the model service's one batcher.
Readiness (/readyz, gRPC health, OIP ServerReady) turns true only once the model answered and a warm-up clip went
through the whole pipeline: librosa compiles its kernels on the first call, which takes 15-35 s. It turns false
again at SIGTERM, before the worker stops taking requests (service.lifecycle).
"""

import asyncio
import io
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Annotated

import aiohttp
import bentoml
import numpy as np
import soundfile as sf
from pydantic import BaseModel, Field
from starlette.responses import JSONResponse

from service import metrics, model_check
from service.admission import Admission
from service.errors import STATUS, RequestError
from service.grpc_oip import GrpcServer
from service.http_guard import REASON_HEADER, HttpGuard
from service.lifecycle import Drain
from service.model_service import ModelInfo, ModelService
from service.pipeline import Classifier, Limits, Readiness
from service.settings import get_settings

log = logging.getLogger("audioclf.app")
settings = get_settings()

# The model service listens on 127.0.0.1 TCP, not on a Unix socket: at SIGTERM `bentoml serve` deletes the socket
# files' folder before it stops the workers, so an entry worker draining its requests could no longer connect to the
# model service (measured: the request in flight got 500). Read by `bentoml serve` after it imported this module.
os.environ.setdefault("BENTOML_NO_UDS", "1")

# Warm-up: enough model calls for BentoML's batcher to finish measuring its latency model (it makes ~11
# single-request calls before it batches), on a clip at an odd rate so resampling is compiled too.
WARMUP_CALLS = 12
WARMUP_RATE = 22050
# How long a request that reaches a worker still warming up waits for it before a 503 (the first warm-up of a
# fresh machine compiles librosa's kernels for ~35 s; later starts take a few seconds).
WARMUP_WAIT_S = 30.0
# How long /livez waits for the model service's /readyz before calling it dead.
LIVENESS_TIMEOUT_S = 2
# This worker's limit on classification requests in progress, shared by HTTP (HttpGuard) and gRPC.
ADMISSION = Admission(settings.max_concurrency)


class Prediction(BaseModel):
    label: str
    score: float


class Segment(BaseModel):
    start_s: float
    end_s: float
    predictions: list[Prediction]


class Classification(BaseModel):
    model: str = Field(description="The BentoML tag of the model that answered.")
    predictions: list[Prediction] = Field(description="Clip-level top-k, best first (window scores averaged).")
    duration_s: float = Field(description="Duration of the decoded audio.")
    sample_rate: int = Field(description="Sample rate of the uploaded file.")
    channels: int = Field(description="Channels of the uploaded file (mixed to mono before features).")
    segments: list[Segment] | None = Field(None, description="Per-window predictions, only with segments=true.")


def _warmup_clip() -> bytes:
    t = np.arange(int(1.3 * WARMUP_RATE)) / WARMUP_RATE
    buf = io.BytesIO()
    sf.write(buf, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), WARMUP_RATE, format="WAV")
    return buf.getvalue()


@bentoml.service(
    name="audio_classifier",
    workers=settings.http_workers,
    traffic={"timeout": settings.request_timeout_s},
    http={"host": settings.host, "port": settings.http_port},
)
class AudioClassifier:
    model = bentoml.depends(ModelService)

    def __init__(self) -> None:
        self.readiness = Readiness(WARMUP_WAIT_S)
        self.metrics = metrics.get()
        for code in STATUS:  # every reason's series exists from the start, at 0
            for protocol in ("http", "grpc"):
                self.metrics.errors.labels(reason=code, protocol=protocol)
        self._executor = ThreadPoolExecutor(settings.preprocess_threads, thread_name_prefix="preprocess")
        self._grpc = GrpcServer(settings, self.readiness, ADMISSION, self.__is_ready__)
        self._drain = Drain(settings.drain_s, on_unready=lambda: self._grpc.set_ready(False), on_stop=self._stop_grpc)
        self._grpc_stopped: asyncio.Task | None = None
        self._warmup: asyncio.Task | None = None

    @bentoml.on_deployment
    def _check_model() -> None:
        """Runs once in `bentoml serve`'s own process before any worker: a missing or corrupt model stops it there,
        with the reason, instead of a model worker that circus restarts forever."""
        model_check.check(settings.model_tag)

    @bentoml.on_startup
    async def _start(self) -> None:
        await self._grpc.start()
        self._drain.install()
        self._warmup = asyncio.get_running_loop().create_task(self._warm_up())

    def _stop_grpc(self) -> None:
        """Stop taking gRPC calls; those in flight get up to the request timeout to finish."""
        if self._grpc_stopped is None:
            self._grpc_stopped = asyncio.get_running_loop().create_task(self._grpc.stop(settings.request_timeout_s))

    @bentoml.on_shutdown
    async def _stop(self) -> None:
        if self._warmup is not None:
            self._warmup.cancel()
        self._stop_grpc()
        await self._grpc_stopped
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def _warm_up(self) -> None:
        """Wait for the model service, then run clips through the whole pipeline before declaring readiness."""
        started = reported = time.monotonic()
        while True:
            try:
                clf = await self._warmed_up_classifier()
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # not up yet (connection refused, 503 while it loads), or a real failure
                if time.monotonic() - reported > 30:
                    reported = time.monotonic()
                    log.warning("not ready after %.0f s, still trying: %r", reported - started, exc)
                await asyncio.sleep(1.0)
        self.metrics.known_labels(clf.labels)
        self.metrics.model_info(clf.info.tag, clf.features.kind)
        self.readiness.set(clf)
        if not self._drain.draining:
            await self._grpc.set_ready(True)
        log.info("ready: model %s, warmed up in %.1f s", clf.info.tag, time.monotonic() - started)

    async def _warmed_up_classifier(self) -> Classifier:
        info = ModelInfo.model_validate(await self.model.to_async.info())
        clf = Classifier(self.model, info, Limits.from_settings(settings), settings.default_top_k, self._executor)
        clip = _warmup_clip()
        for _ in range(WARMUP_CALLS):
            await clf.classify(clip, k=1, record=False)
        return clf

    def __is_ready__(self) -> bool:
        return self.readiness.ready and not self._drain.draining

    async def __is_alive__(self) -> bool:
        """False once the model service stops answering. Inside a container BentoML does not restart a dead worker
        (BENTOML_CONTAINERIZED), so only a failing liveness probe gets the pod restarted; outside one, circus restarts
        it within seconds, well inside the probe's failure threshold."""
        if not self.readiness.ready:
            return True  # still starting: the startup probe covers this phase
        try:
            return await self.model.is_ready(LIVENESS_TIMEOUT_S)
        except (aiohttp.ClientError, TimeoutError):  # refused, reset or silent: the client is aiohttp's
            return False

    @bentoml.api(route="/classify")
    async def classify(
        self,
        audio: Annotated[Path, Field(description="The clip: wav, flac, ogg or mp3 (detected by content).")],
        top_k: Annotated[int | None, Field(ge=1, le=1000, description="Predictions to return.")] = None,
        segments: Annotated[bool, Field(description="Also return every window's predictions.")] = False,
    ) -> Classification:
        """Classify one uploaded clip. Errors are JSON `{"error": code, "detail": message}` with a 4xx status."""
        try:
            clf = await self.readiness.wait()
            k = clf.top_k(top_k)
            # HttpGuard bounded the body; the exact per-file limit is the pipeline's, as for gRPC
            body = await clf.classify(audio.read_bytes(), k=k, segments=segments)
        except RequestError as err:  # counted by HttpGuard, which reads the reason header
            return JSONResponse(err.body(), status_code=err.status.http, headers={REASON_HEADER: err.code})
        return JSONResponse(body)


AudioClassifier.add_asgi_middleware(
    HttpGuard,
    max_file_bytes=settings.max_upload_bytes,
    paths=("/classify",),
    admission=ADMISSION,
    upload_timeout_s=0.8 * settings.request_timeout_s,  # before BentoML's own timeout turns it into a 504
)
