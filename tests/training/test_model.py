"""The CNN builder: plain and residual blocks, the standardisation carried inside, names kept for old artifacts."""

import keras
import numpy as np
import pytest

from training.config import ConvBlock, ModelConfig
from training.model import MemberCrossentropy, build_model, member_outputs, with_teachers

SHAPE = (101, 20)


def model(blocks):
    return build_model(ModelConfig(conv_blocks=blocks, members=1), SHAPE, 10, np.zeros(SHAPE[1]), np.ones(SHAPE[1]))


def test_plain_blocks_keep_their_layer_names():
    names = {layer.name for layer in model([ConvBlock(filters=8), ConvBlock(filters=16, pool=1)]).layers}
    assert {"standardise", "conv1", "bn1", "pool1", "conv2", "bn2", "probabilities"} <= names


def test_a_residual_block_adds_its_input_through_a_projection_when_the_width_changes():
    m = model([ConvBlock(filters=8), ConvBlock(filters=16, residual=True), ConvBlock(filters=16, residual=True)])
    names = {layer.name for layer in m.layers}
    assert {"conv2a", "conv2b", "conv2s", "add2", "conv3a", "conv3b", "add3"} <= names
    assert "conv3s" not in names  # same width, stride 1: the identity shortcut
    x = np.random.default_rng(0).normal(size=(3, *SHAPE)).astype(np.float32)
    probs = m.predict(x, verbose=0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_a_residual_model_saves_and_loads_with_the_same_outputs(tmp_path):
    m = model([ConvBlock(filters=8, residual=True, stride=2)])
    x = np.random.default_rng(1).normal(size=(2, *SHAPE)).astype(np.float32)
    m.save(tmp_path / "m.keras")
    again = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(again.predict(x, verbose=0), m.predict(x, verbose=0), atol=1e-6)


def test_a_residual_block_without_batch_norm_is_refused():
    with pytest.raises(ValueError, match="needs batch_norm"):
        ConvBlock(filters=8, residual=True, batch_norm=False)


def test_a_gru_over_the_frames_sees_the_order_of_sounds(tmp_path):
    """With gru_units the pooled features depend on the order of frames: reversing time changes the scores."""
    m = build_model(
        ModelConfig(conv_blocks=[ConvBlock(filters=8)], gru_units=4, members=1),
        SHAPE,
        3,
        np.zeros(SHAPE[1]),
        np.ones(SHAPE[1]),
    )
    assert m.get_layer("gru").output.shape[1:] == (51, 8)  # 101 frames pooled by 2, both directions
    x = np.random.default_rng(2).normal(size=(2, *SHAPE)).astype(np.float32)
    assert np.abs(m.predict(x, verbose=0) - m.predict(x[:, ::-1], verbose=0)).max() > 1e-6
    m.save(tmp_path / "m.keras")
    np.testing.assert_allclose(
        keras.saving.load_model(tmp_path / "m.keras").predict(x, verbose=0), m.predict(x, verbose=0), atol=1e-6
    )


def test_an_ensemble_serves_the_mean_of_its_members_and_trains_each_on_its_own_loss(tmp_path):
    """members=2: one saved model whose output is the average of two CNNs; the fitted view stacks their outputs, and
    the loss is the mean of the members' cross-entropies (not the cross-entropy of their average)."""
    m = build_model(ModelConfig(members=2), SHAPE, 4, np.zeros(SHAPE[1]), np.ones(SHAPE[1]))
    fitted = member_outputs(m)
    single = model([ConvBlock(filters=8)])
    assert fitted.output.shape[1:] == (2, 4) and member_outputs(single) is single
    x = np.random.default_rng(3).normal(size=(5, *SHAPE)).astype(np.float32)
    each = fitted.predict(x, verbose=0)
    np.testing.assert_allclose(m.predict(x, verbose=0), each.mean(axis=1), atol=1e-6)
    assert np.abs(each[:, 0] - each[:, 1]).max() > 1e-4  # the members start from different weights
    y = np.eye(4, dtype=np.float32)[[0, 1, 2, 3, 0]]
    expected = -np.log(each[np.arange(5), :, y.argmax(1)]).mean(axis=1)
    np.testing.assert_allclose(MemberCrossentropy(reduction=None)(y, each), expected, rtol=1e-5)
    m.save(tmp_path / "m.keras")
    again = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(again.predict(x, verbose=0), m.predict(x, verbose=0), atol=1e-6)


def test_mutual_learning_adds_each_members_kl_from_the_others_mean():
    """fit.mutual_learning: member k's loss is its cross-entropy plus w * KL(mean of the others || member k)."""
    rng = np.random.default_rng(4)
    each = rng.dirichlet(np.ones(4), size=(5, 3)).astype(np.float32)  # (batch, members, classes)
    y = np.eye(4, dtype=np.float32)[[0, 1, 2, 3, 0]]
    ce = -np.log(each[np.arange(5), :, y.argmax(1)])
    others = (each.sum(axis=1, keepdims=True) - each) / 2
    kl = (others * (np.log(others) - np.log(each))).sum(axis=-1)
    got = MemberCrossentropy(mutual=0.5, reduction=None)(y, each)
    np.testing.assert_allclose(got, (ce + 0.5 * kl).mean(axis=1), rtol=1e-4)
    assert MemberCrossentropy.from_config(MemberCrossentropy(mutual=0.5).get_config()).mutual == 0.5


def test_a_student_learns_from_its_teachers_mean_and_is_the_model_saved(tmp_path):
    """model.teachers: the fitted view stacks the teachers and, last, the saved one-CNN student; the student pays
    its cross-entropy plus w * KL(teachers' mean || student), the teachers their cross-entropy alone."""
    cfg = ModelConfig(teachers=2, members=1)
    student = build_model(cfg, SHAPE, 4, np.zeros(SHAPE[1]), np.ones(SHAPE[1]))
    fitted = with_teachers(student, cfg, SHAPE, 4, np.zeros(SHAPE[1]), np.ones(SHAPE[1]))
    assert fitted.output.shape[1:] == (3, 4) and student.name == "audio_cnn"
    x = np.random.default_rng(5).normal(size=(5, *SHAPE)).astype(np.float32)
    each = fitted.predict(x, verbose=0)
    np.testing.assert_allclose(each[:, -1], student.predict(x, verbose=0), atol=1e-6)
    y = np.eye(4, dtype=np.float32)[[0, 1, 2, 3, 0]]
    ce = -np.log(each[np.arange(5), :, y.argmax(1)])
    mean = each[:, :2].mean(axis=1)
    kd = (mean * (np.log(mean) - np.log(each[:, -1]))).sum(axis=-1)
    expected = (ce[:, 0] + ce[:, 1] + ce[:, 2] + 0.5 * kd) / 3
    np.testing.assert_allclose(MemberCrossentropy(distil=0.5, reduction=None)(y, each), expected, rtol=1e-4)
    with pytest.raises(ValueError, match="members: 1"):
        ModelConfig(teachers=2, members=2)
