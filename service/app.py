"""The BentoML service: every worker is a whole server, from the request's bytes to its answer, in one process.

`bentoml serve service.app:AudioClassifier` starts `AUDIOCLF_WORKERS` processes (one per core by default). Each
one holds the model (service.model) and its adaptive batcher (service.scorer), serves HTTP `/classify` through a
lean route mounted on BentoML (service.http_api), the Open Inference Protocol over REST on the same app
(service.oip_rest) and over gRPC (service.grpc_oip, started in the startup hook on the same event loop;
SO_REUSEPORT lets every worker bind the port). All requests of a worker share its batcher, so concurrent clips are
featurised and scored together.

Readiness (/readyz, gRPC health, OIP ServerReady over gRPC and REST) turns true only once the model is loaded and
warm-up clips went through the whole pipeline: librosa compiles its kernels on the first call, which takes 15-35 s.
It turns false again at SIGTERM, before the worker stops taking requests (service.lifecycle). /livez fails when
the worker's scoring thread has died or is stuck.
"""

import asyncio
import contextlib
import gc
import io
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor

import bentoml
import numpy as np
import soundfile as sf

from audiocore.clip import Limits
from service import http_api, metrics, model_check, oip, oip_rest
from service.admission import Admission
from service.errors import STATUS
from service.grpc_oip import GrpcServer
from service.lifecycle import Drain, Siblings
from service.model import ServedModel
from service.pipeline import Classifier, Readiness
from service.scorer import Scorer
from service.settings import get_settings

log = logging.getLogger("audioclf.app")
settings = get_settings()

# Every worker accepts HTTP connections from the one listening socket `bentoml serve` shares among them. libuv
# (uvloop, under uvicorn) accepts every pending connection at each wake-up, so the first worker to wake takes a
# whole burst: 50 of 64 client connections landed on one of two workers, which then capped throughput and made the
# p99. With this documented libuv switch a worker accepts one connection per turn and yields, and connections
# spread over the workers. Read by libuv when the worker starts listening, after this module is imported.
os.environ.setdefault("UV_TCP_SINGLE_ACCEPT", "1")

# Warm-up: a few clips at an odd rate, so that resampling and librosa's kernels are compiled before readiness.
WARMUP_CALLS = 3
WARMUP_RATE = 22050
# How long a request that reaches a worker still warming up waits for it before a 503 (the first warm-up of a
# fresh machine compiles librosa's kernels for ~35 s; later starts take a few seconds).
WARMUP_WAIT_S = 30.0
# A batch in progress for longer than this means the scoring thread is stuck: /livez fails.
STALL_S = max(60.0, settings.request_timeout_s)
# How often each worker reports its CPU time and memory (audioclf_process_*).
PROCESS_SAMPLE_S = 5.0

# This worker's state, shared by the HTTP route, the gRPC server and the service instance.
ADMISSION = Admission(settings.max_concurrency)  # classification requests in progress, HTTP and gRPC together
READINESS = Readiness(WARMUP_WAIT_S)
UPLOAD_TIMEOUT_S = 0.8 * settings.request_timeout_s  # a slow upload gets 408 well before the request timeout
HTTP = http_api.create_app(
    READINESS,
    ADMISSION,
    max_file_bytes=settings.max_upload_bytes,
    upload_timeout_s=UPLOAD_TIMEOUT_S,
    request_timeout_s=settings.request_timeout_s,
)
oip_rest.add_routes(
    HTTP,
    READINESS,
    ADMISSION,
    settings.model_name,
    max_body_bytes=oip.request_limit(settings),  # gRPC's message limit: all of a request's files together
    upload_timeout_s=UPLOAD_TIMEOUT_S,
    request_timeout_s=settings.request_timeout_s,
)


def _warmup_clip() -> bytes:
    t = np.arange(int(1.3 * WARMUP_RATE)) / WARMUP_RATE
    buf = io.BytesIO()
    sf.write(buf, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), WARMUP_RATE, format="WAV")
    return buf.getvalue()


