"""A bound on how long BentoML's adaptive batcher waits for company before it calls the model.

BentoML 1.4's CorkDispatcher keeps dispatching while the model is busy (requests pile up and go together), and
when the model is free it waits for more requests as long as the *average past wait* of its batches
(`Optimizer.wait`). After a burst that average is the queueing time under saturation, and waiting that long makes
the next batches wait as long again: the figure sustains itself. Measured here (docs/performance.md): at half of
saturation, right after a saturated phase, batches of ~12 clips gathered for ~100 ms and p99 was 885 ms, with the
model idle most of the time. Capping the learned wait at AUDIOCLF_MAX_BATCH_WAIT_MS keeps batching where it pays
(under load the queue fills while the model runs) without holding requests when the model is idle.
"""

import functools

from bentoml._internal.marshal.dispatcher import Optimizer


def cap_batch_wait(max_wait_s: float) -> None:
    """Clamp the batcher's learned wait to `max_wait_s` every time it re-fits its latency model (idempotent)."""
    refresh = getattr(Optimizer.trigger_refresh, "__wrapped__", Optimizer.trigger_refresh)

    @functools.wraps(refresh)
    def capped_refresh(self: Optimizer) -> None:
        refresh(self)
        self.wait = min(self.wait, max_wait_s)

    Optimizer.trigger_refresh = capped_refresh
