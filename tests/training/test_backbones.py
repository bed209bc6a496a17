"""The pretrained backbone (musicnn's MagnaTagATune VGG, weights from the PyPI wheel): its port to Keras 3 tags real
instrument clips as musicnn would, its settings are checked before any work, and a transfer run end to end leaves a
model that loads and predicts like any other (features in, probabilities out)."""

import csv
import json

import numpy as np
import pytest
import requests

from audiocore import artifact
from audiocore.aggregate import PooledLogistic
from audiocore.decode import decode
from audiocore.features import extract
from devtools.server import start_server, stop
from tests.conftest import INSTRUMENTS, ROOT, serving
from training import backbones
from training.cli import main
from training.config import ConfigError, load_config

MUSICNN_CONFIG = ROOT / "configs" / "instruments-musicnn.yaml"
POOLED_CONFIG = ROOT / "configs" / "instruments-pooled.yaml"
FOUR_CLASSES = ("Cello", "Flute", "Hi_hat", "Snare_drum")


def four_instruments(tmp_path, per_class=8):
    """A manifest of the first `per_class` real clips of four instruments."""
    manifest = tmp_path / "manifest.csv"
    with open(manifest, "w", newline="") as handle:
        w = csv.writer(handle)
        w.writerow(["path", "label"])
        for label in FOUR_CLASSES:
            for path in sorted((INSTRUMENTS / label).glob("*.flac"))[:per_class]:
                w.writerow([path, label])
    return manifest


@pytest.fixture(scope="module")
def tagger():
    return backbones.musicnn_vgg(with_tags=True)


@pytest.mark.parametrize(("folder", "tag"), [("Flute", "flute"), ("Acoustic_guitar", "guitar"), ("Bass_drum", "drums")])
def test_the_ported_weights_tag_instruments_as_musicnn_does(tagger, folder, tag):
    """The checkpoint's own output layer, on our features of six real clips of a class: the instrument's MTT tag
    among the top 3 of the mean tag probabilities (single clips vary: one guitar clip reads 'classical, slow,
    strings'). Weights loaded into the wrong layers, or features other than musicnn's, give unrelated tags."""
    cfg = load_config(MUSICNN_CONFIG).features
    means = []
    for path in sorted((INSTRUMENTS / folder).glob("*.flac"))[:6]:
        windows = extract(decode(path, cfg.sample_rate, max_seconds=600).samples, cfg).windows
        embedding, tags = (np.asarray(a) for a in tagger.predict_on_batch(windows))
        assert embedding.shape == (len(windows), backbones.EMBEDDING_DIM)
        means.append(tags.mean(axis=0))
    top3 = [backbones.MTT_TAGS[i] for i in np.argsort(-np.mean(means, axis=0))[:3]]
    assert tag in top3, top3


def test_the_backbone_is_frozen(tagger):
    assert not tagger.trainable and tagger.trainable_weights == []


def test_features_other_than_musicnns_are_refused_naming_the_setting():
    with pytest.raises(ConfigError, match="n_mels"):
        load_config(MUSICNN_CONFIG, ["features.n_mels=64"])
    with pytest.raises(ConfigError, match="augment.enabled=false"):
        load_config(MUSICNN_CONFIG, ["augment.enabled=true"])


def test_a_pooled_head_without_a_backbone_is_refused_naming_the_setting():
    with pytest.raises(ConfigError, match="model.backbone"):
        load_config(ROOT / "configs" / "instruments.yaml", ["model.head=pooled_logistic"])
    assert load_config(POOLED_CONFIG).model.head == "pooled_logistic"


def test_a_missing_package_says_how_to_install_it(monkeypatch):
    monkeypatch.setattr(backbones.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(backbones.BackboneError, match="requirements-pretrained.txt"):
        backbones.checkpoint_prefix()


@pytest.mark.e2e
def test_transfer_training_end_to_end(tmp_path):
    """4 instruments x 8 real clips through the CLI: the saved model is backbone + head, loads without training
    code and gives probabilities over the four classes for a clip."""
    manifest = four_instruments(tmp_path)
    out = tmp_path / "run"
    args = ["--config", str(MUSICNN_CONFIG), "--epochs", "5", "--no-register", "--set", "data.test_fraction=0.25"]
    assert main(["train", "--data", str(manifest), "--out", str(out), *args]) == 0
    model, meta, _ = artifact.load(out / "model")
    assert meta.features.scale == "log1p" and meta.training_config["model"]["backbone"] == "musicnn_vgg"
    assert model.input_shape == (None, 187, 96) and model.output_shape == (None, 4)
    path = sorted((INSTRUMENTS / "Flute").glob("*.flac"))[0]
    probs = model.predict(extract(decode(path, 16000, max_seconds=600).samples, meta.features).windows, verbose=0)
    assert np.allclose(probs.sum(axis=1), 1, atol=1e-4)
    assert (out / "report.md").is_file()


@pytest.mark.e2e
def test_pooled_head_trains_registers_and_serves_end_to_end(tmp_path):
    """The pooled_logistic recipe through the CLI and the real server: the artifact is the backbone (window
    embeddings out) plus clip_head.npz; the server's clip scores over HTTP are the head applied to the mean and max
    of the model's window embeddings, as training evaluated them, and each segment gets the head's scores too."""
    out = tmp_path / "run"
    args = ["--config", str(POOLED_CONFIG), "--set", "data.test_fraction=0.25"]  # val: one clip per class
    assert main(["train", "--data", str(four_instruments(tmp_path)), "--out", str(out), *args]) == 0
    model, meta, head = artifact.load(out / "model")
    assert isinstance(head, PooledLogistic) and meta.aggregation == "pooled_logistic"
    assert model.output_shape == (None, backbones.EMBEDDING_DIM) and head.n_classes == 4
    assert (out / "model" / artifact.HEAD_FILE).is_file() and "pooled_logistic" in (out / "report.md").read_text()
    tag = json.loads((out / "metrics.json").read_text())["bentoml_tag"]

    clips = [sorted((INSTRUMENTS / label).glob("*.flac"))[9] for label in ("Flute", "Snare_drum")]  # not trained on
    proc, srv = start_server(tag, tmp_path / "server.log", workers=1)
    try:
        serving(proc, srv)
        for path in clips:
            answer = requests.post(
                f"{srv.http}/classify",
                files={"audio": (path.name, path.read_bytes())},
                data={"top_k": 4, "segments": "true"},
                timeout=120,
            )
            assert answer.status_code == 200, answer.text
            body = answer.json()
            windows = extract(decode(path, 16000, max_seconds=600).samples, meta.features).windows
            expected = head.clip(np.asarray(model.predict_on_batch(windows)))
            served = {p["label"]: p["score"] for p in body["predictions"]}
            assert sorted(served) == sorted(FOUR_CLASSES)
            for label, score in served.items():
                assert abs(score - expected[meta.labels.index(label)]) <= 1e-4, (label, score, expected)
            assert len(body["segments"]) == len(windows)
            for segment in body["segments"]:
                assert abs(sum(p["score"] for p in segment["predictions"]) - 1) <= 1e-4
    finally:
        stop(proc)
