"""A worker's life among its siblings. Graceful shutdown: on SIGTERM a worker turns unready first, keeps serving
while load balancers notice, then finishes what it accepted. Lost siblings: a worker notices when the server runs
with fewer workers than configured, and reports itself not alive.

Without this, circus (behind `bentoml serve`) sends SIGTERM to every worker at once, and the workers keep
answering /readyz 200 until their sockets close (docs/reliability.md).

uvicorn installs its SIGTERM handler (which starts its own graceful shutdown: stop accepting, wait for the requests
in flight, run the shutdown hooks) before the application's startup hooks run, so a startup hook can wrap it: ours
runs first and calls uvicorn's once the worker may stop.
"""

import asyncio
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable

import psutil

log = logging.getLogger("audioclf.lifecycle")

WORKER_MODULE = "_bentoml_impl.worker.service"  # what `bentoml serve` runs each worker as (python -m ...)


def _wrap_sigterm(on_term: Callable[[Callable[[], None]], Awaitable[None]]) -> None:
    """Run `on_term(stop)` on the event loop at the first SIGTERM; `stop()` hands over to uvicorn's handler."""
    loop = asyncio.get_running_loop()
    previous = signal.getsignal(signal.SIGTERM)
    started = False

    def stop() -> None:
        if callable(previous):
            previous(signal.SIGTERM, None)
        else:  # no server handler (not under uvicorn): the default action
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)

    def handler(signum, frame) -> None:
        nonlocal started
        if started:  # a second SIGTERM while draining changes nothing
            return
        started = True
        loop.call_soon_threadsafe(lambda: loop.create_task(on_term(stop)))

    signal.signal(signal.SIGTERM, handler)


class Drain:
    """A worker's shutdown: unready at once, serve on for `delay_s`, then stop accepting (`on_stop`: gRPC;
    uvicorn does HTTP) and finish the requests in flight."""

    def __init__(self, delay_s: float, on_unready: Callable[[], Awaitable[None]], on_stop: Callable[[], None]):
        self.delay_s = delay_s
        self.draining = False
        self._on_unready = on_unready
        self._on_stop = on_stop

    def install(self) -> None:
        _wrap_sigterm(self._run)

    async def _run(self, stop: Callable[[], None]) -> None:
        self.draining = True
        log.info("SIGTERM: unready now; serving on for %.1f s, then finishing the requests in flight", self.delay_s)
        try:
            await self._on_unready()
        finally:
            await asyncio.sleep(self.delay_s)
            self._on_stop()
            stop()


def is_worker(cmdline: list[str]) -> bool:
    """A process command line is one of `bentoml serve`'s workers."""
    return WORKER_MODULE in cmdline


class Siblings:
    """Whether the server still has all of its `expected` workers (this one included).

    Inside images built by `bentoml containerize` (BENTOML_CONTAINERIZED) circus does not restart a killed worker:
    the pod would serve on with fewer workers, ready, and nothing would restart it. A worker that sees fewer than
    `expected` workers beside it for longer than `grace_s` reports itself not alive (/livez 503), and the liveness
    probe restarts the pod. Outside containers circus restarts a killed worker within a second or two, well inside
    the grace. A process that is not one of `bentoml serve`'s workers (a test, a script) always counts as complete.
    """

    def __init__(self, expected: int, grace_s: float):
        self.expected = expected
        self.grace_s = grace_s
        self._short_since: float | None = None
        self._enabled = is_worker(psutil.Process().cmdline())

    def count(self) -> int:
        """Workers under this worker's parent (the arbiter), this one included."""
        found = 0
        for child in psutil.Process(os.getppid()).children():
            try:
                found += is_worker(child.cmdline())
            except psutil.Error:  # gone while we looked
                continue
        return found

    def complete(self) -> bool:
        if not self._enabled:
            return True
        try:
            n = self.count()
        except psutil.Error:
            return True  # the arbiter itself is gone: the worker is stopping anyway
        now = time.monotonic()
        if n >= self.expected:
            self._short_since = None
            return True
        if self._short_since is None:
            self._short_since = now
            log.warning(
                "%d of %d workers running: not alive in %.0f s unless it is replaced", n, self.expected, self.grace_s
            )
        return now - self._short_since < self.grace_s
