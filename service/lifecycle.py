"""Graceful shutdown: on SIGTERM a worker turns unready first, keeps serving while load balancers notice, then
finishes what it accepted.

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
from collections.abc import Awaitable, Callable

log = logging.getLogger("audioclf.lifecycle")


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
