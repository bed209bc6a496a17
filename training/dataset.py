"""Labelled clips in: a class-per-folder tree or a CSV manifest -> decoded clips (cached on disk) with splits.

Every problem with the input (missing manifest, unreadable file, a class with too few clips, a single class) is a
DataError that names the file or class; with `data.skip_bad_files` unreadable files are skipped and listed.
"""

import csv
import hashlib
import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold, train_test_split

from training import store
from training.config import DataConfig
from training.store import WaveStore

log = logging.getLogger("training")

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
    """Decoded clips (on disk, read by index), aligned lists, plus what was skipped and a content fingerprint."""

    clips: list[Clip]
    waveforms: WaveStore  # waveforms[i] is clips[i], read from the cache
    labels: list[str]  # sorted class names; a clip's class index is labels.index(clip.label)
    split: dict[str, np.ndarray]  # split name -> clip indices
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    fingerprint: str = ""
    sample_rate: int = 0
    cache_hit: bool = False  # the decoded clips came from the cache

    @property
    def y(self) -> np.ndarray:
        index = {name: i for i, name in enumerate(self.labels)}
        return np.array([index[c.label] for c in self.clips], dtype=np.int64)

    def durations(self) -> np.ndarray:
        return self.waveforms.lengths / self.sample_rate


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
            rest, test = _hold_out(rest, labels, groups if has_groups else None, cfg.test_fraction, seed, "test")
    if len(val) == 0:
        val_by_group = has_groups and (
            cfg.val_split == "group" or (cfg.val_split == "auto" and cfg.test_groups is None)
        )
        rest, val = _hold_out(rest, labels, groups if val_by_group else None, cfg.val_fraction, seed + 1, "val")
    missing = sorted(set(labels) - set(labels[rest]))
    if missing:
        raise DataError(f"classes {missing} have no training clips after splitting")
    return {"train": np.sort(rest), "val": np.sort(val), "test": np.sort(test)}


def _hold_out(pool: np.ndarray, labels: np.ndarray, groups: np.ndarray | None, fraction: float, seed: int, split: str):
    """Split `pool` into (kept, held_out) with about `fraction` held out; whole groups when groups are given.

    Stratified without groups, so the held-out part has at least one clip of every class: when `fraction` of a
    small pool is fewer clips than classes, one per class is held out instead (logged), and a pool too small for
    that is a DataError naming data.<split>_fraction."""
    if groups is None:
        n, n_classes = len(pool), len(set(labels[pool]))
        size: float | int = fraction
        if math.ceil(fraction * n) < n_classes:  # scikit-learn holds out ceil(fraction * n) clips
            if n - n_classes < n_classes:
                raise DataError(
                    f"data.{split}_fraction={fraction}: {n} clips are too few to hold out one of each of "
                    f"{n_classes} classes and keep one of each to train on; add clips or give a {split} split"
                )
            log.warning(
                "data.%s_fraction=%s of %d clips is fewer than the %d classes: holding out one clip per class",
                split,
                fraction,
                n,
                n_classes,
            )
            size = n_classes
        kept, held = train_test_split(pool, test_size=size, stratify=labels[pool], random_state=seed)
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
    """Discover, validate, decode (mono, resampled) and split the clips; fingerprint their bytes.

    Decoded clips are cached on disk (training.store): memory holds the clip list and an index, not the audio."""
    clips = discover(data, cfg.group_column)
    digests = store.content_digests([c.path for c in clips])
    decoded = store.decode_clips(
        [c.path for c in clips],
        digests,
        sample_rate,
        cfg.max_clip_seconds,
        cfg.cache_dir or store.default_cache_dir(),
        stop_at_bad=not cfg.skip_bad_files,
    )
    skipped = [(str(clips[i].path), reason) for i, reason in decoded.bad]
    if skipped and not cfg.skip_bad_files:
        path, reason = skipped[0]
        raise DataError(f"{path}: {reason} (set data.skip_bad_files=true to skip such files)")
    good = [clips[i] for i in decoded.good]
    digest = hashlib.sha256()
    for i, clip in zip(decoded.good, good, strict=True):
        digest.update(f"{clip.label}\0{clip.split}\0{clip.group}\0".encode())
        digest.update(digests[i])
    labels = check_classes(good, cfg.min_clips_per_class)
    return Dataset(
        clips=good,
        waveforms=decoded.waves,
        labels=labels,
        split=assign_splits(good, cfg, seed),
        skipped=skipped,
        fingerprint=digest.hexdigest()[:16],
        sample_rate=sample_rate,
        cache_hit=not decoded.built,
    )
