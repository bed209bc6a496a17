"""Scale benchmark of training's data path: wall time and peak RSS of the whole process tree (trainer plus
augmentation workers) for 10k, 30k and 100k synthetic clips, from a cold cache.

    python scripts/train_scale.py                    # 10k, 100k, then 30k clips; 1 epoch; 2 augmentation workers
    python scripts/train_scale.py --sizes 10000,30000 --epochs 2 --no-docs

The clips come from scripts/make_synthetic.py (generated once into runs/scale/synth, git-ignored): they measure
time and memory, never accuracy. Each size trains with the default (FSDD) recipe and a fresh cache, so its time
includes decoding and caching. RSS is sampled every 0.2 s with psutil and summed over the process and all its
descendants (shared library pages count once per process, so the sum overstates). Prints a markdown table with
machine, date and command, and writes it into docs/training.md between the scale-benchmark markers.
"""

import argparse
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "runs" / "scale"
DOC = ROOT / "docs" / "training.md"
START, END = "<!-- scale-benchmark:start -->", "<!-- scale-benchmark:end -->"
GIB = 2**30


def ensure_synthetic(sizes: list[int]) -> Path:
    """runs/scale/synth: the largest size's clips, with a manifest per size (generated if any is missing)."""
    synth = WORK / "synth"
    manifests = [synth / f"manifest-{n}.csv" for n in sizes[:-1]] + [synth / "manifest.csv"]
    complete = all(m.is_file() for m in manifests) and sum(1 for _ in open(manifests[-1])) - 1 == sizes[-1]
    if not complete:
        cmd = [sys.executable, str(ROOT / "scripts" / "make_synthetic.py"), "--out", str(synth)]
        cmd += ["--clips", str(sizes[-1]), "--prefixes", ",".join(str(n) for n in sizes[:-1])]
        subprocess.run(cmd, check=True)
    return synth


def tree_rss(proc: psutil.Process) -> tuple[int, int]:
    """(summed RSS in bytes, number of processes) of `proc` and all its descendants."""
    total, count = 0, 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
            count += 1
        except psutil.Error:  # exited between listing and reading
            pass
    return total, count


def run_one(manifest: Path, n: int, epochs: int, workers: int) -> dict:
    out, cache = WORK / f"run-{n}", WORK / f"cache-{n}"
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(cache, ignore_errors=True)
    cmd = [sys.executable, "-m", "training", "train", "--data", str(manifest), "--out", str(out)]
    cmd += ["--epochs", str(epochs), "--set", f"fit.augment_workers={workers}", "--no-register"]
    cmd += ["--cache-dir", str(cache)]
    log = open(WORK / f"run-{n}.log", "w")  # closed below, after the process ends
    t0 = time.monotonic()
    child = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    proc = psutil.Process(child.pid)
    peak, peak_procs = 0, 0
    while child.poll() is None:
        rss, count = tree_rss(proc)
        if rss > peak:
            peak, peak_procs = rss, count
        time.sleep(0.2)
    wall = time.monotonic() - t0
    log.close()
    if child.returncode != 0:
        raise RuntimeError(f"training on {n} clips failed; see {WORK / f'run-{n}.log'}")
    m = json.loads((out / "metrics.json").read_text())
    # Keras's per-epoch line ("157/157 - 41s - ..."): the last epoch's time, free of worker start and tracing.
    epoch_lines = re.findall(r"^\d+/\d+ - (\d+)s - ", (WORK / f"run-{n}.log").read_text(), flags=re.M)
    windows = m["data"]["splits"]["train"]["windows"]
    fit_epoch = m["timing"]["fit_s"] / m["epochs_run"]
    shutil.rmtree(cache)  # GBs at 100k; the numbers are what we keep
    return {
        "clips": n,
        "train_windows": windows,
        "wall_s": wall,
        "cache_s": m["timing"]["load_s"] + m["timing"]["features_s"],
        "epoch_s": fit_epoch,
        "last_epoch_s": float(epoch_lines[-1]),
        "windows_per_s": windows / float(epoch_lines[-1]),
        "evaluate_s": m["timing"]["evaluate_s"],
        "peak_rss": peak,
        "procs": peak_procs,
    }


