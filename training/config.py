"""TrainConfig: every training setting in one typed, validated object, loadable from YAML with dotted overrides.

Defaults train the FSDD digit model; `configs/*.yaml` hold the other recipes. Unknown keys are errors, so a typo
in a config file fails at start, not after an hour of training.
"""

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from audiocore.config import FeatureConfig


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataConfig(_Strict):
    val_fraction: float = Field(0.1, gt=0, lt=0.5, description="Share of non-test clips held out for validation.")
    test_fraction: float = Field(0.15, gt=0, lt=0.5, description="Used only when the data defines no test split.")
    group_column: str = Field("group", description="Manifest column whose values may not straddle computed splits.")
    test_groups: list[str] | None = Field(None, description="Put exactly these groups in test (held-out CV).")
    val_split: Literal["auto", "group", "clip"] = Field(
        "auto",
        description="How a computed validation set is drawn when the data has groups: 'group' keeps groups whole "
        "(validation measures new groups), 'clip' draws clips stratified from every training group (all groups "
        "are trained on; validation only steers early stopping). 'auto': 'clip' when test_groups holds groups out "
        "(the test set already measures new groups), else 'group'.",
    )
    min_clips_per_class: int = Field(5, ge=3)
    skip_bad_files: bool = Field(False, description="Skip unreadable files (listed in the report) instead of failing.")
    max_clip_seconds: float = Field(600.0, gt=0)
    cache_dir: Path | None = Field(
        None,
        description="Where decoded clips and features are cached (keyed by file content and settings, reused by "
        "later runs and cv folds). None: $AUDIOCLF_CACHE_DIR, else ~/.cache/audioclf/training.",
    )


class AugmentConfig(_Strict):
    """On-the-fly augmentation of training windows. Each transform fires with its own probability."""

    enabled: bool = True
    time_shift_s: float = Field(0.15, ge=0, description="Max random offset of the window within the clip.")
    # Stretch (speaking rate) and pitch (a frequency warp of the power spectrum, like vocal-tract-length
    # perturbation) on most windows: on FSDD's three hardest held-out speakers p=0.8 and +/-3 semitones measured
    # 0.831 mean against 0.821 with p=0.25, +/-2 (small; +0.052 on nicolas; docs/results.md, ablation).
    stretch_prob: float = Field(0.8, ge=0, le=1)
    stretch_range: tuple[float, float] = (0.85, 1.15)
    pitch_prob: float = Field(0.8, ge=0, le=1)
    pitch_semitones: float = Field(3.0, ge=0, le=12)
    noise_prob: float = Field(0.5, ge=0, le=1)
    snr_db_range: tuple[float, float] = (15.0, 40.0)
    gain_prob: float = Field(0.5, ge=0, le=1)
    gain_db_range: tuple[float, float] = (-6.0, 6.0)
    time_masks: int = Field(2, ge=0, description="SpecAugment: number of time masks.")
    time_mask_frames: int = Field(6, ge=0)
    freq_masks: int = Field(1, ge=0, description="SpecAugment: number of feature (frequency) masks.")
    freq_mask_bins: int = Field(2, ge=0)
    mixup_alpha: float = Field(
        0.0, ge=0, description="Mixup: blend pairs of training windows and their labels, weight ~ Beta(a, a); 0 = off."
    )

    @field_validator("stretch_range", "snr_db_range", "gain_db_range")
    @classmethod
    def _ordered(cls, v: tuple[float, float]) -> tuple[float, float]:
        if v[0] > v[1]:
            raise ValueError(f"range {v} is not (low, high)")
        return v

    @field_validator("stretch_range")
    @classmethod
    def _positive_rate(cls, v: tuple[float, float]) -> tuple[float, float]:
        if v[0] <= 0:
            raise ValueError("stretch rates must be > 0")
        return v


