"""Data in: manifests and class folders, splits that respect groups, and clear errors for bad input."""

import csv
import shutil
from collections import Counter

import numpy as np
import pytest

from training.config import DataConfig
from training.dataset import Clip, DataError, assign_splits, discover, load, read_manifest


def write_manifest(path, rows, columns=("path", "label")):
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        writer.writerows(rows)
    return path


@pytest.fixture
def small_fsdd(fsdd, tmp_path):
    """A manifest over 3 digits x 3 speakers x 6 recordings of the real FSDD files (paths point at shared/)."""
    rows = [
        (str(fsdd / f"recordings/{d}_{s}_{i}.wav"), d, s)
        for d in "012"
        for s in ("jackson", "theo", "nicolas")
        for i in range(6)
    ]
    return write_manifest(tmp_path / "m.csv", rows, ("path", "label", "group"))


def test_fsdd_manifest_is_read_with_its_official_split(fsdd):
    clips = discover(fsdd, group_column="speaker")
    assert len(clips) == 3000
    assert Counter(c.split for c in clips) == {"train": 2700, "test": 300}
    assert {c.group for c in clips} == {"george", "jackson", "lucas", "nicolas", "theo", "yweweler"}


def test_class_folders_are_discovered(tmp_path, digit_wav):
    for label in ("cat", "dog"):
        (tmp_path / label).mkdir()
        for i in range(3):
            shutil.copy(digit_wav, tmp_path / label / f"{i}.wav")
    (tmp_path / "dog" / "notes.txt").write_text("ignored")
    clips = discover(tmp_path)
    assert sorted(Counter(c.label for c in clips).items()) == [("cat", 3), ("dog", 3)]


def test_computed_splits_never_split_a_group(small_fsdd):
    clips = read_manifest(small_fsdd)
    split = assign_splits(clips, DataConfig(val_fraction=0.3, test_fraction=0.3), seed=0)
    groups = {name: {clips[i].group for i in idx} for name, idx in split.items()}
    assert groups["train"] and groups["val"] and groups["test"]
    assert not (groups["train"] & groups["val"]) and not (groups["train"] & groups["test"])
    assert not (groups["val"] & groups["test"])
    assert sorted(np.concatenate(list(split.values()))) == list(range(len(clips)))


def test_test_groups_hold_out_exactly_that_group(small_fsdd):
    clips = read_manifest(small_fsdd)
    split = assign_splits(clips, DataConfig(test_groups=["theo"]), seed=0)
    assert {clips[i].group for i in split["test"]} == {"theo"}
    assert "theo" not in {clips[i].group for i in split["train"]}


def test_held_out_groups_leave_every_other_group_in_training_and_validation(small_fsdd):
    """val_split 'auto' with test_groups: validation is drawn clip by clip from every remaining group."""
    clips = read_manifest(small_fsdd)
    split = assign_splits(clips, DataConfig(test_groups=["theo"], val_fraction=0.25), seed=0)
    groups = {name: {clips[i].group for i in idx} for name, idx in split.items()}
    assert groups["train"] == groups["val"] == {"jackson", "nicolas"}
    assert Counter(clips[i].label for i in split["val"]) == {"0": 3, "1": 3, "2": 3}  # stratified
    whole = assign_splits(clips, DataConfig(test_groups=["theo"], val_fraction=0.2, val_split="group"), seed=0)
    assert len({clips[i].group for i in whole["val"]}) == 1
    assert not {clips[i].group for i in whole["val"]} & {clips[i].group for i in whole["train"]}


def test_without_groups_splits_are_stratified(fsdd):
    clips = discover(fsdd, group_column="none")  # official test split given; val computed from train
    split = assign_splits(clips, DataConfig(val_fraction=0.1), seed=3)
    counts = Counter(clips[i].label for i in split["val"])
    assert set(counts.values()) == {27}  # 270 val clips, 10 balanced classes


def unsplit(fsdd, per_label: int, labels: str) -> list[Clip]:
    """`per_label` real FSDD clips of each of `labels`, with no split or group: the split is computed."""
    recordings = sorted((fsdd / "recordings").glob("*_jackson_*.wav"))
    return [Clip(path=p, label=d) for d in labels for p in [r for r in recordings if r.name[0] == d][:per_label]]


