"""Phases 2-4: overload and recovery, a worker killed under load, SIGTERM under load; all driven by
devtools.loadgen's closed loop, every request sent accounted for."""

import concurrent.futures as cf
import os
import signal
import threading
import time

import requests

from devtools import loadgen, procs
from scripts.reliability import DATA, DIGIT

REFUSED = "503 with Retry-After"  # refused before it was accepted: not lost


# The count bound: well above what the phases send in their time on 2 cores (a refusal takes ~50 ms of a client's
# time with this generator), so that the time bound is the one that ends them.
MAX_REQUESTS = 20_000


def load(server, clients: int, seconds: float, data: bytes, routable=None, max_requests: int = MAX_REQUESTS) -> dict:
    """`clients` clients posting `data` back to back for `seconds` (and at most max_requests in all): answers
    counted by status ('200', '503 with Retry-After', 'error: ClientOSError'), the time of the last failure
    and the latencies of refusals. With `routable` (an Event), a client sends only while it is set."""
    bodies = [loadgen.multipart("a.flac", data)]
    gate = routable.is_set if routable is not None else None

    async def run() -> loadgen.Result:
        async with loadgen.Http(server.http, bodies, clients, timeout_s=60) as client:
            return await loadgen.closed_loop(
                client, clients, 0, seconds, max_requests=max_requests, gate=gate, count_late=True
            )

    result = loadgen.timed(run)[0]
    stats: dict = {"sent": result.sent}
    if result.ok:
        stats["200"] = result.ok
    last_failure = 0.0
    for kind, n in result.kinds.items():
        key = kind.removeprefix("HTTP ") if kind.startswith("HTTP ") else f"error: {kind}"
        stats[key] = stats.get(key, 0) + n
        if not key.startswith(("200", REFUSED)):
            last_failure = max(last_failure, result.last_at[kind])
    if last_failure:
        stats["_last_failure"] = last_failure
    if result.refusal_ms:
        ms = sorted(result.refusal_ms)
        stats["refusal p50/max ms"] = f"{ms[len(ms) // 2]:.0f}/{ms[-1]:.0f}"
    return stats


def until(predicate, timeout_s: float) -> float | None:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if predicate():
            return time.monotonic() - started
        time.sleep(0.1)
    return None


def fmt(stats: dict) -> str:
    return ", ".join(f"{k}: {v}" for k, v in sorted(stats.items()) if not k.startswith("_"))


def lost(stats: dict) -> str:
    """Requests that got no answer or a 5xx other than a refusal with Retry-After (those were never accepted)."""
    n = sum(v for k, v in stats.items() if k.startswith(("error", "5")) and not k.startswith(REFUSED))
    return f"{n} of {stats.get('sent', 0)}"


def overload(server) -> list[tuple]:
    clip = sorted((DATA / "instruments" / "Cello").glob("*.flac"))[0].read_bytes()
    past = load(server, clients=48, seconds=20, data=clip)
    after = load(server, clients=2, seconds=10, data=clip)
    return [
        ("48 clients, long FLAC clips, 20 s (limit 4 per worker x 2 workers)", fmt(past)),
        ("then 2 clients, 10 s (recovery)", fmt(after)),
    ]


def kill_worker(proc, server) -> tuple:
    before = procs.workers(proc.pid)
    victim = before[0]
    with cf.ThreadPoolExecutor(1) as pool:
        running = pool.submit(load, server, 4, 25, DIGIT.read_bytes())
        time.sleep(3)
        os.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()
        result = running.result()
    last = result.get("_last_failure")
    recovered = "no failure" if last is None else f"last failure {last - killed_at:.1f} s after the kill"
    until(lambda: len(procs.workers(proc.pid)) >= len(before), 60)
    return (
        f"a worker (pid {victim}) SIGKILLed under 4 clients",
        fmt(result),
        lost(result),
        f"{recovered}; circus restarted it: workers {procs.workers(proc.pid)}",
    )


def sigterm(proc, server) -> tuple:
    routable = threading.Event()
    routable.set()
    timeline: list[str] = []
    t0 = [0.0]

    def prober() -> None:  # the load balancer: routes only to a ready server
        while proc.poll() is None:
            try:
                ok = requests.get(f"{server.http}/readyz", timeout=1).status_code == 200
            except requests.RequestException:
                ok = False
            if not ok and routable.is_set():
                routable.clear()
                timeline.append(f"readiness off {time.monotonic() - t0[0]:.2f} s after SIGTERM")
            time.sleep(0.1)

    with cf.ThreadPoolExecutor(2) as pool:
        running = pool.submit(load, server, 4, 15, DIGIT.read_bytes(), routable)
        time.sleep(4)
        threading.Thread(target=prober, daemon=True).start()
        t0[0] = time.monotonic()
        os.kill(proc.pid, signal.SIGTERM)
        result = running.result()
    code = proc.wait(timeout=120)
    timeline.append(f"exit status {code} {time.monotonic() - t0[0]:.1f} s after SIGTERM")
    return ("SIGTERM to `bentoml serve` under 4 clients", fmt(result), lost(result), "; ".join(timeline))
