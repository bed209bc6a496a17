"""Measure what one pod needs: start the real server (`python -m service`, the process tree a container runs), read
the memory of all its processes idle and under load, and the CPU they burn, so requests/limits rest on numbers.

    BENTOML_HOME=... .venv/bin/python k8s/measure.py --tag audio_classifier:latest --clients 16 --seconds 60

Memory is summed over the whole tree (circus arbiter and the workers, each with its own model) as RSS and as PSS:
RSS counts the shared pages of every worker again, PSS splits them, and the cgroup a pod's limit applies to sees
about the PSS sum plus page cache. Load: real FSDD digits and long instrument clips (the long ones set the peak),
over HTTP.
"""

import argparse
import sys
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a file from a checkout: the repository's packages, not the installed ones
from devtools import loadgen, procs  # noqa: E402
from devtools.server import start_server, stop, wait_ready  # noqa: E402

DATA = ROOT.parent / "shared" / "data"


def tree_memory(pid: int) -> tuple[float, float, int]:
    """(RSS MiB, PSS MiB, processes) summed over the process and its descendants."""
    rows = procs.memory(pid)
    return sum(m.rss for m in rows) / 2**20, sum(m.pss for m in rows) / 2**20, len(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tag", default="audio_classifier:latest")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--log", type=Path, default=Path("/tmp/audioclf-measure.log"))
    args = parser.parse_args()

    clips = sorted((DATA / "fsdd" / "recordings").glob("*.wav"))[:200]
    clips += sorted((DATA / "instruments").glob("*/*.flac"))[:40]
    bodies = [loadgen.multipart(p.name, p.read_bytes()) for p in clips]
    proc, server = start_server(args.tag, args.log)
    try:
        started = time.monotonic()
        wait_ready(proc, server)
        print(f"ready after {time.monotonic() - started:.0f} s")
        time.sleep(5)
        rss, pss, n = tree_memory(proc.pid)
        print(f"idle: {n} processes, RSS {rss:.0f} MiB, PSS {pss:.0f} MiB")

        async def load() -> loadgen.Result:
            async with loadgen.Http(server.http, bodies, args.clients) as client:
                return await loadgen.closed_loop(client, args.clients, 0, args.seconds, count_late=True)

        outcome: list[loadgen.Result] = []
        peak = [0.0, 0.0]
        cpu0, t0 = procs.CpuSnapshot.take(proc.pid), time.monotonic()
        runner = threading.Thread(target=lambda: outcome.append(loadgen.timed(load)[0]), daemon=True)
        runner.start()
        while runner.is_alive():
            rss, pss, n = tree_memory(proc.pid)
            peak = [max(peak[0], rss), max(peak[1], pss)]
            time.sleep(0.5)
        cpu = sum(procs.CpuSnapshot.take(proc.pid).by_role_since(cpu0).values()) / (time.monotonic() - t0)
        result = outcome[0]
        print(
            f"load: {args.clients} clients x {args.seconds:.0f} s: {result.ok} ok, {result.failed + result.shed} "
            f"failed; peak RSS {peak[0]:.0f} MiB, peak PSS {peak[1]:.0f} MiB; CPU {cpu:.2f} cores on "
            f"{psutil.cpu_count()}"
        )
        rss, pss, n = tree_memory(proc.pid)
        print(f"after: RSS {rss:.0f} MiB, PSS {pss:.0f} MiB")
    finally:
        stop(proc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
