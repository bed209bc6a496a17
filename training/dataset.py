"""Labelled clips in: a class-per-folder tree or a CSV manifest -> decoded clips with train/val/test splits.

Every problem with the input (missing manifest, unreadable file, a class with too few clips, a single class) is a
DataError that names the file or class; with `data.skip_bad_files` unreadable files are skipped and listed.
"""

import csv
import hashlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold, train_test_split

from audiocore.decode import decode
from audiocore.errors import AudioError
from training.config import DataConfig

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".mp3"}
SPLITS = ("train", "val", "test")
MANIFEST_NAME = "manifest.csv"


class DataError(ValueError):
    """The training data cannot be used as given; the message says which file or class and why."""


@dataclass(frozen=True)
class Clip:
    path: Path
    label: str
    split: str | None = None
    group: str | None = None


@dataclass
class Dataset:
    """Decoded clips, aligned lists, plus what was skipped and a content fingerprint."""

    clips: list[Clip]
    waveforms: list[np.ndarray]
    labels: list[str]  # sorted class names; a clip's class index is labels.index(clip.label)
    split: dict[str, np.ndarray]  # split name -> clip indices
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    fingerprint: str = ""
    sample_rate: int = 0

    @property
    def y(self) -> np.ndarray:
        index = {name: i for i, name in enumerate(self.labels)}
        return np.array([index[c.label] for c in self.clips], dtype=np.int64)

    def durations(self) -> np.ndarray:
        return np.array([len(w) / self.sample_rate for w in self.waveforms])


def discover(data: Path, group_column: str = "group") -> list[Clip]:
    """A CSV manifest, a folder holding manifest.csv, or a folder with one sub-folder per class."""
    data = Path(data)
    if not data.exists():
        raise DataError(f"{data} does not exist")
    if data.is_file():
        return read_manifest(data, group_column)
    if (data / MANIFEST_NAME).is_file():
        return read_manifest(data / MANIFEST_NAME, group_column)
    clips = [
        Clip(path=f, label=d.name)
        for d in sorted(p for p in data.iterdir() if p.is_dir() and not p.name.startswith("."))
        for f in sorted(d.rglob("*"))
        if f.is_file() and f.suffix.lower() in AUDIO_SUFFIXES
    ]
    if not clips:
        raise DataError(f"{data}: no {MANIFEST_NAME} and no class sub-folders with audio files ({AUDIO_SUFFIXES})")
    return clips


def read_manifest(path: Path, group_column: str = "group") -> list[Clip]:
    """CSV with columns path,label and optional split (train/val/test) and group; paths relative to the CSV."""
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        columns = set(reader.fieldnames or [])
        missing = {"path", "label"} - columns
        if missing:
            raise DataError(f"{path}: manifest lacks column(s) {sorted(missing)}; found {sorted(columns)}")
        clips = []
        for line, row in enumerate(reader, start=2):
            split = (row.get("split") or "").strip().lower() or None
            if split is not None and split not in SPLITS:
                raise DataError(f"{path}:{line}: split {split!r} is not one of {SPLITS}")
            if not (row["path"] or "").strip() or not (row["label"] or "").strip():
                raise DataError(f"{path}:{line}: empty path or label")
            clips.append(
                Clip(
                    path=(path.parent / row["path"].strip()),
                    label=row["label"].strip(),
                    split=split,
                    group=(row.get(group_column) or "").strip() or None,
                )
            )
    if not clips:
        raise DataError(f"{path}: manifest has no rows")
    return clips


def check_classes(clips: list[Clip], min_clips: int) -> list[str]:
    counts = Counter(c.label for c in clips)
    if len(counts) < 2:
        raise DataError(f"need at least 2 classes, found {len(counts)}: {sorted(counts)}")
    small = {label: n for label, n in counts.items() if n < min_clips}
    if small:
        detail = ", ".join(f"{label!r} has {n}" for label, n in sorted(small.items()))
        raise DataError(f"classes with fewer than {min_clips} clips (data.min_clips_per_class): {detail}")
    return sorted(counts)


