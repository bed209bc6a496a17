"""The CNN: standardisation (fitted on training data) -> configurable conv blocks -> dense head -> softmax; with
`model.members` > 1, that many such CNNs side by side whose probabilities are averaged (one saved model)."""

import keras
import numpy as np

from training.config import ConvBlock, ModelConfig


def build_model(
    cfg: ModelConfig, input_shape: tuple[int, int], n_classes: int, mean: np.ndarray, variance: np.ndarray
) -> keras.Model:
    """The model that is saved and served: features in, probabilities out. One CNN (`_cnn`), or with
    cfg.members > 1 that many CNNs of the same architecture (each its own initial weights) whose probabilities
    are averaged by the layer named "probabilities"; `member_outputs` gives the training view of them."""
    if cfg.members == 1:
        return _cnn(cfg, input_shape, n_classes, mean, variance, "audio_cnn")
    inputs = keras.Input(shape=input_shape, name="features")
    probs = [_cnn(cfg, input_shape, n_classes, mean, variance, f"member{k}")(inputs) for k in range(cfg.members)]
    return keras.Model(inputs, keras.layers.Average(name="probabilities")(probs), name="audio_cnn_ensemble")


def member_outputs(model: keras.Model) -> keras.Model:
    """The model to fit: for one CNN the model itself; for an ensemble the same layers with every member's
    probabilities stacked, (batch, members, classes), so that each member is fitted on its own loss
    (`MemberCrossentropy`) and the members stay independent, as in an ensemble trained one by one."""
    average = model.get_layer("probabilities")
    if not isinstance(average, keras.layers.Average):
        return model
    return _stacked(model.input, average.input, "members")


def with_teachers(
    student: keras.Model, cfg: ModelConfig, input_shape: tuple[int, int], n_classes: int, mean, variance
) -> keras.Model:
    """The model to fit when cfg.teachers > 0: that many teacher CNNs (the student's architecture, each its own
    initial weights) and the student, their probabilities stacked (batch, teachers + 1, classes), the student
    last. Only the student is saved and served; `MemberCrossentropy(distil=...)` teaches it the teachers' mean."""
    inputs = keras.Input(shape=input_shape, name="features")
    teachers = [_cnn(cfg, input_shape, n_classes, mean, variance, f"teacher{k}")(inputs) for k in range(cfg.teachers)]
    return _stacked(inputs, [*teachers, student(inputs)], "distillation")


def _stacked(inputs, probs: list, name: str) -> keras.Model:
    """inputs -> the (batch, classes) probabilities `probs` stacked as (batch, len(probs), classes)."""
    n_classes = probs[0].shape[-1]
    stacked = [keras.layers.Reshape((1, n_classes))(p) for p in probs]
    return keras.Model(inputs, keras.layers.Concatenate(axis=1, name="members")(stacked), name=name)


@keras.saving.register_keras_serializable(package="audioclf")
class MemberCrossentropy(keras.losses.Loss):
    """Categorical cross-entropy of every member's probabilities (batch, members, classes) against the one-hot
    labels, averaged over the members: the gradient each member receives is its own loss's.

    `mutual` > 0 adds deep mutual learning (Zhang et al., 2018): each member also pays `mutual` times the KL
    divergence from the other members' mean probabilities (held constant, so it is a target, not a gradient path)
    to its own, so that the members teach one another what they learnt of the classes' similarities.

    `distil` > 0: the last member is a student (with_teachers) and pays `distil` times the KL divergence from the
    other members' (the teachers') mean probabilities, held constant, on top of its cross-entropy (Hinton et al.,
    2015, at temperature 1); the teachers learn from the labels alone."""

    def __init__(
        self,
        label_smoothing: float = 0.0,
        mutual: float = 0.0,
        distil: float = 0.0,
        name: str = "member_crossentropy",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        self.label_smoothing = label_smoothing
        self.mutual = mutual
        self.distil = distil

    def call(self, y_true, y_pred):
        ops = keras.ops
        y = ops.broadcast_to(ops.expand_dims(y_true, 1), ops.shape(y_pred))
        loss = keras.losses.categorical_crossentropy(y, y_pred, label_smoothing=self.label_smoothing)
        n, eps = y_pred.shape[1], keras.config.epsilon()

        def kl(target, p):  # KL(target || p) over classes, the target held constant
            target = ops.stop_gradient(target)
            return ops.sum(target * (ops.log(target + eps) - ops.log(p + eps)), axis=-1)

        if self.mutual > 0 and n > 1:
            loss = loss + self.mutual * kl((ops.sum(y_pred, axis=1, keepdims=True) - y_pred) / (n - 1), y_pred)
        if self.distil > 0 and n > 1:
            teachers, student = y_pred[:, :-1], y_pred[:, -1]
            kd = self.distil * kl(ops.mean(teachers, axis=1), student)
            loss = ops.concatenate([loss[:, :-1], ops.expand_dims(loss[:, -1] + kd, 1)], axis=1)
        return ops.mean(loss, axis=1)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "label_smoothing": self.label_smoothing,
            "mutual": self.mutual,
            "distil": self.distil,
        }


@keras.saving.register_keras_serializable(package="audioclf")
def student_accuracy(y_true, y_pred):
    """Accuracy of the student (the last of the stacked outputs, with_teachers): what is served."""
    return keras.metrics.categorical_accuracy(y_true, y_pred[:, -1])


