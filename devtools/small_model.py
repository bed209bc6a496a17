"""The small FSDD model the tests and the benchmark serve: a slice of FSDD, trained in about a minute."""

import csv
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLIPS_PER_DIGIT_AND_SPEAKER = 10  # enough for ~0.9 test accuracy
EPOCHS = 10


def train_small_model(fsdd: Path, work: Path) -> Path:
    """`python -m training train` on every FSDD test clip and the first 10 training clips of each (digit,
    speaker), 10 epochs, no augmentation; registered in the current BENTOML_HOME. Returns the run folder."""
    with open(fsdd / "manifest.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    taken: dict[tuple[str, str], int] = {}
    picked = []
    for row in rows:
        if row["split"] != "test":
            key = (row["label"], row["speaker"])
            if taken.get(key, 0) == CLIPS_PER_DIGIT_AND_SPEAKER:
                continue
            taken[key] = taken.get(key, 0) + 1
        picked.append({**row, "path": str(fsdd / row["path"])})
    work.mkdir(parents=True, exist_ok=True)
    manifest = work / "manifest.csv"
    with open(manifest, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(picked)
    run = work / "run"
    command = [sys.executable, "-m", "training", "train", "--data", str(manifest), "--out", str(run)]
    command += ["--epochs", str(EPOCHS), "--set", "augment.enabled=false", "--set", "fit.tensorboard=false"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"training failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return run
