"""Decoded clips and their clean window features cached on disk and read back by offset, so that training's
memory does not grow with the number of clips beyond an index.

One streaming pass decodes every clip into one float32 file (clip i is samples offsets[i]:offsets[i+1]); a
second writes the clean features of all their windows into another, one row per window. The first is keyed by
the files' content (sha256) and the decode settings, the second by that key and the whole FeatureConfig, so a
second run, every `cv` fold, or a run with other labels or splits over the same files reuses them. A cache is
written under a temporary name and renamed when complete, so an interrupted pass leaves nothing that is read.

Reads are `pread`s into fresh arrays, not memory maps: mapped pages count in the RSS of every process that
touches them, and the data would look copied once per augmentation worker. The OS page cache is shared by all.
"""

import hashlib
import json
import os
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from audiocore.config import FeatureConfig
from audiocore.decode import decode
from audiocore.errors import AudioError
from training.progress import Progress
from training.windows import Windows, clean_features

# Bump when decode or the feature code changes what the same bytes and settings give: old caches are then unused.
DECODE_VERSION = 1
FEATURES_VERSION = 1
CACHE_ENV = "AUDIOCLF_CACHE_DIR"
CLIPS_PER_CHUNK = 256  # clips featurised per call while writing the feature cache


def default_cache_dir() -> Path:
    """$AUDIOCLF_CACHE_DIR, else $XDG_CACHE_HOME/audioclf/training, else ~/.cache/audioclf/training."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "audioclf" / "training"


class _Rows:
    """float32 rows of a fixed shape in one file, read with pread; the file is opened lazily in each process."""

    def __init__(self, path: Path, row_shape: tuple[int, ...]):
        self.path = Path(path)
        self.row_shape = tuple(row_shape)
        self.row_items = int(np.prod(row_shape, dtype=np.int64))
        self._file = None

    def __getstate__(self) -> dict:  # sent to worker processes as a path, never as data or an open file
        return {**self.__dict__, "_file": None}

    def _fd(self) -> int:
        if self._file is None:
            self._file = open(self.path, "rb", buffering=0)  # kept open for the object's life
        return self._file.fileno()

    def read_into(self, out: np.ndarray, first_item: int) -> None:
        """Fill the contiguous float32 array `out` from item `first_item` of the file."""
        view = memoryview(out).cast("B")
        done = 0
        while done < len(view):
            got = os.preadv(self._fd(), [view[done:]], first_item * 4 + done)
            if got <= 0:
                raise OSError(f"{self.path}: unexpected end of file")
            done += got

    def gather(self, rows: np.ndarray) -> np.ndarray:
        """Rows `rows` (any order), one read per run of consecutive rows."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        out = np.empty((len(rows), *self.row_shape), dtype=np.float32)
        if len(rows) == 0:
            return out
        cuts = np.flatnonzero(np.diff(rows) != 1) + 1
        for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, len(rows)], strict=True):
            self.read_into(out[lo:hi], int(rows[lo]) * self.row_items)
        return out


class WaveStore(Sequence):
    """Decoded clips (mono float32 at `sample_rate`): `store[i]` reads clip i from disk."""

    def __init__(self, directory: Path, offsets: np.ndarray, sample_rate: int, key: str):
        self.directory, self.offsets, self.sample_rate, self.key = Path(directory), offsets, sample_rate, key
        self._samples = _Rows(self.directory / "samples.f32", ())

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> np.ndarray:
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        i = i % len(self)
        out = np.empty(int(self.offsets[i + 1] - self.offsets[i]), dtype=np.float32)
        self._samples.read_into(out, int(self.offsets[i]))
        return out

    def __iter__(self) -> Iterator[np.ndarray]:
        return (self[i] for i in range(len(self)))

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)


class FeatureStore:
    """Clean features of every window of every clip of a WaveStore: `store[rows]` -> (n, frames, n_features)."""

    def __init__(self, directory: Path, clip_rows: np.ndarray, starts: np.ndarray, shape: tuple[int, int]):
        self.directory, self.clip_rows, self.starts = Path(directory), clip_rows, starts
        self.shape = (len(starts), *shape)
        self._rows = _Rows(self.directory / "features.f32", shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows: np.ndarray) -> np.ndarray:
        return self._rows.gather(rows)

    def windows(self, y: np.ndarray, clips: np.ndarray) -> Windows:
        """The windows of `clips`, in that order, with their rows in this store."""
        clips = np.asarray(clips, dtype=np.int64)
        first, counts = self.clip_rows[clips], self.clip_rows[clips + 1] - self.clip_rows[clips]
        # row = first row of its clip + its position within the clip
        within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        row = np.repeat(first, counts) + within
        clip = np.repeat(clips, counts)
        return Windows(clip=clip, start=self.starts[row], y=y[clip], row=row)


@dataclass
class Decoded:
    waves: WaveStore | None  # None when decoding stopped at a bad file
    good: np.ndarray  # positions, in the list given, of the files that decoded (waves[k] is file good[k])
    bad: list[tuple[int, str]]  # (position, reason) of the files that did not
    built: bool  # True: decoded by this call; False: read from the cache


