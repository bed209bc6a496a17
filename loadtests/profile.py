"""Where a worker's time goes under load: py-spy on every worker of the real server while HTTP clients drive it.

    python -m loadtests.profile [--model-tag audio_classifier:latest | --model-dir runs/x/model] [--clients 64]

Starts `python -m service` (default settings), drives it with `--clients` closed-loop HTTP clients posting FSDD
test digits, records every worker with `py-spy record --format raw` (GIL-holding and running samples; idle threads
are left out) for `--seconds`, and prints, per worker thread, its share of samples, then for the event-loop thread
the frames that hold the most samples (inclusive: a frame counts every sample it is on the stack of), grouped as
BentoML/Starlette/FastAPI middleware, our handler and the rest. Raw stacks stay under runs/profile/<date>/ for a
flame graph (`py-spy`'s raw format is the folded-stack format flamegraph tools read). The benchmark measures; this
says why (docs/performance.md).
"""

import argparse
import asyncio
import collections
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from devtools import loadgen, machine, procs
from devtools.server import start_server, stop, wait_ready
from loadtests import clips as clipsets
from loadtests import model

ROOT = Path(__file__).resolve().parents[1]
# Frames that say which layer a sample is in (the stack's innermost match wins for "own layer" purposes).
LAYERS = {
    "our handler": ("service/http_api.py", "service/pipeline.py", "service/contract.py"),
    "multipart parsing": ("python_multipart/", "starlette/formparsers.py"),
    "BentoML middleware": ("bentoml/_internal/server/http/", "_bentoml_impl/server/app.py"),
    "access log (logging)": ("logging/__init__.py",),
    "metrics (prometheus_client)": ("prometheus_client/",),
    "Starlette/FastAPI routing": ("starlette/", "fastapi/"),
    "uvicorn HTTP protocol": ("uvicorn/protocols/",),
}


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-tag", default="audio_classifier:latest", help="model in the BentoML store")
    parser.add_argument("--model-dir", type=Path, help="a model folder to serve instead (registered privately)")
    parser.add_argument("--data", help="shared data folder holding fsdd/ (default ../shared/data)")
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=int, default=20, help="recorded seconds (after 3 s of load)")
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "profile")
    return parser.parse_args(argv)


def layer(frame: str) -> str | None:
    for name, marks in LAYERS.items():
        if any(mark in frame for mark in marks):
            return name
    return None


def summarise(raw: Path) -> tuple[dict[str, int], dict[str, int], int]:
    """(samples per thread, samples per layer of the event-loop thread, its total). A sample of the event-loop
    thread belongs to the innermost frame that names a layer ("other": none does, e.g. uvloop's own C code)."""
    threads: collections.Counter = collections.Counter()
    layers: collections.Counter = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        n = int(count)
        thread = frames[0].split(": ", 1)[-1] if ": " in frames[0] else frames[0]
        threads[thread] += n
        if thread == "MainThread":
            found = next((name for f in reversed(frames) if (name := layer(f))), "other (uvloop, asyncio)")
            layers[found] += n
    return dict(threads), dict(layers), threads.get("MainThread", 0)


def main(argv: list[str]) -> int:
    args = parse(argv)
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if not spy:
        print("py-spy is not installed (it is in the loadtest extra: pip install .[loadtest])")
        return 2
    stamp = datetime.now(UTC)
    out = args.out / stamp.strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    tag, _, how = model.choose(args.model_tag, args.model_dir, args.data, out)
    clips = clipsets.short_clips(clipsets.data_dir(args.data))
    bodies = [loadgen.multipart("audio", c.data, c.content_type) for c in clips]
    proc, server = start_server(tag, out / "server.log")
    try:
        wait_ready(proc, server)
        workers = procs.workers(proc.pid)

        async def drive():
            async with loadgen.Http(server.http, bodies, args.clients) as http:
                return await loadgen.closed_loop(http, args.clients, 3.0, float(args.seconds))

        spies = []
        loop = asyncio.new_event_loop()
        task = loop.create_task(drive())
        loop.run_until_complete(asyncio.sleep(3.0))  # load first, then record
        for pid in workers:
            cmd = [spy, "record", "-d", str(args.seconds), "-r", str(args.rate), "-f", "raw", "-t", "--nonblocking"]
            spies.append(
                subprocess.Popen(
                    [*cmd, "-o", str(out / f"worker-{pid}.txt"), "-p", str(pid)],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        result = loop.run_until_complete(task)
        loop.close()
        for s in spies:
            s.wait(timeout=args.seconds + 60)
    finally:
        stop(proc)
    print(f"Machine: {machine.line()}")
    print(f"Date: {stamp.isoformat(timespec='seconds')}. Model: {tag} ({how}).")
    print(f"Command: `{' '.join(['python -m loadtests.profile', *argv])}`")
    print(f"Load: {args.clients} HTTP clients, {result.rps:.0f} req/s, {result.failed} failed, {result.shed} shed")
    print(f"Raw stacks: {out}\n")
    for raw in sorted(out.glob("worker-*.txt")):
        threads, layers, total = summarise(raw)
        ranked = sorted(threads.items(), key=lambda kv: -kv[1])
        busy = ", ".join(f"{name} {n / (args.seconds * args.rate):.0%}" for name, n in ranked)
        print(f"{raw.stem}: samples per thread, as a share of the recording: {busy}")
        print("  event-loop thread, by layer (innermost frame):")
        for name, n in sorted(layers.items(), key=lambda kv: -kv[1]):
            print(f"    {n / max(total, 1):6.1%}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
