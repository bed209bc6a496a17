"""One command, one run, one table: how close the service comes to the machine's limit.

    python -m loadtests.benchmark [--model-tag audio_classifier:latest | --model-dir runs/x/model] [--quick]

On the same cores, one after the other: (1) the in-process limit (decode + features + model in batches of 64, one
process per core, no server) and its CPU per clip; (2) the real server (`python -m service`) with
AUDIOCLF_MAX_BATCH_SIZE=1 (batching off) at 64 concurrent HTTP clients; (3) the reference peer, LitServe doing
exactly our work (loadtests.litserve_ref: our audiocore and model folder, 2 workers, batch 32, 10 ms) at 64 HTTP
clients; the server with default settings at 64 clients (4) over HTTP and (5) over gRPC; (6) latency percentiles
under an open-loop constant arrival rate at half of HTTP's throughput; (7) the in-process limit again, so that
drift of the machine's speed during the run shows; and the memory of every worker. All clips are short FSDD
digits (<= 1 s: one model window each).

Prints the table with the machine, date, command and the ratios against the targets; saves it with the raw
figures under runs/benchmark/<date>/ and, unless --quick or --no-docs, into docs/performance.md between the
`benchmark:start`/`benchmark:end` markers. About 6 minutes on 2 cores (--quick: about 2).
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import psutil

from devtools import loadgen, procs
from devtools.server import free_port, start_server, stop, wait_ready
from loadtests import clips as clipsets
from loadtests import model, oip, report
from loadtests import summary as summaries

ROOT = Path(__file__).resolve().parents[1]


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-tag", default="audio_classifier:latest", help="model in the BentoML store")
    parser.add_argument("--model-dir", type=Path, help="a model folder to serve instead (registered privately)")
    parser.add_argument("--data", help="shared data folder holding fsdd/ (default ../shared/data)")
    parser.add_argument("--clients", type=int, default=64, help="concurrent clients at saturation")
    parser.add_argument("--quick", action="store_true", help="short phases, to try the command; not for figures")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "benchmark")
    parser.add_argument("--docs", type=Path, default=ROOT / "docs" / "performance.md")
    parser.add_argument("--no-docs", action="store_true", help="do not update docs/performance.md")
    args = parser.parse_args(argv)
    args.warmup_s, args.measure_s = (2.0, 6.0) if args.quick else (5.0, 30.0)
    return args


class Phase:
    """One measured load against a running server: throughput, CPU per request by process role, batches (ours
    only: `metrics` False for the reference peer, which has no /metrics)."""

    def __init__(self, pid: int, http: str, metrics: bool = True):
        self.pid, self.http, self.metrics = pid, http, metrics

    def run(self, name: str, factory) -> dict:
        hist = summaries.batch_histogram(self.http) if self.metrics else {}
        server_cpu, machine_cpu = procs.CpuSnapshot.take(self.pid), psutil.cpu_times()
        result, wall_s, gen_cpu = loadgen.timed(factory)
        spent = procs.CpuSnapshot.take(self.pid).by_role_since(server_cpu)
        machine = _busy(psutil.cpu_times()) - _busy(machine_cpu)
        after = summaries.batch_histogram(self.http) if self.metrics else {}
        batches = summaries.Batches.between(hist, after)
        requests = max(result.ok + result.failed + result.shed, 1)
        # Whole phase (warm-up included) for CPU, so it is per request over the phase's requests: approximate.
        total_requests = requests * wall_s / result.elapsed_s if result.elapsed_s else requests
        row = {
            "name": name,
            "rps": result.rps,
            "ok": result.ok,
            "failed": result.failed,
            "shed": result.shed,
            "errors": result.errors,
            "p50_ms": result.percentile(50),
            "p95_ms": result.percentile(95),
            "p99_ms": result.percentile(99),
            "mean_batch": batches.mean,
            "cpu_ms_per_request": {k: 1000 * v / total_requests for k, v in spent.items()},
            "server_cpu_ms_per_request": 1000 * sum(spent.values()) / total_requests,
            "generator_cpu_ms_per_request": 1000 * gen_cpu / total_requests,
            "generator_cpu_share": gen_cpu / max(machine, 1e-9),
            "other_cpu_share": max(0.0, machine - gen_cpu - sum(spent.values())) / max(machine, 1e-9),
        }
        print(report.progress(row), flush=True)
        return row


def _busy(times) -> float:
    return (
        times.user + times.system + getattr(times, "nice", 0) + getattr(times, "irq", 0) + getattr(times, "softirq", 0)
    )


def serve(tag: str, log: Path, **settings):
    proc, server = start_server(tag, log, **settings)
    wait_ready(proc, server)
    return proc, server


def serve_litserve(folder: Path, log: Path, timeout_s: float = 300) -> tuple[subprocess.Popen, str]:
    """The reference peer (loadtests.litserve_ref) on 127.0.0.1 and a free port, once its /health answers 200."""
    import requests

    port = free_port()
    command = [sys.executable, "-m", "loadtests.litserve_ref", "--model-dir", str(folder), "--port", str(port)]
    with open(log, "wb") as handle:
        proc = subprocess.Popen(command, cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
    base, deadline = f"http://127.0.0.1:{port}", time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"LitServe exited with {proc.returncode}; see {log}")
        try:
            if requests.get(f"{base}/health", timeout=2).status_code == 200:
                return proc, base
        except requests.RequestException:
            pass
        time.sleep(1)
    os.killpg(proc.pid, signal.SIGKILL)
    raise RuntimeError(f"LitServe was not ready within {timeout_s:.0f} s; see {log}")


def main(argv: list[str]) -> int:
    args = parse(argv)
    started = datetime.now().astimezone()
    out = args.out / started.strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    tag, folder, how = model.choose(args.model_tag, args.model_dir, args.data, args.out)
    short = clipsets.short_clips(clipsets.data_dir(args.data))
    bodies = [loadgen.multipart(c.name, c.data, c.content_type) for c in short]
    payloads = [oip.infer_request(c.data, tag.split(":")[0]) for c in short]
    w, m, n = args.warmup_s, args.measure_s, args.clients
    rows: dict[str, dict] = {}
    memory = []

    from loadtests import inprocess

    print(f"model {tag} ({how}); {len(short)} FSDD clips; phases of {w:g} s warm-up + {m:g} s", flush=True)
    cores = os.cpu_count() or 1

    def in_process(name: str) -> dict:
        rps, cpu_per_clip = inprocess.limit(folder, [c.data for c in short], cores, 64, w, m)
        row = {"name": name, "rps": rps, "cpu_ms_per_clip": 1000 * cpu_per_clip}
        print(report.progress(row), flush=True)
        return row

    rows["inprocess"] = in_process(f"in-process limit ({cores} processes, batches of 64)")

    # Batching off first and batching on right after, so the pair compared at 64 clients is measured as close
    # together as two servers allow; the in-process limit is measured again at the end, because this machine's
    # speed drifts (CPU credits of a shared VM): the table reports the drift.
    proc, server = serve(tag, out / "server-batch1.log", max_batch_size=1)
    try:
        phase = Phase(proc.pid, server.http)

        async def http_unbatched():
            async with loadgen.Http(server.http, bodies, n) as client:
                return await loadgen.closed_loop(client, n, w, m)

        rows["nobatch"] = phase.run(f"HTTP, {n} clients, batching off (max batch 1)", http_unbatched)
    finally:
        stop(proc)

    # The reference peer right before our HTTP phase, so the pair is measured as close together as possible.
    proc, lit = serve_litserve(folder, out / "litserve.log")
    try:

        async def http_litserve():
            async with loadgen.Http(lit, bodies, n) as client:
                return await loadgen.closed_loop(client, n, w, m)

        rows["litserve"] = Phase(proc.pid, lit, metrics=False).run(
            f"LitServe on our audiocore + model, HTTP, {n} clients", http_litserve
        )
    finally:
        stop(proc)

    proc, server = serve(tag, out / "server.log")
    try:
        phase = Phase(proc.pid, server.http)

        async def http_closed():
            async with loadgen.Http(server.http, bodies, n) as client:
                return await loadgen.closed_loop(client, n, w, m)

        async def grpc_closed():
            async with oip.Grpc(server.grpc, payloads, n) as client:
                return await loadgen.closed_loop(client, n, w, m)

        rows["http"] = phase.run(f"HTTP, {n} clients, batching on", http_closed)
        rows["grpc"] = phase.run(f"gRPC, {n} clients, batching on", grpc_closed)
        rate = max(1.0, rows["http"]["rps"] / 2)

        async def http_open():
            async with loadgen.Http(server.http, bodies, 256) as client:
                return await loadgen.open_loop(client, rate, w, m)

        rows["half"] = phase.run(f"HTTP, open loop at {rate:.0f} req/s (half of saturation)", http_open)
        memory = [(m.role, m.pid, m.rss / 2**20, m.uss / 2**20) for m in procs.memory(proc.pid)]
    finally:
        stop(proc)

    rows["inprocess_end"] = in_process(f"in-process limit again, at the end ({cores} processes)")

    run = {
        "machine": report.machine(),
        "date": started.isoformat(timespec="seconds"),
        "command": "python -m loadtests.benchmark " + " ".join(argv),
        "commit": report.commit(),
        "model": f"{tag} ({how})",
        "quick": args.quick,
        "phase_s": {"warmup": w, "measure": m},
        "load_average_before": load_before,
        "clients": n,
        "rows": rows,
        "memory": memory,
        "wall_s": (datetime.now().astimezone() - started).total_seconds(),
    }
    (out / "results.json").write_text(json.dumps(run, indent=2, default=str))
    table = report.markdown(run)
    (out / "table.md").write_text(table)
    print(table)
    if not args.quick and not args.no_docs:
        report.write_docs(args.docs, table)
        print(f"written into {args.docs}")
    print(f"raw figures and server logs: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
