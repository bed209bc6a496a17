"""The in-process adaptive batcher: the clips of every request this worker accepts (HTTP and gRPC alike) wait in
one queue, and one thread turns whatever has gathered into one features call and one model call.

While the model is busy, arriving clips queue; when it is free, the thread takes everything queued (up to
`max_batch` clips) at once, so batches grow with load and a lone request waits for nobody but the short
`max_wait_s` for company. Features are computed here, batched across requests: `audiocore.features.featurize`
over the windows of a whole batch costs ~0.25 ms per clip against ~0.9 ms in one call per clip (librosa's
per-call overhead), and gives the same values, since every window's features are computed on their own.

A clip that waited longer than `max_queue_s` is refused (503 overloaded) instead of scored: under overload
answering late helps nobody. The thread is the only user of the model, so Keras is never called concurrently.
"""

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from audiocore.config import FeatureConfig
from audiocore.features import featurize
from service import metrics
from service.errors import RequestError

log = logging.getLogger("audioclf.scorer")

# Windows in one features + model call: a batch of long clips stops growing here (at least one clip is taken).
MAX_BATCH_WINDOWS = 1024
_STOP = object()


@dataclass
class _Job:
    windows: np.ndarray  # (n, window_samples) waveforms of one clip
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop
    queued_at: float


class Scorer:
    def __init__(
        self,
        predict: Callable[[np.ndarray], np.ndarray],
        features: FeatureConfig,
        max_batch: int,
        max_wait_s: float,
        max_queue_s: float,
    ):
        self._predict = predict
        self._features = features
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.max_queue_s = max_queue_s
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._busy_since: float | None = None  # when the batch in progress started (liveness)
        self._closed = False
        self._metrics = metrics.get()
        self._thread = threading.Thread(target=self._run, name="scorer", daemon=True)
        self._thread.start()

    async def scores(self, windows: np.ndarray) -> np.ndarray:
        """Window probabilities (n_windows, n_labels) of one clip's waveform windows (n_windows, window_samples)."""
        if self._closed:
            raise RequestError("not_ready", "this worker is shutting down; retry")
        loop = asyncio.get_running_loop()
        job = _Job(windows, loop.create_future(), loop, time.monotonic())
        self._queue.put(job)
        return await job.future

    def alive(self, stall_s: float) -> bool:
        """The thread runs and no batch has been in progress for longer than `stall_s`."""
        busy = self._busy_since
        return self._thread.is_alive() and (busy is None or time.monotonic() - busy < stall_s)

    async def close(self, timeout_s: float) -> None:
        """Score what is queued, then stop the thread (new clips are refused from now on)."""
        self._closed = True
        self._queue.put(_STOP)
        await asyncio.to_thread(self._thread.join, timeout_s)

    # --- the scoring thread ---
    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch, stop = self._gather(first)
            if batch:
                self._score(batch)
            if stop:
                return

    def _gather(self, first: _Job) -> tuple[list[_Job], bool]:
        """`first` and whatever else is queued (or arrives within max_wait_s of `first`), up to the batch limits;
        drops cancelled clips and refuses those that waited too long."""
        jobs, windows = [], 0
        deadline = first.queued_at + self.max_wait_s
        item = first
        while True:
            if item is _STOP:
                return jobs, True
            if self._admit(item):
                jobs.append(item)
                windows += len(item.windows)
            if len(jobs) >= self.max_batch or windows >= MAX_BATCH_WINDOWS:
                return jobs, False
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                wait = deadline - time.monotonic()
                if wait <= 0 or not jobs:
                    return jobs, False
                try:
                    item = self._queue.get(timeout=wait)
                except queue.Empty:
                    return jobs, False

    def _admit(self, job: _Job) -> bool:
        if job.future.cancelled():  # the client went away while it queued
            return False
        waited = time.monotonic() - job.queued_at
        if waited > self.max_queue_s:
            err = RequestError("overloaded", f"the clip waited {waited:.1f} s for the model; retry with backoff")
            job.loop.call_soon_threadsafe(_fail, job.future, err)
            return False
        return True

    def _score(self, jobs: list[_Job]) -> None:
        started = self._busy_since = time.monotonic()
        m = self._metrics
        try:
            for job in jobs:
                m.batch_wait.observe(started - job.queued_at)
            counts = [len(job.windows) for job in jobs]
            m.batch_size.observe(len(jobs))
            m.batch_windows.observe(sum(counts))
            windows = jobs[0].windows if len(jobs) == 1 else np.concatenate([job.windows for job in jobs])
            probs = self._predict(featurize(windows, self._features))
            for job, part in zip(jobs, np.split(probs, np.cumsum(counts)[:-1]), strict=True):
                job.loop.call_soon_threadsafe(_succeed, job.future, part)
        except Exception:
            log.exception("scoring a batch of %d clips failed", len(jobs))
            for job in jobs:
                err = RequestError("internal", "scoring failed; see the server log")
                job.loop.call_soon_threadsafe(_fail, job.future, err)
        finally:
            m.model_seconds.observe(time.monotonic() - started)
            self._busy_since = None


def _succeed(future: asyncio.Future, value: np.ndarray) -> None:
    if not future.done():
        future.set_result(value)


def _fail(future: asyncio.Future, err: Exception) -> None:
    if not future.done():
        future.set_exception(err)
