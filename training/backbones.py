"""Pretrained feature extractors whose weights ship inside a PyPI package (nothing is downloaded at run time).

Each is rebuilt with Keras 3 layers and its weights are read from the package's files, so the package's own code is
never imported; the weights then live in our saved model: serving needs neither the package nor this module.
`build(name, features)` gives the frozen backbone for a config; `check_features(name, features)` says, before any
work, which feature settings differ from what the backbone was trained on.

`musicnn_vgg`: the VGG-like music tagger of musicnn (Pons & Serra, 2019; PyPI `musicnn` 0.1.0, ISC licence,
Music Technology Group, Universitat Pompeu Fabra), trained on MagnaTagATune's 50 tags, which include guitar,
violin, cello, flute, harp, piano, drums and strings. The package stores TensorFlow 1 checkpoints, read with
TensorFlow's checkpoint reader (musicnn's TensorFlow 1 graph code and its numpy < 1.17 pin are never imported).
Input: musicnn's log-mel patches, (187 frames, 96 bands): 16 kHz, n_fft 512, hop 256, log10(1 + 10000 * mel)
(audiocore's `scale: log1p`). Output: a fixed-length embedding of the patch (`EMBEDDING_DIM`): the last pooling
layer flattened (2 x 128) and the mean and the max over time and frequency of the 2nd-4th layers' feature maps
(3 x 128 each), so both mid-level timbre and the network's top-level summary reach the classifier.

`speech_embedding`: Google's speech embedding (Lin et al., 2020, "Training keyword spotters with limited and
synthesized speech data", arXiv:2002.01322; TF Hub google/speech_embedding/1, Apache-2.0), trained on a large
corpus of speech to tell words apart whoever says them: on FSDD's held-out speakers it is the lever the CNN
trained on five voices lacks (docs/results.md). Its weights are read from the ONNX file that the PyPI package
`openwakeword` 0.4.0 ships (openWakeWord's re-implementation of the TF Hub module; code Apache-2.0). Its README
says the model is Google's under Apache-2.0, and also that "all of the included pre-trained models" are CC BY-NC-SA
4.0 because of their training data: docs/training.md quotes both. The file is parsed with the `onnx` package.
Input: 32 log-mel bands at 16 kHz (n_fft 512, hop 160, 60-3800 Hz, librosa's Slaney filter bank: the ONNX file's
own filter matrix, equal to the last digit), in dB with an 80 dB floor; the first layer maps audiocore's dB to the
model's scale. The network slides over time with a stride of 8 frames and a receptive field of 76 (0.76 s), so it
runs over a whole window at once (any window of 76 frames or more) and gives one 96-dimensional embedding per 8
frames; the output is their mean and their max
over the window (`SPEECH_EMBEDDING_DIM` = 192).
"""

import importlib.util
from pathlib import Path

import keras
import numpy as np

from audiocore.config import FeatureConfig

PACKAGE = "musicnn"
INSTALL_HINT = "pip install --no-deps --require-hashes -r requirements-pretrained.txt (the Makefile's set-up does it)"
# musicnn's input, as audiocore settings: 187 frames of 256 samples at 16 kHz = 47,616 samples per patch
MUSICNN_FEATURES = {
    "sample_rate": 16000,
    "window_seconds": 2.976,
    "kind": "logmel",
    "n_fft": 512,
    "hop_length": 256,
    "n_mels": 96,
    "fmin": 0.0,
    "fmax": None,
    "scale": "log1p",
    "cmn": False,
    "deltas": False,
}
# (pool size, strides) after each of the five conv layers, as musicnn.models.vgg
POOLS = [((4, 1), (2, 2)), ((2, 2), (2, 2)), ((2, 2), (2, 2)), ((2, 2), (2, 2)), ((4, 4), (4, 4))]
FILTERS = 128
BN_EPSILON = 1e-3  # tf.compat.v1.layers.batch_normalization's default
EMBEDDING_DIM = 2 * FILTERS + 6 * FILTERS
# MagnaTagATune's tags in the order of the checkpoint's output layer (musicnn.configuration.MTT_LABELS)
MTT_TAGS = (
    "guitar classical slow techno strings drums electronic rock fast piano ambient beat violin vocal synth female "
    "indian opera male singing vocals no_vocals harpsichord loud quiet flute woman male_vocal no_vocal pop soft "
    "sitar solo man classic choir voice new_age dance male_voice female_vocal beats harp cello no_voice weird "
    "country metal female_voice choral"
).split()


# speech_embedding's input, as audiocore settings (window_seconds is the recipe's: any window of >= 76 frames)
SPEECH_FEATURES = {
    "sample_rate": 16000,
    "kind": "logmel",
    "n_fft": 512,
    "hop_length": 160,
    "n_mels": 32,
    "fmin": 60.0,
    "fmax": 3800.0,
    "scale": "db",
    "top_db": 80.0,
    "cmn": False,
    "deltas": False,
}
SPEECH_PACKAGE = "openwakeword"
SPEECH_ONNX = "resources/models/embedding_model.onnx"
SPEECH_FRAMES = 76  # the network's receptive field in frames; it strides 8 frames
SPEECH_EMBEDDING_DIM = 2 * 96
# openWakeWord feeds the model 10*log10 of the mel power of 16-bit integer samples, divided by 10, plus 2;
# audiocore's samples are floats in [-1, 1], i.e. 20*log10(32767) dB lower.
SPEECH_INPUT_OFFSET = 2.0 + 2.0 * float(np.log10(32767.0))