def assign_splits(clips: list[Clip], cfg: DataConfig, seed: int) -> dict[str, np.ndarray]:
    """Use the manifest's splits where given; compute the missing ones, stratified by label and group-aware.

    A group (e.g. a speaker) never straddles two computed splits. `cfg.test_groups` overrides the manifest
    and makes exactly those groups the test set (leave-one-group-out evaluation).
    """
    idx = np.arange(len(clips))
    labels = np.array([c.label for c in clips])
    groups = np.array([c.group or "" for c in clips])
    has_groups = all(c.group for c in clips)
    if cfg.test_groups is not None:
        if not has_groups:
            raise DataError(f"data.test_groups needs a {cfg.group_column!r} column with a value on every row")
        unknown = set(cfg.test_groups) - set(groups)
        if unknown:
            raise DataError(f"data.test_groups {sorted(unknown)} not found; groups are {sorted(set(groups))}")
        test = idx[np.isin(groups, cfg.test_groups)]
        rest = idx[~np.isin(groups, cfg.test_groups)]
        val = np.array([], dtype=np.int64)
    else:
        given = np.array([c.split or "" for c in clips])
        test, val = idx[given == "test"], idx[given == "val"]
        rest = idx[(given == "train") | (given == "")]
        if len(test) == 0:
            rest, test = _hold_out(rest, labels, groups if has_groups else None, cfg.test_fraction, seed)
    if len(val) == 0:
        rest, val = _hold_out(rest, labels, groups if has_groups else None, cfg.val_fraction, seed + 1)
    missing = sorted(set(labels) - set(labels[rest]))
    if missing:
        raise DataError(f"classes {missing} have no training clips after splitting")
    return {"train": np.sort(rest), "val": np.sort(val), "test": np.sort(test)}


def _hold_out(pool: np.ndarray, labels: np.ndarray, groups: np.ndarray | None, fraction: float, seed: int):
    """Split `pool` into (kept, held_out) with about `fraction` held out; whole groups when groups are given."""
    if groups is None:
        kept, held = train_test_split(pool, test_size=fraction, stratify=labels[pool], random_state=seed)
        return kept, held
    n_groups = len(set(groups[pool]))
    if n_groups < 2:
        raise DataError("need at least 2 groups to hold some out without a group straddling two splits")
    splitter = StratifiedGroupKFold(
        n_splits=min(n_groups, max(2, round(1 / fraction))), shuffle=True, random_state=seed
    )
    kept_pos, held_pos = next(splitter.split(pool, labels[pool], groups[pool]))
    return pool[kept_pos], pool[held_pos]


def load(data: Path, cfg: DataConfig, sample_rate: int, seed: int) -> Dataset:
    """Discover, validate, decode (mono, resampled) and split the clips; fingerprint their bytes."""
    clips = discover(data, cfg.group_column)
    digest = hashlib.sha256()
    good, waveforms, skipped = [], [], []
    for clip in clips:
        try:
            raw = clip.path.read_bytes()
        except OSError as exc:
            problem = (str(clip.path), f"cannot read file ({exc.strerror})")
        else:
            try:
                audio = decode(raw, sample_rate, max_seconds=cfg.max_clip_seconds, source=str(clip.path))
            except AudioError as exc:
                problem = (str(clip.path), f"{exc.code}: {exc.reason}")
            else:
                digest.update(f"{clip.label}\0{clip.split}\0{clip.group}\0".encode())
                digest.update(hashlib.sha256(raw).digest())
                good.append(clip)
                waveforms.append(audio.samples)
                continue
        if not cfg.skip_bad_files:
            raise DataError(f"{problem[0]}: {problem[1]} (set data.skip_bad_files=true to skip such files)")
        skipped.append(problem)
    labels = check_classes(good, cfg.min_clips_per_class)
    return Dataset(
        clips=good,
        waveforms=waveforms,
        labels=labels,
        split=assign_splits(good, cfg, seed),
        skipped=skipped,
        fingerprint=digest.hexdigest()[:16],
        sample_rate=sample_rate,
    )
