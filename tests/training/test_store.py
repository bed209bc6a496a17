"""The on-disk cache of decoded clips and features: same numbers as decoding and the service's features, reused
when the bytes and settings are the same, rebuilt when they are not, and bad files listed or stopped at."""

import pickle
import shutil

import numpy as np
import pytest

from audiocore.config import FeatureConfig
from audiocore.decode import decode
from audiocore.features import extract, window_starts
from training.store import clip_features, content_digests, decode_clips

CFG = FeatureConfig(cmn=True)


@pytest.fixture
def files(fsdd, instrument_flac, tmp_path):
    """Six real digits and one long instrument clip, copied so that a test may change their bytes."""
    paths = []
    for src in [*(fsdd / f"recordings/{d}_theo_{i}.wav" for d in range(3) for i in range(2)), instrument_flac]:
        paths.append(tmp_path / "clips" / src.name)
        paths[-1].parent.mkdir(exist_ok=True)
        shutil.copy(src, paths[-1])
    return paths


def decoded(paths, cache, stop_at_bad=True):
    return decode_clips(paths, content_digests(paths), 8000, 600.0, cache, stop_at_bad)


def test_clips_read_back_equal_decode_bit_for_bit(files, tmp_path):
    d = decoded(files, tmp_path / "cache")
    assert d.built and d.bad == [] and d.good.tolist() == list(range(len(files)))
    for k, path in enumerate(files):
        np.testing.assert_array_equal(d.waves[k], decode(path, 8000).samples)
    assert d.waves.lengths.tolist() == [len(decode(p, 8000).samples) for p in files]


def test_second_call_reuses_the_cache_and_changed_bytes_make_a_new_one(files, tmp_path):
    first = decoded(files, tmp_path / "cache")
    again = decoded(files, tmp_path / "cache")
    assert not again.built and again.waves.directory == first.waves.directory
    shutil.copy(files[1], files[0])  # same names, other content
    changed = decoded(files, tmp_path / "cache")
    assert changed.built and changed.waves.directory != first.waves.directory
    np.testing.assert_array_equal(changed.waves[0], first.waves[1])


def test_bad_files_stop_the_pass_or_are_listed_and_cached(files, tmp_path):
    (files[2]).write_bytes(b"")
    stopped = decoded(files, tmp_path / "cache", stop_at_bad=True)
    assert stopped.waves is None and stopped.bad == [(2, "empty: the file is empty (0 bytes)")]
    assert not list((tmp_path / "cache").glob("waves-*"))  # nothing half-written is left to be read
    listed = decoded(files, tmp_path / "cache", stop_at_bad=False)
    cached = decoded(files, tmp_path / "cache", stop_at_bad=True)
    for d in (listed, cached):
        assert d.bad == stopped.bad and d.good.tolist() == [0, 1, 3, 4, 5, 6] and len(d.waves) == 6
    assert listed.built and not cached.built


def test_cached_features_equal_the_service_path_and_know_their_windows(files, tmp_path):
    waves = decoded(files, tmp_path / "cache").waves
    X, built = clip_features(waves, CFG)
    assert built and not clip_features(waves, CFG)[1]
    per_clip = [extract(decode(p, 8000).samples, CFG).windows for p in files]
    y = np.arange(len(files))
    table = X.windows(y, np.array([6, 0, 3]))  # any clips, in the order asked
    np.testing.assert_array_equal(X[table.row], np.concatenate([per_clip[6], per_clip[0], per_clip[3]]))
    assert table.clip.tolist() == [6] * len(per_clip[6]) + [0, 3] and table.y.tolist() == table.clip.tolist()
    np.testing.assert_array_equal(table.start[:-2], window_starts(len(waves[6]), CFG))
    other, built = clip_features(waves, CFG.model_copy(update={"kind": "logmel"}))
    assert built and other.directory != X.directory and other.shape[-1] == CFG.n_mels


def test_workers_are_sent_a_path_and_an_index_not_the_clips(files, tmp_path):
    waves = decoded(files, tmp_path / "cache").waves
    waves[0]  # an open file is not sent either
    sent = pickle.loads(pickle.dumps(waves))
    assert len(pickle.dumps(waves)) < 2000 < waves.lengths.sum() * 4
    np.testing.assert_array_equal(sent[6], waves[6])