class ConvBlock(_Strict):
    filters: int = Field(gt=0)
    kernel_size: int = Field(3, gt=0)
    stride: int = Field(1, gt=0)
    padding: Literal["same", "valid"] = "same"
    batch_norm: bool = True
    dropout: float = Field(0.0, ge=0, lt=1, description="SpatialDropout2D after the block.")
    pool: int = Field(2, ge=1, description="Max-pool size after the block (1 = none).")
    residual: bool = Field(
        False,
        description="A ResNet basic block instead of one conv: conv-BN-ReLU-conv-BN plus the input (1x1 conv when "
        "the filters or stride change), then ReLU. Needs batch_norm.",
    )

    @model_validator(mode="after")
    def _residual_needs_bn(self) -> "ConvBlock":
        if self.residual and not self.batch_norm:
            raise ValueError("a residual block needs batch_norm")
        return self


class ModelConfig(_Strict):
    conv_blocks: list[ConvBlock] = Field(
        default_factory=lambda: [ConvBlock(filters=16), ConvBlock(filters=32), ConvBlock(filters=64, pool=1)],
        min_length=1,
    )
    # avg+max: max pooling finds a short word inside a mostly padded window; measured on FSDD it learns ~3x
    # faster than average pooling alone.
    global_pool: Literal["avg", "max", "avgmax"] = "avgmax"
    gru_units: int = Field(
        0,
        ge=0,
        description="A bidirectional GRU of this many units over the conv blocks' frames (frequency and channels "
        "flattened) before the global pooling, so the order of sounds within a window counts; 0 = none.",
    )
    backbone: Literal["none", "musicnn_vgg", "speech_embedding"] = Field(
        "none",
        description="A frozen pretrained network (training.backbones) turns each window into an embedding and only "
        "the head is trained, on embeddings computed once; the conv_blocks, global_pool and gru_units settings are "
        "then unused, and augment.enabled must be false. 'musicnn_vgg': a music tagger (weights from the PyPI "
        "package musicnn, ISC; configs/instruments-musicnn.yaml has its input features). 'speech_embedding': "
        "Google's speech embedding (Apache-2.0; weights from the ONNX file of the PyPI package openwakeword), for "
        "spoken words and new voices (configs/fsdd-speech.yaml has its input features).",
    )
    head: Literal["dense", "pooled_logistic"] = Field(
        "dense",
        description="With a backbone: 'dense' trains the dense_units head on single windows (a clip = the mean of its "
        "windows' probabilities); 'pooled_logistic' fits a multinomial logistic regression (scikit-learn, "
        "head_c) on each clip's mean and max window embedding (audiocore.aggregate.PooledLogistic).",
    )
    head_c: float = Field(
        0.3,
        gt=0,
        description="pooled_logistic: inverse L2 strength, as scikit-learn's C (0.3 from exploratory probes, where "
        "0.1-1 scored alike; not an ablation row of docs/results.md).",
    )
    # Two CNNs by default: with the weight averaging, over three seeds paired on FSDD's six held-out speakers, 0.904
    # mean and 0.842 worst against one CNN's 0.881 / 0.775 (+0.023 ± 0.005), official split 0.997-1.000, 1.20x to
    # serve; three are at the 1.5x serving bound (docs/results.md, "Two CNNs by default").
    members: int = Field(
        2,
        ge=1,
        le=8,
        description="CNNs trained side by side (each from its own initial weights, each on its own loss, in one "
        "fit) whose probabilities the saved model averages: an ensemble; serving and training cost grow with it. "
        "Unused with a backbone (its head is one model).",
    )
    teachers: int = Field(
        0,
        ge=0,
        le=8,
        description="0: off. N: N teacher CNNs fitted side by side with the one CNN that is saved, which learns "
        "from the labels and from the teachers' mean probabilities (fit.distil_weight): an ensemble's knowledge "
        "at one CNN's serving cost; training costs as N + 1 members. Needs members: 1.",
    )
    l2: float = Field(1e-4, ge=0)
    dense_units: list[int] = Field(default_factory=lambda: [64])
    dense_dropout: float = Field(0.3, ge=0, lt=1)
    # 0.9, not Keras's 0.99: with few steps per epoch the running statistics otherwise lag the weights and
    # inference collapses while training accuracy looks fine.
    bn_momentum: float = Field(0.9, gt=0, lt=1)

    @model_validator(mode="after")
    def _one_student(self) -> "ModelConfig":
        if self.teachers and self.members > 1:
            raise ValueError(
                "model.teachers distils into one CNN: set members: 1 (the defaults train two), or teachers: 0 for an "
                "ensemble"
            )
        return self


