"""gRPC against the real server with an unmodified OIP client (tritonclient): training's accuracy, the same answers
as HTTP, gRPC status codes for bad input, standard health checking and reflection."""

import io
import logging

import grpc
import numpy as np
import pytest
import requests
import soundfile as sf
import tritonclient.grpc as triton
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
from tritonclient.utils import InferenceServerException

pytestmark = pytest.mark.e2e
log = logging.getLogger(__name__)
MODEL = "audio_classifier"


@pytest.fixture(scope="module")
def client(server):
    with triton.InferenceServerClient(server.grpc) as c:
        yield c


def infer(client, files: list[bytes], **kwargs):
    audio = triton.InferInput("audio", [len(files)], "BYTES")
    audio.set_data_from_numpy(np.array(files, dtype=object))
    return client.infer(MODEL, [audio], **kwargs)


def test_server_and_model_metadata(client, server):
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready(MODEL) and not client.is_model_ready("other_model")
    meta = client.get_model_metadata(MODEL, as_json=True)
    assert meta["name"] == MODEL and meta["versions"] == [server.tag.split(":")[1]]
    assert [(t["name"], t["datatype"]) for t in meta["inputs"]] == [("audio", "BYTES")]
    assert [(t["name"], t["datatype"]) for t in meta["outputs"]] == [("label", "BYTES"), ("score", "FP32")]
    assert client.get_server_metadata(as_json=True)["name"] == "audioclf"


def test_test_clips_over_grpc_give_the_training_accuracy(client, trained_model):
    clips = trained_model.test_clips
    predicted = []
    for lo in range(0, len(clips), 20):  # 20 files per request: N > 1 is part of the contract
        result = infer(client, [path.read_bytes() for path, _ in clips[lo : lo + 20]])
        labels, scores = result.as_numpy("label"), result.as_numpy("score")
        assert labels.shape == scores.shape == (len(clips[lo : lo + 20]), 3) and scores.dtype == np.float32
        assert (np.diff(scores, axis=1) <= 0).all()
        predicted += [row[0].decode() for row in labels]
    accuracy = np.mean([p == label for p, (_, label) in zip(predicted, clips, strict=True)])
    log.info(
        "gRPC: %.4f of %d test clips right; training recorded %.4f", accuracy, len(clips), trained_model.test_accuracy
    )
    assert accuracy == pytest.approx(trained_model.test_accuracy, abs=1e-9)


def test_grpc_and_http_give_the_same_answers(client, server, trained_model, instrument_flac):
    files = [path.read_bytes() for path, _ in trained_model.test_clips[::30]] + [instrument_flac.read_bytes()]
    result = infer(client, files, parameters={"top_k": 4})
    for i, data in enumerate(files):
        body = requests.post(f"{server.http}/classify", files={"audio": ("a", data)}, data={"top_k": 4}, timeout=60)
        expected = body.json()["predictions"]
        assert [label.decode() for label in result.as_numpy("label")[i]] == [p["label"] for p in expected]
        np.testing.assert_allclose(result.as_numpy("score")[i], [p["score"] for p in expected], atol=2e-6)


def test_only_the_requested_outputs_come_back(client, digit_encodings):
    result = infer(client, [digit_encodings["wav"]], outputs=[triton.InferRequestedOutput("label")])
    assert result.as_numpy("label").shape == (1, 3) and result.as_numpy("score") is None


def _wav(seconds: float, amplitude: float) -> bytes:
    t = np.arange(int(seconds * 8000)) / 8000
    buf = io.BytesIO()
    sf.write(buf, (amplitude * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 8000, format="WAV")
    return buf.getvalue()


def _expect(code: str, status: str, call) -> None:
    with pytest.raises(InferenceServerException) as info:
        call()
    assert info.value.status() == f"StatusCode.{status}", info.value.message()
    assert code in info.value.message()


@pytest.mark.parametrize(
    "case, files, status, code",
    [
        ("empty", [b""], "INVALID_ARGUMENT", "empty"),
        ("not audio", [b"hello world" * 50], "INVALID_ARGUMENT", "unsupported_format"),
        ("silent", [_wav(1.0, 0.0)], "INVALID_ARGUMENT", "silent"),
        ("too long", [_wav(31.0, 0.3)], "RESOURCE_EXHAUSTED", "too_long"),
        ("too large", [bytes(2_100_000)], "RESOURCE_EXHAUSTED", "too_large"),
        ("message over the limit", [bytes(3_500_000)], "RESOURCE_EXHAUSTED", "larger than max"),
        ("one bad file among good ones", "mixed", "INVALID_ARGUMENT", "audio[1]: "),
    ],
)
def test_bad_audio_gets_its_grpc_status(client, server, digit_encodings, case, files, status, code):
    if files == "mixed":
        files = [digit_encodings["wav"], b"", digit_encodings["flac"]]
    _expect(code, status, lambda: infer(client, files))
    assert client.is_server_ready() and server.ready()


def test_bad_requests_get_their_grpc_status(client, digit_encodings):
    wav = digit_encodings["wav"]
    _expect("not served", "NOT_FOUND", lambda: client.infer("nope", [_input("audio", [wav])]))
    _expect("invalid_argument", "INVALID_ARGUMENT", lambda: infer(client, [wav], parameters={"top_k": 0}))
    _expect("missing", "INVALID_ARGUMENT", lambda: client.infer(MODEL, [_input("sound", [wav])]))
    fp32 = triton.InferInput("audio", [1], "FP32")
    fp32.set_data_from_numpy(np.zeros(1, np.float32))
    _expect("must be BYTES", "INVALID_ARGUMENT", lambda: client.infer(MODEL, [fp32]))
    _expect(
        "unknown output",
        "INVALID_ARGUMENT",
        lambda: infer(client, [wav], outputs=[triton.InferRequestedOutput("logits")]),
    )


def _input(name: str, files: list[bytes]):
    tensor = triton.InferInput(name, [len(files)], "BYTES")
    tensor.set_data_from_numpy(np.array(files, dtype=object))
    return tensor


def test_standard_health_checking_and_reflection(server):
    with grpc.insecure_channel(server.grpc) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "inference.GRPCInferenceService"):
            status = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status
            assert status == health_pb2.HealthCheckResponse.SERVING
        services = set(ProtoReflectionDescriptorDatabase(channel).get_services())
    assert {
        "inference.GRPCInferenceService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    } <= services
