"""The HTTP load generator of every tool: lean asyncio clients (aiohttp) in one process, so that it takes as little
as possible of the cores it shares with the server. Closed loop (N clients back to back) finds throughput and
holds a server under load; open loop (requests started at a constant rate whatever the answers) gives honest
latency, because a slow answer does not delay the next request. Every loop is bounded in time, and may be bounded
in count. Any client with `async call(i) -> Failure | None` plugs in (loadtests.oip.Grpc does, for gRPC).
"""

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp
import numpy as np

BOUNDARY = "loadtest-boundary-7d1f0c"


@dataclass(frozen=True)
class Failure:
    """A request that got no prediction: `kind` is short and countable ('HTTP 503 with Retry-After', 'gRPC
    UNAVAILABLE', 'ClientOSError'), `detail` says more."""

    kind: str
    detail: str = ""
    refused: bool = False  # 429 / 503 (or UNAVAILABLE): the server declined it rather than failed it
    shed: bool = False  # refused by load shedding ('overloaded'): deliberate, counted apart from failures


@dataclass
class Result:
    ok: int = 0
    shed: int = 0  # deliberate 503 / UNAVAILABLE from load shedding
    failed: int = 0
    sent: int = 0  # requests started, warm-up included
    elapsed_s: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)  # successful requests in the measured window
    refusal_ms: list[float] = field(default_factory=list)  # latencies of refusals (Failure.refused)
    errors: dict[str, int] = field(default_factory=dict)  # "kind: detail" -> count
    kinds: dict[str, int] = field(default_factory=dict)  # kind -> count
    last_at: dict[str, float] = field(default_factory=dict)  # kind -> time.monotonic() of its last answer

    @property
    def rps(self) -> float:
        return self.ok / self.elapsed_s if self.elapsed_s else 0.0

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("nan")

    def success(self, latency_s: float) -> None:
        self.ok += 1
        self.latencies_ms.append(latency_s * 1000)

    def error(self, failure: Failure, latency_s: float) -> None:
        if failure.shed:
            self.shed += 1
        else:
            self.failed += 1
        if failure.refused:
            self.refusal_ms.append(latency_s * 1000)
        key = f"{failure.kind}: {failure.detail}"[:160]
        self.errors[key] = self.errors.get(key, 0) + 1
        self.kinds[failure.kind] = self.kinds.get(failure.kind, 0) + 1
        self.last_at[failure.kind] = time.monotonic()


def multipart(name: str, data: bytes, content_type: str = "application/octet-stream") -> tuple[bytes, str]:
    """A ready-made /classify form body and its content type, so the generator spends its CPU on requests, not on
    encoding."""
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="audio"; filename="{name}"\r\n'
        f"Content-Type: {content_type}\r\n\r\n"
    ).encode()
    return head + data + f"\r\n--{BOUNDARY}--\r\n".encode(), f"multipart/form-data; boundary={BOUNDARY}"


class Http:
    """POST /classify with ready-made bodies (`multipart`), round-robin, over at most `connections` connections."""

    def __init__(self, base: str, bodies: list[tuple[bytes, str]], connections: int, timeout_s: float = 120):
        self.url, self.bodies = f"{base}/classify", bodies
        self.connections, self.timeout_s = connections, timeout_s

    async def __aenter__(self):
        connector = aiohttp.TCPConnector(limit=self.connections, force_close=False)
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        self.session = aiohttp.ClientSession(connector=connector, timeout=timeout)
        return self

    async def __aexit__(self, *exc):
        await self.session.close()

    async def call(self, i: int) -> Failure | None:
        """None when answered with predictions, else what went wrong."""
        body, content_type = self.bodies[i % len(self.bodies)]
        try:
            async with self.session.post(self.url, data=body, headers={"Content-Type": content_type}) as response:
                text = await response.text()
                if response.status == 200 and '"predictions"' in text:
                    return None
                refused = response.status in (429, 503)
                kind = f"HTTP {response.status}"
                if refused:
                    kind += " with Retry-After" if response.headers.get("Retry-After") else " WITHOUT Retry-After"
                shed = response.status == 503 and '"overloaded"' in text
                return Failure(kind, text[:100], refused=refused, shed=shed)
        except (TimeoutError, aiohttp.ClientError) as exc:
            await asyncio.sleep(0.05)  # a refused connection answers at once: do not spin on it
            return Failure(type(exc).__name__, str(exc)[:100])


async def closed_loop(
    client,
    clients: int,
    warmup_s: float,
    measure_s: float,
    *,
    max_requests: int | None = None,
    gate: Callable[[], bool] | None = None,
    count_late: bool = False,
) -> Result:
    """`clients` concurrent clients, each sending its next request when the last one is answered, for warm-up +
    measure seconds and at most `max_requests` in all. Requests that start after warm-up and finish within the
    measured window count (`count_late`: also those answered after it, so that every request sent is accounted
    for). With `gate`, a client sends only while gate() is true (a load balancer's view of the server)."""
    result = Result()
    loop = asyncio.get_running_loop()
    start = loop.time() + warmup_s
    stop = start + measure_s

    async def one(c: int) -> None:
        i = c
        while loop.time() < stop:
            if max_requests is not None and result.sent >= max_requests:
                return
            if gate is not None and not gate():
                await asyncio.sleep(0.05)
                continue
            result.sent += 1
            began = loop.time()
            failure = await client.call(i)
            ended = loop.time()
            i += clients
            if began < start or (ended > stop and not count_late):
                continue
            if failure is None:
                result.success(ended - began)
            else:
                result.error(failure, ended - began)

    await asyncio.gather(*(one(c) for c in range(clients)))
    result.elapsed_s = measure_s
    return result


async def open_loop(client, rate: float, warmup_s: float, measure_s: float, max_in_flight: int = 512) -> Result:
    """Requests started at `rate` per second for warm-up + measure seconds, whatever the answers; latency is from
    the scheduled start, so queueing in the generator is charged too. At most `max_in_flight` outstanding."""
    result = Result()
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    total = int(rate * (warmup_s + measure_s))
    slots = asyncio.Semaphore(max_in_flight)
    tasks = []

    async def one(i: int, due: float) -> None:
        async with slots:
            result.sent += 1
            failure = await client.call(i)
        if due - t0 < warmup_s:
            return
        if failure is None:
            result.success(loop.time() - due)
        else:
            result.error(failure, loop.time() - due)

    for i in range(total):
        due = t0 + i / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, due)))
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=180)
    result.elapsed_s = measure_s
    return result


def timed(coro_factory) -> tuple[Result, float, float]:
    """Run a load coroutine; returns (result, wall seconds, this process's CPU seconds)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = asyncio.run(coro_factory())
    return result, time.perf_counter() - wall, time.process_time() - cpu
