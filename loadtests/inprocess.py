"""The in-process limit: decode + features + model on the same clips, in batches, with no server in between.

One process per core, each with its own copy of the model, so every core does what the service does
(decode and features for a batch of clips, then one model call for all their windows) minus everything a
server adds: HTTP/gRPC, the hand-over between entry and model workers, the batcher, JSON. The service cannot beat
this; the benchmark reports the service's throughput as a fraction of it.
"""

import multiprocessing as mp
import time
from pathlib import Path


def _worker(folder: str, clips: list[bytes], batch: int, barrier, warmup_s: float, measure_s: float, out) -> None:
    import numpy as np

    from audiocore import artifact
    from audiocore.decode import decode
    from audiocore.features import extract

    model, meta = artifact.load(Path(folder))
    cfg = meta.features

    def one_batch(i: int) -> int:
        chosen = [clips[(i + j) % len(clips)] for j in range(batch)]
        windows = [extract(decode(data, cfg.sample_rate).samples, cfg).windows for data in chosen]
        model.predict_on_batch(np.concatenate(windows))
        return len(chosen)

    one_batch(0)  # trace the model and compile librosa's kernels before the clock starts
    barrier.wait()
    start = time.perf_counter() + warmup_s
    stop, done, i = start + measure_s, 0, 0
    while True:
        began = time.perf_counter()
        if began >= stop:
            break
        n = one_batch(i)
        i += n
        if began >= start and time.perf_counter() <= stop:
            done += n
    out.put(done)


def limit(folder: Path, clips: list[bytes], processes: int, batch: int, warmup_s: float, measure_s: float) -> float:
    """Clips per second over all processes (batches that finish inside the measured window count)."""
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(processes), ctx.Queue()
    workers = [
        ctx.Process(target=_worker, args=(str(folder), clips, batch, barrier, warmup_s, measure_s, out))
        for _ in range(processes)
    ]
    for w in workers:
        w.start()
    try:
        total = sum(out.get(timeout=300 + warmup_s + measure_s) for _ in workers)
    finally:
        for w in workers:
            w.join(timeout=30)
            if w.is_alive():
                w.kill()
    return total / measure_s