BACKBONE_FEATURES = {
    "musicnn_vgg": (MUSICNN_FEATURES, "configs/instruments-musicnn.yaml"),
    "speech_embedding": (SPEECH_FEATURES, "configs/fsdd-speech.yaml"),
}


class BackboneError(RuntimeError):
    """The pretrained weights cannot be found or do not fit the features."""


def check_features(backbone: str, cfg: FeatureConfig) -> None:
    """Raise ValueError naming every feature setting that differs from what `backbone` was trained on."""
    expected, recipe = BACKBONE_FEATURES[backbone]
    got = cfg.model_dump()
    wrong = {k: got[k] for k, v in expected.items() if got[k] != v}
    if wrong:
        raise ValueError(
            f"model.backbone={backbone} needs its input features {expected}; these differ: {wrong} ({recipe} has them)"
        )
    if backbone == "speech_embedding" and cfg.frames_per_window < SPEECH_FRAMES:
        raise ValueError(
            f"model.backbone=speech_embedding needs windows of at least {SPEECH_FRAMES} frames (0.76 s); "
            f"window_seconds={cfg.window_seconds} gives {cfg.frames_per_window}"
        )


def build(backbone: str, features: FeatureConfig) -> keras.Model:
    """The frozen backbone named by model.backbone, for windows of these (checked) features."""
    check_features(backbone, features)
    if backbone == "musicnn_vgg":
        return musicnn_vgg()
    return speech_embedding(features.frames_per_window)


def package_folder(package: str) -> Path:
    """Where an installed package's files are (found without importing it)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise BackboneError(f"the pretrained weights come from the PyPI package {package}: {INSTALL_HINT}")
    return Path(next(iter(spec.submodule_search_locations)))


def checkpoint_prefix(model: str = "MTT_vgg") -> str:
    """A checkpoint inside the installed musicnn package."""
    folder = package_folder(PACKAGE) / model
    if not (folder / ".index").is_file():
        raise BackboneError(f"{folder} holds no checkpoint (musicnn 0.1.0 expected): {INSTALL_HINT}")
    return str(folder) + "/"  # the checkpoint's files are named ".index" and ".data-00000-of-00001"


def musicnn_vgg(with_tags: bool = False, checkpoint: str = "MTT_vgg", name: str = "musicnn_vgg") -> keras.Model:
    """(batch, 187, 96) log-mel patches -> (batch, EMBEDDING_DIM) embeddings; `with_tags` adds a second output, the
    50 MTT tag probabilities of the checkpoint's own output layer (for checking the weights: a classifier on the
    backbone uses the embedding only). Every layer is frozen; batch normalisation uses the checkpoint's moving
    statistics."""
    import tensorflow as tf  # reads the TensorFlow 1 checkpoint; not needed once the weights are in a model

    reader = tf.compat.v1.train.NewCheckpointReader(checkpoint_prefix(checkpoint))

    def weights(*names: str) -> list[np.ndarray]:
        return [reader.get_tensor(n) for n in names]

    def batch_norm(x, i: int):
        scope = "batch_normalization" + (f"_{i}" if i else "")
        layer = keras.layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}_bn{i}")
        y = layer(x)
        layer.set_weights(weights(*(f"{scope}/{v}" for v in ("gamma", "beta", "moving_mean", "moving_variance"))))
        return y

    frames, bands = FeatureConfig(**MUSICNN_FEATURES).input_shape  # (187, 96)
    inputs = keras.Input((frames, bands), name="features")
    x = batch_norm(keras.layers.Reshape((frames, bands, 1))(inputs), 0)
    maps = []
    for i, (pool, strides) in enumerate(POOLS, start=1):
        conv = keras.layers.Conv2D(FILTERS, 3, padding="same", activation="relu", name=f"{name}_conv{i}")
        x = conv(x)
        conv.set_weights(weights(f"{i}CNN/kernel", f"{i}CNN/bias"))
        x = keras.layers.MaxPooling2D(pool, strides, name=f"{name}_pool{i}")(batch_norm(x, i))
        maps.append(x)
    top = keras.layers.Flatten(name=f"{name}_flat")(x)
    mid = [keras.layers.GlobalAveragePooling2D()(m) for m in maps[1:4]]
    mid += [keras.layers.GlobalMaxPooling2D()(m) for m in maps[1:4]]
    embedding = keras.layers.Concatenate(name=f"{name}_embedding")([top, *mid])
    outputs = embedding
    if with_tags:
        tagger = keras.layers.Dense(len(MTT_TAGS), activation="sigmoid", name=f"{name}_tags")
        outputs = [embedding, tagger(top)]
        tagger.set_weights(weights("dense/kernel", "dense/bias"))
    model = keras.Model(inputs, outputs, name=name)
    model.trainable = False
    return model


def speech_onnx_path() -> Path:
    """The embedding model's ONNX file inside the installed openwakeword package."""
    path = package_folder(SPEECH_PACKAGE) / SPEECH_ONNX
    if not path.is_file():
        raise BackboneError(f"{path} not found (openwakeword 0.4.0 ships it): {INSTALL_HINT}")
    return path


