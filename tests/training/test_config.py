"""Config: YAML + dotted overrides, validated once, with errors that name the key."""

import re
from pathlib import Path

import pytest

from training.config import ConfigError, TrainConfig, load_config


def test_defaults_equal_the_written_fsdd_recipe():
    assert load_config("configs/fsdd.yaml") == TrainConfig()


def test_the_recipes_are_the_measured_ablation_variants():
    """configs/fsdd-members3.yaml claims the figures of scripts/ablation.py's vtlp+members3, and the defaults those
    of vtlp+ema+members2-30ep: each must be that variant."""
    from scripts import ablation

    variant = lambda name: load_config(None, list(ablation.VARIANTS[name][1]))  # noqa: E731
    assert load_config("configs/fsdd-members3.yaml") == variant("vtlp+members3") != TrainConfig()
    assert variant("vtlp+ema+members2-30ep") == TrainConfig() != variant("vtlp+ema+members2")


def test_overrides_are_typed_and_nested():
    cfg = load_config(None, ["fit.epochs=3", "augment.enabled=false", "features.kind=logmel", "class_weight=none"])
    assert cfg.fit.epochs == 3 and cfg.augment.enabled is False
    assert cfg.features.kind == "logmel" and cfg.class_weight == "none"


def test_custom_class_weights_from_yaml():
    cfg = load_config(None, ["class_weight={'0': 2.0, '1': 0.5}"])
    assert cfg.class_weight == {"0": 2.0, "1": 0.5}


@pytest.mark.parametrize(
    "override, message",
    [
        ("fit.epoch=3", "fit.epoch: Extra inputs"),
        ("fit.learning_rate=-1", "fit.learning_rate"),
        ("features.kind=wavelet", "features.kind"),
        ("augment.stretch_range=[1.2, 0.8]", r"is not \(low, high\)"),
        ("class_weight={'a': 0}", "must be > 0"),
        ("model.conv_blocks=[]", "model.conv_blocks"),
        ("nonsense", "not of the form"),
    ],
)
def test_bad_values_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")


def test_typo_in_a_config_file_fails_early(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("fit:\n  epochz: 3\n")
    with pytest.raises(ConfigError, match="fit.epochz"):
        load_config(path)


def test_training_turns_cmn_on_but_old_metadata_keeps_it_off():
    """Metadata written before `cmn` existed has no such key: it must keep meaning 'off'."""
    from audiocore.config import FeatureConfig

    assert TrainConfig().features.cmn is True
    assert FeatureConfig.model_validate({"sample_rate": 8000}).cmn is False


def test_a_partial_features_section_keeps_trainings_cmn():
    """`--set features.n_mfcc=13` (or a YAML features section without cmn) changes n_mfcc only: it once built
    FeatureConfig's own default, cmn off, so such ablation rows silently lost the mean normalisation."""
    assert load_config(overrides=["features.n_mfcc=13"]).features.cmn is True
    assert load_config(overrides=["features.kind=logmel"]).features.cmn is True
    assert load_config(overrides=["features.cmn=false"]).features.cmn is False


def test_a_config_file_names_its_teacher_relative_to_itself(tmp_path):
    (tmp_path / "teacher.yaml").write_text("fit:\n  epochs: 2\n")
    (tmp_path / "student.yaml").write_text("teacher:\n  config: teacher.yaml\nmodel:\n  members: 1\n")
    assert load_config(tmp_path / "student.yaml").teacher.config == tmp_path / "teacher.yaml"
    # on the command line, relative to the working directory
    assert load_config(None, ["teacher.config=configs/fsdd-speech.yaml", "model.members=1"]).teacher.config == (
        Path("configs/fsdd-speech.yaml").resolve()
    )


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            ["teacher.config=nope.yaml", "model.members=1"],
            f"teacher.config: config file {re.escape(str(Path('nope.yaml').resolve()))} does not exist",
        ),
        (["teacher.config=configs/fsdd-speech.yaml", "model.members=3"], "teaches one CNN"),
        (["teacher.config=configs/fsdd.yaml", "model.teachers=2", "model.members=1"], "teaches one CNN"),
        (["teacher.config=configs/fsdd-speech.yaml"], "teaches one CNN: set .*members=1"),  # the defaults' two CNNs
        (["teacher.config=configs/fsdd-speech.yaml", "teacher.weight=0.8"], "teacher.weight"),
        (["teacher.config=configs/fsdd-speech.yaml", "teacher.temperature=0"], "teacher.temperature"),
    ],
)
def test_bad_teachers_are_refused_by_name(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, overrides)


def test_a_backbone_student_is_refused():
    with pytest.raises(ConfigError, match="teaches one CNN"):
        load_config("configs/fsdd-speech.yaml", ["teacher.config=configs/fsdd.yaml"])


def test_a_teacher_with_a_teacher_is_refused(tmp_path):
    inner = f"teacher:\n  config: {Path('configs/fsdd-speech.yaml').resolve()}\nmodel:\n  members: 1\n"
    (tmp_path / "inner.yaml").write_text(inner)
    with pytest.raises(ConfigError, match="has a teacher of its own"):
        load_config(None, [f"teacher.config={tmp_path / 'inner.yaml'}", "model.members=1"])