def machine() -> str:
    model = next(
        (line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
        platform.processor(),
    )
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    return (
        f"{model}, {os.cpu_count()} cores, {psutil.virtual_memory().total / GIB:.0f} GiB RAM, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}; "
        f"load average at start {load} (the machine is shared)"
    )


def table(rows: list[dict], skipped: list[int], args, command: str, host: str, started: str) -> str:
    lines = [
        f"Measured {started} on {host} with `{command}`: default (FSDD) recipe, {args.epochs} epochs, "
        f"{args.workers} augmentation workers, a cold cache for each size, synthetic 8 kHz clips of 0.3-1.0 s.",
        "",
        "| clips | training windows | wall time (s) | decode + cache (s) | fit s/epoch | last epoch (s) | "
        "training windows/s | evaluation (s) | peak RSS, process tree (MiB) | processes |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['clips']:,} | {r['train_windows']:,} | {r['wall_s']:.0f} | {r['cache_s']:.0f} | "
            f"{r['epoch_s']:.0f} | {r['last_epoch_s']:.0f} | {r['windows_per_s']:.0f} | {r['evaluate_s']:.0f} | "
            f"{r['peak_rss'] / 2**20:,.0f} | {r['procs']} |"
        )
    for n in skipped:
        lines.append(
            f"| {n:,} | not measured: the time budget (--budget-s {args.budget_s:.0f}) would have run out |" + " |" * 8
        )
    if len(rows) >= 2:
        lo, hi = rows[0], rows[-1]
        ratio = hi["peak_rss"] / lo["peak_rss"]
        growth = (hi["last_epoch_s"] / lo["last_epoch_s"]) / (hi["clips"] / lo["clips"])
        lines += [
            "",
            f"Peak RSS at {hi['clips']:,} clips = {ratio:.2f} x the peak at {lo['clips']:,} "
            f"(target <= 1.5 x: {'met' if ratio <= 1.5 else 'missed'}); "
            f"{hi['peak_rss'] / GIB:.2f} GiB (target < 4 GiB: {'met' if hi['peak_rss'] < 4 * GIB else 'missed'}). "
            f"The last epoch took {hi['last_epoch_s'] / lo['last_epoch_s']:.1f} x as long for "
            f"{hi['clips'] / lo['clips']:.0f} x "
            f"the clips ({growth:.2f} x linear; target <= 1: {'met' if growth <= 1.05 else 'missed'}).",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    global WORK
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="10000,100000,30000", help="clip counts, run in this order")
    p.add_argument("--epochs", type=int, default=1, help="1 keeps 100k clips within ~25 min on 2 cores")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--budget-s", type=float, default=1500, help="skip a size whose estimated time would exceed it")
    p.add_argument("--no-docs", action="store_true", help="print the table only")
    p.add_argument("--work", type=Path, default=WORK, help="where the synthetic clips, runs and caches go")
    args = p.parse_args(argv)
    WORK = args.work
    order = [int(v) for v in args.sizes.split(",")]  # run in this order (the budget may skip the last ones)
    sizes = sorted(order)
    command = "python scripts/train_scale.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    host, started = machine(), datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    WORK.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    synth = ensure_synthetic(sizes)
    rows, skipped = [], []
    for n in order:
        if rows:  # wall time grows about linearly with clips: skip what would not fit
            estimate = rows[-1]["wall_s"] * n / rows[-1]["clips"]
            if time.monotonic() - t0 + estimate > args.budget_s:
                skipped.append(n)
                continue
        manifest = synth / ("manifest.csv" if n == sizes[-1] else f"manifest-{n}.csv")
        rows.append(run_one(manifest, n, args.epochs, args.workers))
        print(json.dumps(rows[-1]), file=sys.stderr)
    rows.sort(key=lambda r: r["clips"])
    text = table(rows, skipped, args, command.strip(), host, started)
    print(text)
    if not args.no_docs:
        doc = DOC.read_text()
        head, _, rest = doc.partition(START)
        _, _, tail = rest.partition(END)
        DOC.write_text(f"{head}{START}\n{text}\n{END}{tail}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