class FitConfig(_Strict):
    # 30 since two CNNs: +0.012 ± 0.003 over 20 on FSDD's six held-out speakers, three seeds paired; official split
    # 0.997 in 154-178 s on 2 cores, at the bound (docs/results.md, "Two CNNs by default", 30 epochs).
    epochs: int = Field(30, ge=1)
    batch_size: int = Field(64, ge=1)
    learning_rate: float = Field(2e-3, gt=0)
    lr_schedule: Literal["plateau", "cosine"] = Field(
        "plateau",
        description="'plateau': halve the rate when val loss stalls; 'cosine': linear warm-up over warmup_epochs, "
        "then cosine decay to ~0 at the last epoch.",
    )
    warmup_epochs: int = Field(1, ge=0, description="cosine only")
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    mutual_learning: float = Field(
        0.0,
        ge=0,
        description="Ensembles only (model.members > 1): weight of each member's KL divergence from the other "
        "members' mean probabilities (deep mutual learning); 0 trains the members independently.",
    )
    distil_weight: float = Field(
        1.0, ge=0, description="model.teachers > 0: weight of the student's KL divergence from the teachers' mean."
    )
    # 0.99: on FSDD's held-out speakers +0.015 and +0.025 mean over three speakers with two seeds and +0.010 over
    # all six, same fit time and serving cost; official split 0.997 as without (docs/results.md, weight averaging).
    ema_momentum: float = Field(
        0.99,
        ge=0,
        lt=1,
        description="0: off. Otherwise validate, early-stop on and save the exponential moving average of the "
        "weights over training steps (Keras's optimizer EMA, this momentum per step, capped so that it averages "
        "over at most ~3 epochs: training.train.ema_momentum) instead of the last step's.",
    )
    early_stopping_patience: int = Field(5, ge=1)
    reduce_lr_patience: int = Field(3, ge=1)
    reduce_lr_factor: float = Field(0.5, gt=0, lt=1)
    min_learning_rate: float = Field(1e-5, gt=0)
    tensorboard: bool = True
    augment_workers: int = Field(1, ge=1, le=64, description="Processes preparing augmented batches.")


class TeacherConfig(_Strict):
    config: Path | None = Field(
        None,
        description="None: off. A training config file (e.g. configs/fsdd-speech.yaml): a teacher trained with it "
        "on this run's split (its own features, model and fit; this run's data section and seed) before the "
        "CNN, whose training windows then learn from the labels blended with the teacher's clip probabilities. "
        "The teacher is not saved with the model: serving costs what the CNN costs.",
    )
    weight: float = Field(
        0.5,
        gt=0,
        le=0.5,
        description="Share of the teacher in each training target: (1 - weight) x one-hot + weight x teacher; at "
        "most 0.5, so the labelled class stays the largest entry (the one class weights look up).",
    )
    cross_fit: bool = Field(
        True,
        description="True: every training clip's teacher probabilities come from a teacher that did not train on "
        "it (one per training group, e.g. speaker, fitted on the other groups; k stratified folds without groups): "
        "how the teacher sees a voice it has not heard. False: one teacher on all training clips.",
    )
    temperature: float = Field(
        2.0, gt=0, description="The teacher's clip probabilities p become p^(1/T), renormalised: T > 1 softens them."
    )

    @field_validator("config")
    @classmethod
    def _absolute(cls, v: Path | None) -> Path | None:
        return None if v is None else Path(v).resolve()  # a relative path is relative to the working directory