def test_a_small_fraction_of_a_small_set_still_holds_out_every_class(fsdd, caplog):
    """4 classes x 8 clips: 5% of the 24 left after the test split would be 2 clips, fewer than the classes
    (scikit-learn refuses such a stratified split); one clip per class is held out instead, and the log says so."""
    clips = unsplit(fsdd, 8, "0123")
    with caplog.at_level("WARNING", logger="training"):
        split = assign_splits(clips, DataConfig(val_fraction=0.05, test_fraction=0.25), seed=0)
    assert Counter(clips[i].label for i in split["val"]) == {label: 1 for label in "0123"}
    assert "holding out one clip per class" in caplog.text
    assert sorted(np.concatenate(list(split.values()))) == list(range(len(clips)))


def test_a_set_too_small_to_hold_out_every_class_names_the_setting(fsdd):
    with pytest.raises(DataError, match=r"data.test_fraction=0.15: 3 clips are too few"):
        assign_splits(unsplit(fsdd, 1, "012"), DataConfig(), seed=0)


def test_missing_manifest_path(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        discover(tmp_path / "nowhere.csv")


def test_manifest_without_label_column(tmp_path):
    path = write_manifest(tmp_path / "m.csv", [("a.wav",)], ("path",))
    with pytest.raises(DataError, match=r"lacks column\(s\) \['label'\]"):
        read_manifest(path)


def test_bad_split_value_names_the_line(tmp_path):
    path = write_manifest(
        tmp_path / "m.csv", [("a.wav", "x", "train"), ("b.wav", "y", "holdout")], ("path", "label", "split")
    )
    with pytest.raises(DataError, match=r"m.csv:3: split 'holdout'"):
        read_manifest(path)


def test_single_class_is_refused(fsdd, tmp_path):
    rows = [(str(fsdd / f"recordings/3_theo_{i}.wav"), "3") for i in range(10)]
    with pytest.raises(DataError, match="at least 2 classes"):
        load(write_manifest(tmp_path / "m.csv", rows), DataConfig(), 8000, 0)


def test_class_with_too_few_clips_is_named(fsdd, tmp_path):
    rows = [(str(fsdd / f"recordings/3_theo_{i}.wav"), "3") for i in range(10)]
    rows += [(str(fsdd / f"recordings/4_theo_{i}.wav"), "4") for i in range(2)]
    with pytest.raises(DataError, match="'4' has 2"):
        load(write_manifest(tmp_path / "m.csv", rows), DataConfig(), 8000, 0)


def test_unreadable_and_empty_files_are_named_or_skipped(fsdd, tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "text.wav").write_text("not audio")
    rows = [(str(fsdd / f"recordings/{d}_theo_{i}.wav"), d) for d in "34" for i in range(8)]
    rows += [(str(tmp_path / "empty.wav"), "3"), (str(tmp_path / "text.wav"), "4")]
    manifest = write_manifest(tmp_path / "m.csv", rows)
    with pytest.raises(DataError, match=r"empty.wav: empty: the file is empty"):
        load(manifest, DataConfig(), 8000, 0)
    ds = load(manifest, DataConfig(skip_bad_files=True), 8000, 0)
    assert len(ds.clips) == 16
    assert [(p.split("/")[-1], r.split(":")[0]) for p, r in ds.skipped] == [
        ("empty.wav", "empty"),
        ("text.wav", "unsupported_format"),
    ]


def test_fingerprint_changes_with_the_data(small_fsdd, fsdd, tmp_path):
    a = load(small_fsdd, DataConfig(), 8000, 0).fingerprint
    assert a == load(small_fsdd, DataConfig(), 8000, 0).fingerprint
    rows = list(csv.reader(open(small_fsdd)))[1:]
    rows[0][1] = "1"  # relabel one clip
    b = load(write_manifest(tmp_path / "n.csv", rows, ("path", "label", "group")), DataConfig(), 8000, 0).fingerprint
    assert a != b
