"""The in-process batcher with real features and a model stood in by plain functions: batches form under
concurrency, a failing batch fails only its clips, a stuck model turns liveness off (what /livez reports), clips
that waited past the deadline are refused as overloaded, and close() scores what is queued, then refuses."""

import asyncio
import threading
import time

import numpy as np
import pytest

from audiocore.config import FeatureConfig
from service.errors import RequestError
from service.scorer import Scorer

CFG = FeatureConfig(sample_rate=8000)
LABELS = 3


def windows(n: int = 1, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-0.5, 0.5, (n, CFG.window_samples)).astype(np.float32)


class Model:
    """Softmax-shaped scores; records the batch sizes it was called with; can fail or block on demand."""

    def __init__(self):
        self.batches: list[int] = []
        self.fail = False
        self.release = threading.Event()
        self.release.set()

    def __call__(self, features: np.ndarray) -> np.ndarray:
        assert features.shape[1:] == CFG.input_shape
        self.batches.append(len(features))
        self.release.wait(30)
        if self.fail:
            raise RuntimeError("the model broke")
        return np.full((len(features), LABELS), 1 / LABELS, np.float32)


def scorer(model: Model, **kw) -> Scorer:
    return Scorer(model, CFG, **{"max_batch": 64, "max_wait_s": 0.05, "max_queue_s": 30, **kw})


def test_concurrent_clips_share_batches_and_get_their_own_windows():
    async def run():
        model = Model()
        s = scorer(model)
        try:
            out = await asyncio.gather(*(s.scores(windows(1 + i % 3, i)) for i in range(12)))
        finally:
            await s.close(10)
        return model, out

    model, out = asyncio.run(run())
    assert [len(x) for x in out] == [1 + i % 3 for i in range(12)]
    assert sum(model.batches) == 24 and len(model.batches) < 12  # fewer model calls than clips


def test_a_failing_batch_fails_its_clips_and_the_scorer_goes_on():
    async def run():
        model = Model()
        s = scorer(model)
        try:
            model.fail = True
            with pytest.raises(RequestError) as info:
                await s.scores(windows())
            model.fail = False
            ok = await s.scores(windows())
            return info.value.code, ok.shape, s.alive(stall_s=5)
        finally:
            await s.close(10)

    code, shape, alive = asyncio.run(run())
    assert (code, shape, alive) == ("internal", (1, LABELS), True)


def test_a_stuck_model_turns_liveness_off_until_it_returns():
    async def run():
        model = Model()
        model.release.clear()
        s = scorer(model)
        pending = asyncio.ensure_future(s.scores(windows()))
        try:
            while not model.batches:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.3)
            stuck = s.alive(stall_s=0.2)
            model.release.set()
            await pending
            deadline = time.monotonic() + 2  # the thread marks itself free just after answering
            while not s.alive(stall_s=0.2) and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            return stuck, s.alive(stall_s=0.2)
        finally:
            model.release.set()
            await s.close(10)

    assert asyncio.run(run()) == (False, True)


def test_clips_that_waited_past_the_deadline_are_refused_as_overloaded():
    async def run():
        model = Model()
        model.release.clear()
        s = scorer(model, max_batch=1, max_queue_s=0.1)
        try:
            first = asyncio.ensure_future(s.scores(windows()))
            while not model.batches:
                await asyncio.sleep(0.01)
            late = asyncio.ensure_future(s.scores(windows()))  # queues behind the stuck batch
            await asyncio.sleep(0.3)
            model.release.set()
            await first
            with pytest.raises(RequestError) as info:
                await late
            return info.value.code, len(model.batches)
        finally:
            model.release.set()
            await s.close(10)

    assert asyncio.run(run()) == ("overloaded", 1)  # refused without a model call


def test_close_scores_what_is_queued_then_refuses_new_clips():
    async def run():
        model = Model()
        model.release.clear()
        s = scorer(model, max_batch=1)
        queued = [asyncio.ensure_future(s.scores(windows())) for _ in range(3)]
        await asyncio.sleep(0.05)
        closing = asyncio.ensure_future(s.close(10))
        await asyncio.sleep(0.05)
        model.release.set()
        done = await asyncio.gather(*queued)
        await closing
        with pytest.raises(RequestError) as info:
            await s.scores(windows())
        return [x.shape for x in done], info.value.code, s.alive(stall_s=5)

    shapes, code, alive = asyncio.run(run())
    assert shapes == [(1, LABELS)] * 3
    assert code == "not_ready" and not alive  # the thread has stopped