@bentoml.asgi_app(HTTP, path="/")
@bentoml.service(
    name="audio_classifier",
    workers=settings.workers,
    traffic={"timeout": settings.request_timeout_s},
    http={"host": settings.host, "port": settings.http_port},
    # BentoML's OpenTelemetry middleware creates a span per request even with no exporter configured (py-spy: a
    # fifth of a worker's request-handling CPU under load); classification routes are traced on request only.
    tracing={} if settings.tracing else {"excluded_urls": list(http_api.ROUTES)},
)
class AudioClassifier:
    def __init__(self) -> None:
        self.readiness = READINESS
        self.metrics = metrics.get()
        for protocol in metrics.PROTOCOLS:  # every protocol's and reason's series exists from the start, at 0
            self.metrics.in_flight.labels(protocol=protocol)
            for code in STATUS:
                self.metrics.errors.labels(reason=code, protocol=protocol)
        self._executor = ThreadPoolExecutor(settings.preprocess_threads, thread_name_prefix="preprocess")
        self._grpc = GrpcServer(settings, self.readiness, ADMISSION, self.__is_ready__)
        self._drain = Drain(settings.drain_s, on_unready=self._unready, on_stop=self._stop_grpc)
        self._grpc_stopped: asyncio.Task | None = None
        self._tasks: list[asyncio.Task] = []
        self._scorer: Scorer | None = None
        self._failed = False
        self._siblings = Siblings(settings.workers, settings.worker_loss_grace_s)

    @bentoml.on_deployment
    def _check_model() -> None:
        """Runs once in `bentoml serve`'s own process before any worker: a missing or corrupt model stops it there,
        with the reason, instead of workers that circus restarts forever."""
        model_check.check_backend(settings.keras_backend)
        model_check.check(settings.model_tag)

    @bentoml.on_startup
    async def _start(self) -> None:
        await self._grpc.start()
        self._drain.install()
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._warm_up()), loop.create_task(self._sample_process())]

    async def _unready(self) -> None:
        self.readiness.draining = True
        await self._grpc.set_ready(False)

    def _stop_grpc(self) -> None:
        """Stop taking gRPC calls; those in flight get up to the request timeout to finish."""
        if self._grpc_stopped is None:
            self._grpc_stopped = asyncio.get_running_loop().create_task(self._grpc.stop(settings.request_timeout_s))

    @bentoml.on_shutdown
    async def _stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        self._stop_grpc()
        await self._grpc_stopped
        if self._scorer is not None:  # HTTP and gRPC requests have finished: score what is queued, then stop
            await self._scorer.close(settings.request_timeout_s)
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def _warm_up(self) -> None:
        """Load the model, start the batcher, run clips through the whole pipeline, then declare readiness. A
        failure here is a real one (the model was checked before the workers started): it is logged with its
        traceback, and the worker stays unready with /livez failing, so Kubernetes restarts the pod."""
        started = time.monotonic()
        try:
            model = await asyncio.to_thread(
                ServedModel, settings.model_tag, settings.model_threads, settings.keras_backend
            )
            self._scorer = Scorer(
                model.predict,
                model.info.features,
                max_batch=settings.max_batch_size,
                max_wait_s=settings.max_batch_wait_ms / 1000,
                max_queue_s=settings.max_latency_ms / 1000,
            )
            limits = Limits(max_bytes=settings.max_upload_bytes, max_seconds=settings.max_audio_seconds)
            clf = Classifier(self._scorer, model.info, limits, settings.default_top_k, self._executor)
            clip = _warmup_clip()
            for _ in range(WARMUP_CALLS):
                await clf.classify(clip, k=1, record=False)
        except asyncio.CancelledError:
            raise
        except Exception:
            self._failed = True
            log.exception("warm-up failed: this worker stays unready and /livez fails")
            return
        self.metrics.known_labels(clf.labels)
        self.metrics.model_info(clf.info.tag, clf.features.kind)
        # TensorFlow, Keras, librosa and BentoML leave millions of long-lived objects, and every full garbage
        # collection walked them all: pauses of ~100s of ms that stalled every request of the worker (the p99).
        # Frozen, they are never scanned again; what requests allocate is collected as before.
        gc.collect()
        gc.freeze()
        self.readiness.set(clf)
        if self.readiness.serving:
            await self._grpc.set_ready(True)
        log.info("ready: model %s, warmed up in %.1f s", clf.info.tag, time.monotonic() - started)

    async def _sample_process(self) -> None:
        while True:
            with contextlib.suppress(Exception):  # a metrics hiccup must never stop the worker
                self.metrics.sample_process()
            await asyncio.sleep(PROCESS_SAMPLE_S)

    def __is_ready__(self) -> bool:
        return self.readiness.serving

    def __is_alive__(self) -> bool:
        """False once warm-up failed or the scoring thread died or stalled: inside a container BentoML does not
        restart a broken worker (BENTOML_CONTAINERIZED), so only a failing liveness probe gets the pod restarted."""
        if self._failed or not self._siblings.complete():
            return False
        return self._scorer is None or self._scorer.alive(STALL_S)