@keras.saving.register_keras_serializable(package="audioclf")
def ensemble_accuracy(y_true, y_pred):
    """Accuracy of the members' averaged probabilities (what is served), from the stacked training outputs."""
    return keras.metrics.categorical_accuracy(y_true, keras.ops.mean(y_pred, axis=1))


def _cnn(
    cfg: ModelConfig, input_shape: tuple[int, int], n_classes: int, mean: np.ndarray, variance: np.ndarray, name: str
) -> keras.Model:
    """A 2-D CNN over (frames, features). The Normalization layer carries the training statistics inside the
    saved model, so unnormalised features (and the NaN losses they cause) cannot reach the conv stack."""
    reg = keras.regularizers.L2(cfg.l2) if cfg.l2 > 0 else None
    inputs = keras.Input(shape=input_shape, name="features")
    x = keras.layers.Normalization(axis=-1, mean=mean, variance=variance, name="standardise")(inputs)
    x = keras.layers.Reshape((*input_shape, 1))(x)
    for i, block in enumerate(cfg.conv_blocks, start=1):
        x = (_residual if block.residual else _plain)(x, block, cfg, reg, str(i))
        if block.pool > 1:
            x = keras.layers.MaxPooling2D(block.pool, padding="same", name=f"pool{i}")(x)
        if block.dropout > 0:
            x = keras.layers.SpatialDropout2D(block.dropout)(x)
    avg, mx = keras.layers.GlobalAveragePooling2D, keras.layers.GlobalMaxPooling2D
    if cfg.gru_units:
        frames, bins, channels = x.shape[1:]
        x = keras.layers.Reshape((frames, bins * channels))(x)
        gru = keras.layers.GRU(cfg.gru_units, return_sequences=True, kernel_regularizer=reg)
        x = keras.layers.Bidirectional(gru, name="gru")(x)
        avg, mx = keras.layers.GlobalAveragePooling1D, keras.layers.GlobalMaxPooling1D
    pools = {"avg": [avg()], "max": [mx()]}
    pools["avgmax"] = pools["avg"] + pools["max"]
    pooled = [pool(x) for pool in pools[cfg.global_pool]]
    x = pooled[0] if len(pooled) == 1 else keras.layers.Concatenate()(pooled)
    for j, units in enumerate(cfg.dense_units, start=1):
        x = keras.layers.Dense(units, activation="relu", kernel_regularizer=reg, name=f"dense{j}")(x)
        if cfg.dense_dropout > 0:
            x = keras.layers.Dropout(cfg.dense_dropout)(x)
    outputs = keras.layers.Dense(n_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=name)


def build_head(
    cfg: ModelConfig, embedding_dim: int, n_classes: int, mean: np.ndarray, variance: np.ndarray
) -> keras.Model:
    """The classifier trained on a frozen backbone's embeddings: standardisation (training embeddings' statistics)
    -> dropout -> cfg.dense_units ReLU layers -> softmax, with cfg.l2 on every kernel."""
    reg = keras.regularizers.L2(cfg.l2) if cfg.l2 > 0 else None
    inputs = keras.Input(shape=(embedding_dim,), name="embedding")
    x = keras.layers.Normalization(axis=-1, mean=mean, variance=variance, name="standardise")(inputs)
    if cfg.dense_dropout > 0:
        x = keras.layers.Dropout(cfg.dense_dropout)(x)
    for j, units in enumerate(cfg.dense_units, start=1):
        x = keras.layers.Dense(units, activation="relu", kernel_regularizer=reg, name=f"dense{j}")(x)
        if cfg.dense_dropout > 0:
            x = keras.layers.Dropout(cfg.dense_dropout)(x)
    outputs = keras.layers.Dense(n_classes, activation="softmax", kernel_regularizer=reg, name="probabilities")(x)
    return keras.Model(inputs, outputs, name="head")


def on_backbone(backbone: keras.Model, head: keras.Model) -> keras.Model:
    """features -> backbone's embedding -> head's probabilities: the one model that is saved and served."""
    return keras.Model(backbone.input, head(backbone.output), name="audio_transfer")


def _conv_bn(x, block: ConvBlock, cfg: ModelConfig, reg, name: str, kernel: int, stride: int):
    x = keras.layers.Conv2D(
        block.filters,
        kernel,
        strides=stride,
        padding=block.padding,
        use_bias=not block.batch_norm,
        kernel_regularizer=reg,
        name=f"conv{name}",
    )(x)
    if block.batch_norm:
        x = keras.layers.BatchNormalization(momentum=cfg.bn_momentum, name=f"bn{name}")(x)
    return x


def _plain(x, block: ConvBlock, cfg: ModelConfig, reg, name: str):
    """conv -> BN -> ReLU."""
    return keras.layers.Activation("relu")(_conv_bn(x, block, cfg, reg, name, block.kernel_size, block.stride))


def _residual(x, block: ConvBlock, cfg: ModelConfig, reg, name: str):
    """ResNet basic block: ReLU(BN(conv(ReLU(BN(conv(x))))) + shortcut(x))."""
    y = keras.layers.Activation("relu")(_conv_bn(x, block, cfg, reg, f"{name}a", block.kernel_size, block.stride))
    y = _conv_bn(y, block, cfg, reg, f"{name}b", block.kernel_size, 1)
    shortcut = x
    if x.shape[-1] != block.filters or block.stride != 1:
        shortcut = _conv_bn(x, block, cfg, reg, f"{name}s", 1, block.stride)
    return keras.layers.Activation("relu")(keras.layers.Add(name=f"add{name}")([y, shortcut]))
