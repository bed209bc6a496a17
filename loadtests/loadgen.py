"""The benchmark's load generator: lean asyncio clients (aiohttp, grpc.aio) in one process, so that it takes as
little as possible of the cores it shares with the server. Closed loop (N clients back to back) finds
throughput; open loop (requests started at a constant rate whatever the answers) gives honest latency, because a
slow answer does not delay the next request. Every loop is bounded in time, and the open loop in count too.
"""

import asyncio
import time
from dataclasses import dataclass, field

import aiohttp
import grpc
import numpy as np
from tritonclient.grpc import service_pb2

from loadtests import oip

SHED = "load shed"


@dataclass
class Result:
    ok: int = 0
    shed: int = 0  # deliberate 503 / UNAVAILABLE from load shedding
    failed: int = 0
    elapsed_s: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)  # successful requests in the measured window
    errors: dict[str, int] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return self.ok / self.elapsed_s if self.elapsed_s else 0.0

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("nan")

    def error(self, key: str) -> None:
        if key.startswith(SHED):
            self.shed += 1
        else:
            self.failed += 1
        self.errors[key[:160]] = self.errors.get(key[:160], 0) + 1


class Http:
    def __init__(self, base: str, bodies: list[tuple[bytes, str]], connections: int):
        self.url, self.bodies = f"{base}/classify", bodies
        self.connections = connections

    async def __aenter__(self):
        connector = aiohttp.TCPConnector(limit=self.connections, force_close=False)
        self.session = aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120))
        return self

    async def __aexit__(self, *exc):
        await self.session.close()

    async def call(self, i: int) -> str | None:
        """None when answered with predictions, else the error's description."""
        body, content_type = self.bodies[i % len(self.bodies)]
        try:
            async with self.session.post(self.url, data=body, headers={"Content-Type": content_type}) as response:
                text = await response.text()
                if response.status == 200 and '"predictions"' in text:
                    return None
                shed = response.status == 503 and '"overloaded"' in text
                return f"{SHED + ': ' if shed else ''}HTTP {response.status}: {text[:100]}"
        except (TimeoutError, aiohttp.ClientError) as exc:
            return repr(exc)


class Grpc:
    """ModelInfer with pre-serialized requests; `channels` connections used round-robin (one per client)."""

    def __init__(self, target: str, payloads: list[bytes], channels: int):
        self.target, self.payloads, self.n = target, payloads, channels

    async def __aenter__(self):
        self.channels = [grpc.aio.insecure_channel(self.target, options=oip.channel_options()) for _ in range(self.n)]
        self.methods = [
            ch.unary_unary(oip.METHOD, request_serializer=None, response_deserializer=_parse) for ch in self.channels
        ]
        return self

    async def __aexit__(self, *exc):
        await asyncio.gather(*(ch.close() for ch in self.channels))

    async def call(self, i: int) -> str | None:
        try:
            response = await self.methods[i % self.n](self.payloads[i % len(self.payloads)], timeout=120)
            oip.top_label(response)
            return None
        except grpc.aio.AioRpcError as err:
            detail = err.details() or ""
            shed = err.code() == grpc.StatusCode.UNAVAILABLE and detail.startswith("overloaded")
            return f"{SHED + ': ' if shed else ''}gRPC {err.code().name}: {detail[:100]}"
        except ValueError as exc:
            return repr(exc)


def _parse(raw: bytes) -> service_pb2.ModelInferResponse:
    return service_pb2.ModelInferResponse.FromString(raw)


async def closed_loop(client, clients: int, warmup_s: float, measure_s: float) -> Result:
    """`clients` concurrent clients, each sending its next request when the last one is answered. Requests that
    start after warm-up and finish within the measured window count."""
    result = Result()
    loop = asyncio.get_running_loop()
    start = loop.time() + warmup_s
    stop = start + measure_s

    async def one(c: int) -> None:
        i = c
        while loop.time() < stop:
            began = loop.time()
            error = await client.call(i)
            ended = loop.time()
            i += clients
            if began < start or ended > stop:
                continue
            if error is None:
                result.ok += 1
                result.latencies_ms.append((ended - began) * 1000)
            else:
                result.error(error)

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
            error = await client.call(i)
        if due - t0 < warmup_s:
            return
        if error is None:
            result.ok += 1
            result.latencies_ms.append((loop.time() - due) * 1000)
        else:
            result.error(error)

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
