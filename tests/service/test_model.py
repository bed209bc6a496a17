"""The served model on each Keras backend installed here: the same .keras artifact gives the same scores under
TensorFlow (the CPU image's backend) and JAX (what the GPU machine runs), and the real server serves on JAX with
the answers it gives on TensorFlow."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import requests

from devtools.server import start_server, stop
from tests.conftest import ROOT, serving

# Measured: 3.6e-7 between TensorFlow and JAX on the FSDD model's softmax (CPU, float32).
SCORE_TOLERANCE = 1e-5

SCORE = """
import json, sys
import numpy as np
from audiocore.clip import prepare
from audiocore.features import featurize
from service.model import ServedModel
tag, paths, out = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
model = ServedModel(tag, threads=1, backend=sys.argv[4])
cfg = model.info.features
windows = np.concatenate([prepare(open(p, "rb").read(), cfg).windows for p in paths])
np.save(out, model.predict(featurize(windows, cfg)))
"""


def scores_on(backend: str, tag: str, paths: list[str], out) -> np.ndarray:
    env = {**os.environ, "KERAS_BACKEND": backend}
    done = subprocess.run(
        [sys.executable, "-c", SCORE, tag, json.dumps(paths), str(out), backend],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return np.load(out)


def test_tensorflow_and_jax_give_the_same_scores(trained_model, tmp_path):
    paths = [str(p) for p, _ in trained_model.test_clips[::10]]
    tf_scores = scores_on("tensorflow", trained_model.tag, paths, tmp_path / "tf.npy")
    jax_scores = scores_on("jax", trained_model.tag, paths, tmp_path / "jax.npy")
    assert tf_scores.shape == jax_scores.shape and tf_scores.shape[1] == 10 and len(tf_scores) >= len(paths)
    assert np.abs(tf_scores - jax_scores).max() <= SCORE_TOLERANCE
    assert np.array_equal(tf_scores.argmax(axis=1), jax_scores.argmax(axis=1))


def test_a_model_loaded_on_another_backend_than_asked_is_refused(trained_model):
    from service.model import ServedModel

    with pytest.raises(RuntimeError, match="KERAS_BACKEND='jax'"):  # this process runs TensorFlow
        ServedModel(trained_model.tag, threads=1, backend="jax")


def test_the_server_serves_on_jax_as_on_tensorflow(trained_model, server, tmp_path):
    proc, on_jax = start_server(
        trained_model.tag, tmp_path / "server.log", extra_env={"KERAS_BACKEND": "jax"}, workers=1
    )
    try:
        serving(proc, on_jax)
        for path, _ in trained_model.test_clips[::60]:
            data = path.read_bytes()
            answers = [
                requests.post(
                    f"{srv.http}/classify", files={"audio": (path.name, data)}, data={"top_k": 10}, timeout=60
                )
                for srv in (server, on_jax)
            ]
            assert [a.status_code for a in answers] == [200, 200]
            tf_body, jax_body = (a.json() for a in answers)
            assert [p["label"] for p in jax_body["predictions"]] == [p["label"] for p in tf_body["predictions"]]
            for a, b in zip(tf_body["predictions"], jax_body["predictions"], strict=True):
                assert abs(a["score"] - b["score"]) <= SCORE_TOLERANCE
        assert "loaded on jax" in on_jax.log.read_text()
    finally:
        stop(proc)