def content_digests(paths: Sequence[Path]) -> list[bytes | None]:
    """sha256 of each file's bytes (None: unreadable), read one file at a time."""
    digests: list[bytes | None] = []
    with Progress("hashing", len(paths), "files") as progress:
        for path in paths:
            try:
                digests.append(hashlib.sha256(Path(path).read_bytes()).digest())
            except OSError:
                digests.append(None)
            progress.update()
    return digests


def decode_clips(
    paths: Sequence[Path],
    digests: Sequence[bytes | None],
    sample_rate: int,
    max_seconds: float,
    cache_dir: Path,
    stop_at_bad: bool,
) -> Decoded:
    """Every file decoded to mono float32 at `sample_rate`: from the cache when these bytes were decoded with
    these settings before, else in one streaming pass that writes the cache (none when it stops at a bad file)."""
    h = hashlib.sha256(json.dumps({"v": DECODE_VERSION, "sr": sample_rate, "max_s": max_seconds}).encode())
    for d in digests:
        h.update(d if d is not None else b"\0" * 32)
    key = h.hexdigest()[:24]
    final = Path(cache_dir) / f"waves-{key}"
    if not (final / "index.npz").is_file():
        tmp = final.with_name(f"{final.name}.tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            stopped = _decode_into(tmp, paths, sample_rate, max_seconds, stop_at_bad)
            if stopped is not None:
                return Decoded(None, np.zeros(0, dtype=np.int64), [stopped], built=True)
            _publish(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        built = True
    else:
        built = False
    index = np.load(final / "index.npz")
    bad = json.loads((final / "bad.json").read_text())
    return Decoded(
        WaveStore(final, index["offsets"], sample_rate, key), index["good"], [(int(i), r) for i, r in bad], built
    )


def _decode_into(tmp: Path, paths, sample_rate, max_seconds, stop_at_bad) -> tuple[int, str] | None:
    offsets, good, bad = [0], [], []
    with open(tmp / "samples.f32", "wb") as out, Progress("decoding", len(paths)) as progress:
        for i, path in enumerate(paths):
            try:
                raw = Path(path).read_bytes()
                samples = decode(raw, sample_rate, max_seconds=max_seconds, source=str(path)).samples
            except OSError as exc:
                bad.append((i, f"cannot read file ({exc.strerror})"))
            except AudioError as exc:
                bad.append((i, f"{exc.code}: {exc.reason}"))
            else:
                out.write(np.ascontiguousarray(samples, dtype="<f4").tobytes())
                offsets.append(offsets[-1] + len(samples))
                good.append(i)
            if bad and stop_at_bad:
                return bad[0]
            progress.update()
    np.savez(tmp / "index.npz", offsets=np.array(offsets, dtype=np.int64), good=np.array(good, dtype=np.int64))
    (tmp / "bad.json").write_text(json.dumps(bad))
    return None


def clip_features(waves: WaveStore, cfg: FeatureConfig) -> tuple[FeatureStore, bool]:
    """The clean features of every window of every clip in `waves`: (store, whether this call computed them)."""
    h = hashlib.sha256(f"{FEATURES_VERSION}\0{waves.key}\0{cfg.model_dump_json()}".encode())
    final = waves.directory.parent / f"features-{h.hexdigest()[:24]}"
    built = not (final / "index.npz").is_file()
    if built:
        tmp = final.with_name(f"{final.name}.tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            _featurise_into(tmp, waves, cfg)
            _publish(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    index = np.load(final / "index.npz")
    return FeatureStore(final, index["clip_rows"], index["starts"], cfg.input_shape), built


def _featurise_into(tmp: Path, waves: WaveStore, cfg: FeatureConfig) -> None:
    counts, starts = [], []
    with open(tmp / "features.f32", "wb") as out, Progress("caching features", len(waves)) as progress:
        for lo in range(0, len(waves), CLIPS_PER_CHUNK):
            chunk = [waves[i] for i in range(lo, min(lo + CLIPS_PER_CHUNK, len(waves)))]
            X, table = clean_features(chunk, np.zeros(len(chunk), dtype=np.int64), np.arange(len(chunk)), cfg)
            out.write(np.ascontiguousarray(X, dtype="<f4").tobytes())
            counts.append(np.bincount(table.clip, minlength=len(chunk)))
            starts.append(table.start)
            progress.update(len(chunk))
    per_clip = np.concatenate(counts) if counts else np.zeros(0, dtype=np.int64)
    clip_rows = np.concatenate([[0], np.cumsum(per_clip)]).astype(np.int64)
    all_starts = np.concatenate(starts) if starts else np.zeros(0, dtype=np.int64)
    np.savez(tmp / "index.npz", clip_rows=clip_rows, starts=all_starts.astype(np.int64))


def _publish(tmp: Path, final: Path) -> None:
    """Rename the finished cache into place; if another process got there first, theirs is as good."""
    try:
        tmp.rename(final)
    except OSError:
        if not (final / "index.npz").is_file():
            raise
