"""Which model the benchmark serves: a store tag, a model folder, or (when the store has none) the small FSDD
model the tests train, in a private store so that the user's store is left as it was."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLIPS_PER_DIGIT_AND_SPEAKER, EPOCHS = 10, 10  # as tests/conftest.py trains it


def use_private_store(folder: Path) -> None:
    """Before bentoml is imported: keep everything the benchmark registers under `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    os.environ["BENTOML_HOME"] = str(folder)


def in_store(tag: str) -> tuple[str, Path] | None:
    import bentoml

    try:
        stored = bentoml.models.get(tag)
    except bentoml.exceptions.NotFound:
        return None
    return str(stored.tag), Path(stored.path)


def register_folder(folder: Path) -> str:
    from audiocore.artifact import read_metadata
    from training.registry import register

    return register(folder, "audio_classifier", read_metadata(folder))


def train_small(fsdd: Path, work: Path) -> str:
    """`python -m training train` on 10 clips per (digit, speaker) plus the test split, 10 epochs (~1 min)."""
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
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True, timeout=1800)
    return json.loads((run / "metrics.json").read_text())["bentoml_tag"]