def speech_embedding(frames: int, name: str = "speech_embedding") -> keras.Model:
    """(batch, frames, 32) log-mel dB windows -> (batch, 192): the mean and the max over the window of Google's
    speech embedding, one per 8 frames. Rebuilt layer by layer from the ONNX graph (a plain chain: padding, 20
    convolutions, one batch normalisation, ReLU / leaky ReLU with a floor at -0.4, max pooling); frozen."""
    import onnx  # reads the weights; not needed once they are in a model
    from onnx import numpy_helper

    graph = onnx.load(str(speech_onnx_path())).graph
    init = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    inputs = keras.Input((frames, SPEECH_FEATURES["n_mels"]), name="features")
    x = keras.layers.Rescaling(0.1, offset=SPEECH_INPUT_OFFSET, name=f"{name}_scale")(inputs)
    x = keras.layers.Reshape((frames, SPEECH_FEATURES["n_mels"], 1))(x)
    layers: list[keras.layers.Layer] = []
    for node in graph.node:  # the graph is NHWC in, NCHW inside: H = frames, W = mel bands
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        k = len(layers)
        if node.op_type == "Pad":  # (N, H, W, C) begins then ends: one band each side of the mel axis
            pads = init[node.input[1]]
            pad = ((int(pads[1]), int(pads[5])), (int(pads[2]), int(pads[6])))
            layers.append(keras.layers.ZeroPadding2D(pad, name=f"{name}_pad"))
        elif node.op_type == "Conv":
            kernel = init[node.input[1]].transpose(2, 3, 1, 0)  # (out, in, h, w) -> (h, w, in, out)
            bias = init[node.input[2]] if len(node.input) > 2 else None
            pads = list(attrs.get("pads", [0, 0, 0, 0]))  # (frames begin, bands begin, frames end, bands end)
            same_bands = [0, (kernel.shape[1] - 1) // 2] * 2
            if any(pads) and (pads != same_bands or kernel.shape[0] != 1):
                raise BackboneError(f"{node.name}: padding {pads} is neither none nor 'same' along the bands")
            conv = keras.layers.Conv2D(
                kernel.shape[-1],
                kernel.shape[:2],
                padding="same" if pads[1] else "valid",  # 'same' pads only the width-3 axis: the bands
                use_bias=bias is not None,
                name=f"{name}_conv{k}",
            )
            conv.build((None, None, None, kernel.shape[2]))
            conv.set_weights([kernel] if bias is None else [kernel, bias])
            layers.append(conv)
        elif node.op_type == "BatchNormalization":
            bn = keras.layers.BatchNormalization(epsilon=attrs["epsilon"], name=f"{name}_bn{k}")
            bn.build((None, None, None, init[node.input[1]].shape[0]))
            bn.set_weights([init[i] for i in node.input[1:5]])  # scale, bias, mean, variance
            layers.append(bn)
        elif node.op_type == "Relu":
            layers.append(keras.layers.ReLU(name=f"{name}_relu{k}"))
        elif node.op_type == "LeakyRelu":
            layers.append(keras.layers.LeakyReLU(negative_slope=attrs["alpha"], name=f"{name}_leaky{k}"))
        elif node.op_type == "Max":  # max(x, floor) = relu(x - floor) + floor, in built-in layers
            floor = float(init[node.input[1]].ravel()[0])
            layers.append(keras.layers.Rescaling(1.0, offset=-floor, name=f"{name}_lift{k}"))
            layers.append(keras.layers.ReLU(name=f"{name}_floor{k}"))
            layers.append(keras.layers.Rescaling(1.0, offset=floor, name=f"{name}_drop{k}"))
        elif node.op_type == "MaxPool":
            layers.append(keras.layers.MaxPooling2D(attrs["kernel_shape"], attrs["strides"], name=f"{name}_pool{k}"))
        elif node.op_type != "Reshape":  # the two reshapes only switch NHWC / NCHW
            raise BackboneError(f"{SPEECH_ONNX}: operation {node.op_type} is not part of the known graph")
    for layer in layers:
        x = layer(x)
    steps = keras.layers.Reshape((-1, x.shape[-1]), name=f"{name}_steps")(x)  # (batch, positions, 96)
    pooled = [keras.layers.GlobalAveragePooling1D()(steps), keras.layers.GlobalMaxPooling1D()(steps)]
    model = keras.Model(inputs, keras.layers.Concatenate(name=f"{name}_embedding")(pooled), name=name)
    model.trainable = False
    return model


def speech_embedding_steps(model: keras.Model) -> keras.Model:
    """The same network's embeddings before pooling, (batch, positions, 96): for checking the port."""
    return keras.Model(model.input, model.get_layer(f"{model.name}_steps").output)
