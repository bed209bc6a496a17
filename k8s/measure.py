"""Measure what one pod needs: start the real server (`python -m service`, the process tree a container runs), read
the memory of all its processes idle and under load, and the CPU they burn, so requests/limits rest on numbers.

    BENTOML_HOME=... .venv/bin/python k8s/measure.py --tag audio_classifier:latest --clients 16 --seconds 60

Memory is summed over the whole tree (circus arbiter and the workers, each with its own model) as RSS and as PSS:
RSS counts the shared pages of every worker again, PSS splits them, and the cgroup a pod's limit applies to sees
about the PSS sum plus page cache. Load: real FSDD digits and long instrument clips (the long ones set the peak),
over HTTP.
"""

import argparse
import itertools
import sys
import threading
import time
from pathlib import Path

import psutil
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from loadtests.procs import tree  # noqa: E402
from tests.servers import start_server, stop, wait_ready  # noqa: E402

DATA = ROOT.parent / "shared" / "data"


def tree_memory(pid: int) -> tuple[float, float, int]:
    """(RSS MiB, PSS MiB, processes) summed over the process and its descendants."""
    procs = tree(pid)
    rss = pss = 0
    for proc in procs:
        try:
            full = proc.memory_full_info()
        except psutil.Error:
            continue
        rss += full.rss
        pss += getattr(full, "pss", full.rss)
    return rss / 2**20, pss / 2**20, len(procs)


def tree_cpu_seconds(pid: int) -> float:
    total = 0.0
    for proc in tree(pid):
        try:
            t = proc.cpu_times()
        except psutil.Error:
            continue
        total += t.user + t.system + t.children_user + t.children_system
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tag", default="audio_classifier:latest")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--log", type=Path, default=Path("/tmp/audioclf-measure.log"))
    args = parser.parse_args()

    clips = sorted((DATA / "fsdd" / "recordings").glob("*.wav"))[:200]
    clips += sorted((DATA / "instruments").glob("*/*.flac"))[:40]
    payloads = [(p.name, p.read_bytes()) for p in clips]
    proc, server = start_server(args.tag, args.log)
    try:
        started = time.monotonic()
        wait_ready(proc, server)
        print(f"ready after {time.monotonic() - started:.0f} s")
        time.sleep(5)
        rss, pss, n = tree_memory(proc.pid)
        print(f"idle: {n} processes, RSS {rss:.0f} MiB, PSS {pss:.0f} MiB")

        stop_at = time.monotonic() + args.seconds
        done, failed, peak = [0], [0], [0.0, 0.0]
        lock = threading.Lock()
        feed = itertools.cycle(payloads)

        def client() -> None:
            session = requests.Session()
            while time.monotonic() < stop_at:
                with lock:
                    name, body = next(feed)
                ok = session.post(f"{server.http}/classify", files={"audio": (name, body)}, timeout=120).ok
                with lock:
                    done[0] += ok
                    failed[0] += not ok

        cpu0, t0 = tree_cpu_seconds(proc.pid), time.monotonic()
        threads = [threading.Thread(target=client, daemon=True) for _ in range(args.clients)]
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            rss, pss, n = tree_memory(proc.pid)
            peak = [max(peak[0], rss), max(peak[1], pss)]
            time.sleep(0.5)
        cpu = (tree_cpu_seconds(proc.pid) - cpu0) / (time.monotonic() - t0)
        print(
            f"load: {args.clients} clients x {args.seconds:.0f} s: {done[0]} ok, {failed[0]} failed; "
            f"peak RSS {peak[0]:.0f} MiB, peak PSS {peak[1]:.0f} MiB; CPU {cpu:.2f} cores on {psutil.cpu_count()}"
        )
        rss, pss, n = tree_memory(proc.pid)
        print(f"after: RSS {rss:.0f} MiB, PSS {pss:.0f} MiB")
    finally:
        stop(proc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