# Where training's recipe differs from FeatureConfig's own defaults (which keep old model metadata meaning what it
# meant): applied to a partial `features` section too, so `--set features.n_mfcc=13` changes only n_mfcc.
TRAINING_FEATURE_DEFAULTS = {"cmn": True}


class TrainConfig(_Strict):
    seed: int = 1234
    features: FeatureConfig = Field(default_factory=lambda: FeatureConfig(**TRAINING_FEATURE_DEFAULTS))
    data: DataConfig = Field(default_factory=DataConfig)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    fit: FitConfig = Field(default_factory=FitConfig)
    teacher: TeacherConfig = Field(default_factory=TeacherConfig)
    class_weight: Literal["balanced", "none"] | dict[str, float] = Field(
        "balanced", description="'balanced' (scikit-learn's formula on training windows), 'none', or label->weight."
    )
    model_name: str = Field("audio_classifier", pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    register_model: bool = Field(True, description="Also save the model into the BentoML model store.")

    @field_validator("features", mode="before")
    @classmethod
    def _training_feature_defaults(cls, v: Any) -> Any:
        return {**TRAINING_FEATURE_DEFAULTS, **v} if isinstance(v, dict) else v

    @model_validator(mode="after")
    def _custom_weights_positive(self) -> "TrainConfig":
        if isinstance(self.class_weight, dict) and any(w <= 0 for w in self.class_weight.values()):
            raise ValueError("custom class weights must be > 0")
        return self

    @model_validator(mode="after")
    def _backbone_fits(self) -> "TrainConfig":
        if self.model.head == "pooled_logistic" and self.model.backbone == "none":
            raise ValueError("model.head=pooled_logistic pools a backbone's embeddings: set model.backbone too")
        if self.model.backbone != "none":
            from training.backbones import check_features

            check_features(self.model.backbone, self.features)
            if self.augment.enabled:
                raise ValueError(
                    f"model.backbone={self.model.backbone} trains its head on embeddings computed once per window, "
                    "so windows cannot be re-augmented each epoch: set augment.enabled=false"
                )
        return self

    @model_validator(mode="after")
    def _teacher_loads(self) -> "TrainConfig":
        if self.teacher.config is None:
            return self
        if self.model.backbone != "none" or self.model.teachers or self.model.members > 1:
            raise ValueError(
                "teacher.config teaches one CNN: set model.members=1 (the defaults train two), model.backbone=none "
                "and model.teachers=0, or teacher.config=null (no teacher)"
            )
        try:
            inner = load_config(self.teacher.config)
        except ConfigError as exc:
            raise ValueError(f"teacher.config: {exc}") from None
        if inner.teacher.config is not None:
            raise ValueError(f"teacher.config {self.teacher.config} has a teacher of its own; one level only")
        return self


class ConfigError(ValueError):
    """A config file or override is invalid; the message names the key."""


def load_config(path: Path | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """Defaults <- YAML file <- `key.sub=value` overrides (values parsed as YAML), validated once."""
    raw: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        loaded = yaml.safe_load(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level")
        raw = loaded
        teacher = raw.get("teacher")
        if isinstance(teacher, dict) and isinstance(teacher.get("config"), str):
            # a config file names its teacher's file relative to itself (an override: relative to the cwd)
            teacher["config"] = str(path.parent / teacher["config"])
    for item in overrides or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} is not of the form key.sub=value")
        node = raw
        *parents, leaf = key.strip().split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {part} is not a section")
        node[leaf] = yaml.safe_load(value)
    try:
        return TrainConfig.model_validate(raw)
    except ValidationError as exc:
        lines = [f"  {'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise ConfigError("invalid training config:\n" + "\n".join(lines)) from None
