"""The in-process limit: decode + features + model on the same clips, in batches, with no server in between.

One process per core, each with its own copy of the model, so every core does what the service does
(decode for each clip of a batch, features and one model call for all their windows) minus everything a server
adds: HTTP/gRPC, parsing, the batcher's queue, JSON. The service cannot beat this; the benchmark reports the
service's throughput as a fraction of it, and the service's CPU per request against this CPU per clip.
"""

import multiprocessing as mp
import time
from pathlib import Path


def _worker(folder: str, clips: list[bytes], batch: int, barrier, warmup_s: float, measure_s: float, out) -> None:
    import numpy as np

    from audiocore import artifact
    from audiocore.clip import prepare
    from audiocore.features import featurize

    model, meta, _ = artifact.load(Path(folder))  # times decode, features and the model call, not the clip step
    cfg = meta.features

    def one_batch(i: int) -> int:
        chosen = [clips[(i + j) % len(clips)] for j in range(batch)]
        windows = [prepare(data, cfg).windows for data in chosen]
        model.predict_on_batch(featurize(np.concatenate(windows), cfg))
        return len(chosen)

    one_batch(0)  # trace the model and compile librosa's kernels before the clock starts
    barrier.wait()
    start = time.perf_counter() + warmup_s
    stop, done, i, cpu = start + measure_s, 0, 0, 0.0
    while True:
        began, began_cpu = time.perf_counter(), time.process_time()
        if began >= stop:
            break
        n = one_batch(i)
        i += n
        if began >= start and time.perf_counter() <= stop:
            done += n
            cpu += time.process_time() - began_cpu
    out.put((done, cpu))


def limit(
    folder: Path, clips: list[bytes], processes: int, batch: int, warmup_s: float, measure_s: float
) -> tuple[float, float]:
    """(clips per second over all processes, CPU seconds per clip); batches that finish inside the measured window
    count."""
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(processes), ctx.Queue()
    workers = [
        ctx.Process(target=_worker, args=(str(folder), clips, batch, barrier, warmup_s, measure_s, out))
        for _ in range(processes)
    ]
    for w in workers:
        w.start()
    try:
        results = [out.get(timeout=300 + warmup_s + measure_s) for _ in workers]
    finally:
        for w in workers:
            w.join(timeout=30)
            if w.is_alive():
                w.kill()
    done = sum(n for n, _ in results)
    return done / measure_s, sum(cpu for _, cpu in results) / max(done, 1)
