"""The real clips the load sends: short FSDD digits (<= 1 s: one model window) and long instrument clips.

Read in place from the shared data beside the checkout (`../shared/data`), or from LOADTEST_DATA / --data.
Every selection is deterministic, so two runs send the same files.
"""

import csv
import os
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data"


@dataclass(frozen=True)
class Clip:
    name: str
    data: bytes
    content_type: str


def data_dir(path: str | Path | None = None) -> Path:
    return Path(path or os.environ.get("LOADTEST_DATA") or DEFAULT_DATA)


def _rows(manifest: Path) -> list[dict]:
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest} not found: point --data (or LOADTEST_DATA) at the shared data folder")
    with open(manifest, newline="") as handle:
        return list(csv.DictReader(handle))


def short_clips(data: Path, limit: int = 200) -> list[Clip]:
    """FSDD test-split digits, spread over digits and speakers (the manifest's order), at most `limit`."""
    rows = [r for r in _rows(data / "fsdd" / "manifest.csv") if r["split"] == "test"]
    step = max(1, len(rows) // limit)
    return [_clip(data / "fsdd" / r["path"], "audio/wav") for r in rows[::step][:limit]]


def long_clips(data: Path, limit: int = 40) -> list[Clip]:
    """Instrument clips (44.1 kHz FLAC, 1-26 s), every n-th of the manifest so all classes appear."""
    rows = _rows(data / "instruments" / "manifest.csv")
    step = max(1, len(rows) // limit)
    return [_clip(data / "instruments" / r["path"], "audio/flac") for r in rows[::step][:limit]]


def _clip(path: Path, content_type: str) -> Clip:
    return Clip(name=path.name, data=path.read_bytes(), content_type=content_type)
