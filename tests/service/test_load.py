"""Load: 64 concurrent HTTP clients x 100 requests each, zero failures, and the batcher really batches.

64 clients is the concurrency that matters (the workers' batchers fill); 100 requests each (6,400, under a minute on
2 cores). Throughput and latency are measured by the benchmark and the Locust profiles (loadtests/,
docs/performance.md), not here.

Zero is the point: a too-short max_latency_ms or a too-small max_concurrency sheds load with 503s, and any error in
the batcher's hand-back of results would show here. The loop is bounded in count and in time;
AUDIOCLF_LOAD_CLIENTS / AUDIOCLF_LOAD_REQUESTS scale it for a quick local run.
"""

import asyncio
import logging
import os
import time

import aiohttp
import pytest

from devtools.loadgen import multipart
from loadtests.summary import Batches, batch_histogram

pytestmark = pytest.mark.e2e
log = logging.getLogger(__name__)

CLIENTS = int(os.environ.get("AUDIOCLF_LOAD_CLIENTS", "64"))
REQUESTS_PER_CLIENT = int(os.environ.get("AUDIOCLF_LOAD_REQUESTS", "100"))
DEADLINE_S = float(os.environ.get("AUDIOCLF_LOAD_DEADLINE_S", "600"))


async def hammer(url: str, bodies: list[tuple[bytes, str]], clients: int, per_client: int, deadline_s: float):
    failures: dict[str, int] = {}
    done = 0
    stop_at = time.monotonic() + deadline_s
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=clients), timeout=timeout) as session:

        async def client(c: int) -> None:
            nonlocal done
            for i in range(per_client):
                if time.monotonic() > stop_at:
                    return
                body, content_type = bodies[(c * per_client + i) % len(bodies)]
                try:
                    async with session.post(url, data=body, headers={"Content-Type": content_type}) as response:
                        answer = await response.json(content_type=None)
                        ok = response.status == 200 and answer["predictions"]
                        key = None if ok else f"HTTP {response.status}: {answer}"[:200]
                except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
                    key = repr(exc)[:200]
                if key:
                    failures[key] = failures.get(key, 0) + 1
                done += 1

        await asyncio.gather(*(client(c) for c in range(clients)))
    return done, failures


def test_concurrent_clients_all_succeed_and_share_batches(server, trained_model):
    bodies = [multipart(path.name, path.read_bytes(), "audio/wav") for path, _ in trained_model.test_clips[:100]]
    before = batch_histogram(server.http)
    started = time.monotonic()
    done, failures = asyncio.run(hammer(f"{server.http}/classify", bodies, CLIENTS, REQUESTS_PER_CLIENT, DEADLINE_S))
    elapsed = time.monotonic() - started
    batches = Batches.between(before, batch_histogram(server.http))
    log.info(
        "load: %d requests in %.0f s (%.0f/s), %d failed; %d batches, mean %.1f clips, %s",
        done,
        elapsed,
        done / elapsed,
        sum(failures.values()),
        batches.batches,
        batches.mean,
        batches.buckets,
    )
    assert done == CLIENTS * REQUESTS_PER_CLIENT, f"only {done} requests in the {DEADLINE_S:.0f} s bound"
    assert not failures, failures
    assert batches.batches - batches.buckets.get("<=1", 0) > 0, f"no batch held more than one clip: {batches}"
    assert server.ready()
