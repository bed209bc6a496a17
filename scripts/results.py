"""Every run behind docs/results.md, then the page itself: `python scripts/results.py [--only NAME ...]`.

Runs (sequentially, so timings are not disturbed by each other) into runs/results/, then writes
docs/results.md with the machine, the date and the command of each figure. Re-running a finished run is
skipped unless --force; about an hour on 2 cores.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
OUT = ROOT / "runs" / "results"
PY = sys.executable

RUNS = {
    "fsdd-official": ["train", "--data", f"{DATA}/fsdd", "--no-register"],
    "fsdd-official-repeat": ["train", "--data", f"{DATA}/fsdd", "--no-register"],
    "fsdd-speaker-aug": ["cv", "--data", f"{DATA}/fsdd", "--group-column", "speaker"],
    "fsdd-speaker-noaug": ["cv", "--data", f"{DATA}/fsdd", "--group-column", "speaker", "--set", "augment.enabled=false"],
    "instruments-weighted": ["train", "--data", f"{DATA}/instruments", "--config", "configs/instruments.yaml", "--no-register"],
    "instruments-unweighted": [
        "train", "--data", f"{DATA}/instruments", "--config", "configs/instruments.yaml", "--no-register",
        "--set", "class_weight=none",
    ],
}


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def run(name: str, force: bool) -> dict:
    out = OUT / name
    done = out / ("summary.json" if RUNS[name][0] == "cv" else "metrics.json")
    cmd = [PY, "-m", "training", *RUNS[name], "--out", str(out)]
    record = OUT / f"{name}.run.json"
    if done.is_file() and record.is_file() and not force:
        return json.loads(record.read_text())
    t = time.perf_counter()
    log = OUT / f"{name}.log"
    with open(log, "w") as handle:
        subprocess.run(cmd, cwd=ROOT, check=True, stdout=handle, stderr=subprocess.STDOUT)
    info = {
        "command": "python -m training " + " ".join(RUNS[name]).replace(str(DATA), "../shared/data") + f" --out runs/results/{name}",
        "wall_s": time.perf_counter() - t,
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
    }
    record.write_text(json.dumps(info, indent=2))
    return info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", nargs="*", choices=sorted(RUNS), help="run just these")
    parser.add_argument("--force", action="store_true", help="re-run finished runs")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    for name in args.only or RUNS:
        print(f"== {name}", flush=True)
        info = run(name, args.force)
        print(f"   {info['wall_s']:.0f} s: {info['command']}", flush=True)


if __name__ == "__main__":
    main()
