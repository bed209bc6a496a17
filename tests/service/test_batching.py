"""The cap on BentoML's learned batch wait (service/batching.py), on BentoML's real Optimizer."""

from bentoml._internal.marshal.dispatcher import Optimizer

from service.batching import cap_batch_wait
from service.settings import get_settings


def fitted(waits: list[float]) -> Optimizer:
    opt = Optimizer(max_latency=10.0)
    for n, wait in enumerate(waits, start=1):
        opt.o_stat.append((n, 0.001 * n + 0.002, wait))
    opt.trigger_refresh()
    return opt


def test_wait_learned_under_saturation_is_capped():
    cap_batch_wait(float("inf"))  # BentoML's own behaviour, whether or not service.model_service was imported
    uncapped = fitted([0.4] * 20)
    assert uncapped.wait > 0.3  # what BentoML alone would keep waiting after a burst
    cap_batch_wait(0.005)
    try:
        capped = fitted([0.4] * 20)
        assert capped.wait == 0.005
        assert (capped.o_a, capped.o_b) == (uncapped.o_a, uncapped.o_b)  # the latency model itself is untouched
        assert fitted([0.001] * 20).wait < 0.005  # short waits stay as learned
        cap_batch_wait(0.005)  # applying it twice wraps BentoML's method once, not the cap
        assert fitted([0.4] * 20).wait == 0.005
        cap_batch_wait(float("inf"))
        assert fitted([0.4] * 20).wait > 0.3
    finally:
        cap_batch_wait(get_settings().max_batch_wait_ms / 1000)  # as service.model_service applies it
