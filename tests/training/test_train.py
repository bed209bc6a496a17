"""training.train's choices: the learning rate (a constant for ReduceLROnPlateau, or warm-up then cosine decay), the
weight-averaging momentum, and which clips each cross-fitted teacher trains on and predicts."""

from pathlib import Path

import numpy as np
import pytest

from training.config import FitConfig
from training.dataset import Clip, Dataset
from training.train import TEACHER_FOLDS, ema_momentum, learning_rate, teacher_parts


def test_plateau_is_a_constant_rate():
    assert learning_rate(FitConfig(learning_rate=3e-3), steps_per_epoch=10) == 3e-3


def test_cosine_warms_up_over_the_first_epoch_then_decays_to_zero_at_the_last():
    fit = FitConfig(learning_rate=2e-3, lr_schedule="cosine", warmup_epochs=1, epochs=5)
    schedule = learning_rate(fit, steps_per_epoch=10)
    rates = np.array([float(schedule(step)) for step in range(51)])
    assert abs(rates[0] - 2e-4) < 1e-9 and abs(rates[10] - 2e-3) < 1e-9  # warm-up from a tenth to the peak
    assert (np.diff(rates[:11]) > 0).all() and (np.diff(rates[10:]) < 0).all()
    assert rates[50] < 1e-9 and abs(rates[30] - 1e-3) < 1e-6  # half way through the decay: half the peak


def test_cosine_without_warm_up_starts_at_the_peak():
    schedule = learning_rate(FitConfig(lr_schedule="cosine", warmup_epochs=0, epochs=2), steps_per_epoch=4)
    assert abs(float(schedule(0)) - 2e-3) < 1e-9


def test_weight_averaging_spans_at_most_three_epochs():
    """FSDD (36 steps an epoch) keeps the measured 0.99; a small data set's few steps get a shorter average, which
    would otherwise still hold the barely trained first step's weights at the end (Keras has no warm-up)."""
    assert ema_momentum(FitConfig(), 36) == 0.99
    assert ema_momentum(FitConfig(), 4) == pytest.approx(1 - 1 / 12)
    assert ema_momentum(FitConfig(ema_momentum=0), 36) == 0.0
    assert ema_momentum(FitConfig(ema_momentum=0.9), 4) == 0.9


def dataset(groups: list[str | None], per_class: int, n_classes: int = 3) -> Dataset:
    clips = [
        Clip(Path(f"{c}_{i}.wav"), str(c), group=groups[i % len(groups)])
        for c in range(n_classes)
        for i in range(per_class)
    ]
    return Dataset(clips=clips, waveforms=None, labels=[str(c) for c in range(n_classes)], split={})


def test_teacher_parts_leave_one_group_out_and_cover_every_training_clip_once():
    ds = dataset(["ann", "bob", "cyd", "dan"], per_class=8)
    train_clips = np.flatnonzero(np.array([c.group != "dan" for c in ds.clips]))  # dan: validation / test
    parts = teacher_parts(ds, train_clips, seed=1)
    assert list(parts) == ["ann", "bob", "cyd"]
    held = np.concatenate([h for h, _ in parts.values()])
    assert sorted(held.tolist()) == train_clips.tolist()
    for g, (h, rest) in parts.items():
        assert {ds.clips[i].group for i in h} == {g} and g not in {ds.clips[i].group for i in rest}
        assert set(rest) <= set(train_clips) and not set(h) & set(rest)


def test_teacher_parts_without_groups_are_stratified_folds():
    ds = dataset([None], per_class=10)
    parts = teacher_parts(ds, np.arange(30), seed=1)
    assert list(parts) == [f"fold{f}" for f in range(TEACHER_FOLDS)]
    for h, rest in parts.values():
        assert np.bincount(ds.y[h]).tolist() == [2, 2, 2] and len(rest) == 24
    again = teacher_parts(ds, np.arange(30), seed=1)
    assert all(np.array_equal(parts[k][0], again[k][0]) for k in parts)  # seeded
    small = dataset([None], per_class=3)
    assert len(teacher_parts(small, np.arange(9), seed=1)) == 3  # fewer folds than the smallest class's clips


def test_teacher_parts_fall_back_to_folds_when_a_class_is_in_one_group_only():
    """Leaving 'ann' out would leave no '3' to learn: stratified folds instead; a class with a single training clip
    cannot be cross-fitted at all, and the error says what to set."""
    ds = dataset(["ann", "bob"], per_class=4)
    ds.clips += [Clip(Path(f"solo{i}.wav"), "3", group="ann") for i in range(2)]
    ds.labels.append("3")
    parts = teacher_parts(ds, np.arange(len(ds.clips)), seed=1)
    assert list(parts) == ["fold0", "fold1"]  # two folds: the smallest class has two clips
    for _, rest in parts.values():
        assert set(ds.y[rest].tolist()) == {0, 1, 2, 3}
    ds.clips.pop()
    with pytest.raises(ValueError, match="at least 2 training clips of every class.*teacher.config=null"):
        teacher_parts(ds, np.arange(len(ds.clips)), seed=1)
    with pytest.raises(ValueError, match="at least 2 training clips of every class"):
        teacher_parts(dataset([None], per_class=1), np.arange(3), seed=1)
