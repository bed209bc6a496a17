"""HTTP against the real server: FSDD's test clips give training's accuracy, odd but valid audio is classified,
and every kind of bad upload gets its 4xx JSON error while the service stays ready."""

import io
import logging
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests
import soundfile as sf

pytestmark = pytest.mark.e2e
log = logging.getLogger(__name__)


def classify(server, data: bytes, filename: str = "clip.wav", **form) -> requests.Response:
    return requests.post(f"{server.http}/classify", files={"audio": (filename, data)}, data=form, timeout=120)


@pytest.fixture(scope="module")
def test_set_answers(server, trained_model) -> list[dict]:
    def one(item):
        path, _ = item
        response = classify(server, path.read_bytes(), path.name)
        assert response.status_code == 200, response.text
        return response.json()

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, trained_model.test_clips))


def test_test_clips_over_http_give_the_training_accuracy(test_set_answers, trained_model):
    labels = [label for _, label in trained_model.test_clips]
    correct = sum(a["predictions"][0]["label"] == label for a, label in zip(test_set_answers, labels, strict=True))
    log.info(
        "HTTP: %d/%d test clips right (%.4f); training recorded %.4f",
        correct,
        len(labels),
        correct / len(labels),
        trained_model.test_accuracy,
    )
    assert len(labels) == 300
    assert correct / len(labels) == pytest.approx(trained_model.test_accuracy, abs=1e-9)


def test_the_answer_names_the_model_and_ranks_its_predictions(test_set_answers, trained_model):
    for body in test_set_answers[:20]:
        assert body["model"] == trained_model.tag
        scores = [p["score"] for p in body["predictions"]]
        assert len(scores) == 3 and scores == sorted(scores, reverse=True) and 0 <= scores[-1] <= scores[0] <= 1
        assert body["sample_rate"] == 8000 and body["channels"] == 1 and 0.1 < body["duration_s"] < 3
        assert "segments" not in body


def test_top_k_and_segments(server, instrument_flac):
    data = instrument_flac.read_bytes()
    assert len(classify(server, data, top_k=1).json()["predictions"]) == 1
    assert len(classify(server, data, top_k=50).json()["predictions"]) == 10  # all the labels there are
    body = classify(server, data, segments="true", top_k=2).json()
    segments = body["segments"]
    assert len(segments) > 2 and all(len(s["predictions"]) == 2 for s in segments)
    starts = [s["start_s"] for s in segments]
    assert starts == sorted(starts) and starts[0] == 0
    assert segments[-1]["end_s"] == pytest.approx(body["duration_s"], abs=1e-3)


LOSSLESS = {"flac", "stereo_wav", "pcm24_wav", "wav_44k", "flac_48k", "float_wav"}


@pytest.mark.parametrize(
    "name", ["flac", "ogg", "mp3", "stereo_wav", "u8_wav", "pcm24_wav", "wav_44k", "flac_48k", "float_wav"]
)
def test_odd_but_valid_audio_is_classified_like_the_original(server, digit_encodings, name):
    reference = classify(server, digit_encodings["wav"]).json()["predictions"][0]["label"]
    response = classify(server, digit_encodings[name], filename=f"clip.{name.split('_')[-1]}")
    assert response.status_code == 200, response.text
    labels = [p["label"] for p in response.json()["predictions"]]
    # Lossless re-encodings keep the answer; 8-bit and lossy codecs add noise a small test model may trip over.
    assert labels[0] == reference if name in LOSSLESS else reference in labels


def test_an_mp3_named_wav_is_classified(server, digit_encodings):
    response = classify(server, digit_encodings["mp3"], filename="actually-an-mp3.wav")
    assert response.status_code == 200 and response.json()["sample_rate"] == 44100


def _wav(seconds: float, amplitude: float, rate: int = 8000) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    buf = io.BytesIO()
    sf.write(buf, (amplitude * np.sin(2 * np.pi * 440 * t)).astype(np.float32), rate, format="WAV")
    return buf.getvalue()


def _bad_uploads(digit_encodings, instrument_flac) -> dict[str, tuple[dict, int, str]]:
    """name -> (request, status, error code). The server runs with a 2 MB and 30 s limit (conftest)."""
    flac = instrument_flac.read_bytes()
    return {
        "empty file": ({"files": {"audio": ("a.wav", b"")}}, 400, "empty"),
        "header only": ({"files": {"audio": ("a.wav", digit_encodings["wav"][:44])}}, 400, "empty"),
        "not audio": (
            {"files": {"audio": ("notes.txt", b"these are not the samples you are looking for" * 9)}},
            415,
            "unsupported_format",
        ),
        "unsupported format": (
            {"files": {"audio": ("a.png", b"\x89PNG\r\n\x1a\n" + bytes(2000))}},
            415,
            "unsupported_format",
        ),
        "corrupt flac": ({"files": {"audio": ("a.flac", flac[: len(flac) // 2])}}, 422, "corrupt"),
        "silent": ({"files": {"audio": ("a.wav", _wav(1.0, 0.0))}}, 422, "silent"),
        "too long": ({"files": {"audio": ("a.wav", _wav(31.0, 0.3))}}, 413, "too_long"),
        "too large": ({"files": {"audio": ("a.wav", bytes(2_100_000))}}, 413, "too_large"),
        "too large, chunked": (
            {"data": iter([bytes(1_000_000)] * 3), "headers": {"Content-Type": "multipart/form-data; boundary=x"}},
            413,
            "too_large",
        ),
        "missing file": ({"data": {"top_k": "2"}, "files": {"other": ("a.wav", b"x")}}, 400, None),
        "top_k zero": ({"files": {"audio": ("a.wav", digit_encodings["wav"])}, "data": {"top_k": "0"}}, 400, None),
        "top_k not a number": (
            {"files": {"audio": ("a.wav", digit_encodings["wav"])}, "data": {"top_k": "x"}},
            400,
            None,
        ),
    }


BAD = [
    "empty file",
    "header only",
    "not audio",
    "unsupported format",
    "corrupt flac",
    "silent",
    "too long",
    "too large",
    "too large, chunked",
    "missing file",
    "top_k zero",
    "top_k not a number",
]


@pytest.mark.parametrize("case", BAD)
def test_bad_uploads_get_a_4xx_json_error_and_the_service_stays_ready(server, digit_encodings, instrument_flac, case):
    request, status, code = _bad_uploads(digit_encodings, instrument_flac)[case]
    response = requests.post(f"{server.http}/classify", timeout=60, **request)
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "detail"} and body["detail"]
    if code is not None:  # None: BentoML's own form validation (its error names the field in detail)
        assert body["error"] == code
    assert server.ready()
    assert classify(server, digit_encodings["wav"]).status_code == 200


def test_health_and_docs(server):
    assert requests.get(f"{server.http}/livez", timeout=5).status_code == 200
    assert requests.get(f"{server.http}/readyz", timeout=5).status_code == 200
    spec = requests.get(f"{server.http}/docs.json", timeout=10).json()
    assert "/classify" in spec["paths"]
    form = spec["paths"]["/classify"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert {"audio", "top_k", "segments"} <= set(form["properties"])
