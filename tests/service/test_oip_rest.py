"""The Open Inference Protocol over REST against the real server, through an unmodified `tritonclient.http`: health
and metadata, inference with binary tensor data (the client's default) and with JSON (base64 elements), several
files, top_k and requested outputs, the same answers as gRPC, and every refusal with the status of service.errors and
the same message as over gRPC; raw HTTP for what no client library sends (malformed JSON, a bad header length).
A server of its own shows readiness false until warm-up and from SIGTERM on, and the admission and upload limits."""

import base64
import json
import os
import signal
import socket
import time

import numpy as np
import pytest
import requests
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from devtools import rawhttp
from devtools.hostile import cases
from devtools.server import log_tail, start_server, stop, wait_ready
from service.errors import STATUS
from service.grpc_oip import message_limit
from service.settings import Settings

pytestmark = pytest.mark.e2e
MODEL = "audio_classifier"


@pytest.fixture(scope="module")
def client(server):
    with triton.InferenceServerClient(server.http.removeprefix("http://"), network_timeout=120) as c:
        yield c


@pytest.fixture(scope="module")
def grpc_client(server):
    with triton_grpc.InferenceServerClient(server.grpc) as c:
        yield c


def _input(files: list, name: str = "audio", binary: bool = True):
    tensor = triton.InferInput(name, [len(files)], "BYTES")
    tensor.set_data_from_numpy(np.array(files, dtype=object), binary_data=binary)
    return tensor


def infer(client, files: list[bytes], **kwargs):
    return client.infer(MODEL, [_input(files)], **kwargs)


def grpc_infer(grpc_client, files: list[bytes], **kwargs):
    tensor = triton_grpc.InferInput("audio", [len(files)], "BYTES")
    tensor.set_data_from_numpy(np.array(files, dtype=object))
    return grpc_client.infer(MODEL, [tensor], **kwargs)


def refusal(call) -> InferenceServerException:
    with pytest.raises(InferenceServerException) as info:
        call()
    return info.value


def grpc_message(call) -> str:
    return refusal(call).message()


def test_health_and_metadata(client, grpc_client, server):
    version = server.tag.split(":")[1]
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready(MODEL) and client.is_model_ready(MODEL, version)
    assert not client.is_model_ready("other_model") and not client.is_model_ready(MODEL, "999")
    assert client.get_server_metadata() == {
        "name": "audioclf",
        "version": grpc_client.get_server_metadata(as_json=True)["version"],
        "extensions": ["binary_tensor_data"],
    }
    meta = client.get_model_metadata(MODEL)
    assert meta == client.get_model_metadata(MODEL, version)
    assert meta["name"] == MODEL and meta["versions"] == [version] and meta["platform"] == "keras"
    assert meta["inputs"] == [{"name": "audio", "datatype": "BYTES", "shape": [-1]}]
    assert meta["outputs"] == [
        {"name": "label", "datatype": "BYTES", "shape": [-1, -1]},
        {"name": "score", "datatype": "FP32", "shape": [-1, -1]},
    ]
    over_grpc = grpc_client.get_model_metadata(MODEL, as_json=True)
    assert [(t["name"], t["datatype"]) for t in over_grpc["inputs"] + over_grpc["outputs"]] == [
        (t["name"], t["datatype"]) for t in meta["inputs"] + meta["outputs"]
    ]


def test_several_files_in_binary_and_json_give_grpcs_answers(client, grpc_client, trained_model, instrument_flac):
    files = [path.read_bytes() for path, _ in trained_model.test_clips[::30]] + [instrument_flac.read_bytes()]
    over_grpc = grpc_infer(grpc_client, files, parameters={"top_k": 4})
    labels, scores = over_grpc.as_numpy("label"), over_grpc.as_numpy("score")
    assert labels.shape == (len(files), 4)

    binary = infer(client, files, parameters={"top_k": 4})  # tritonclient's default: binary tensor data both ways
    assert binary.get_response()["model_version"] == trained_model.tag.split(":")[1]
    assert (binary.as_numpy("label") == labels).all()
    assert binary.as_numpy("score").dtype == np.float32 and (binary.as_numpy("score") == scores).all()

    encoded = [base64.b64encode(data) for data in files]  # JSON has no bytes: each element is base64
    outputs = [triton.InferRequestedOutput(name, binary_data=False) for name in ("label", "score")]
    plain = client.infer(MODEL, [_input(encoded, binary=False)], outputs=outputs, parameters={"top_k": 4})
    response = plain.get_response()
    assert [o["name"] for o in response["outputs"]] == ["label", "score"]
    assert all("data" in o and "parameters" not in o for o in response["outputs"])
    assert (plain.as_numpy("label").astype(bytes) == labels).all()
    assert (plain.as_numpy("score") == scores).all()


def test_top_k_and_requested_outputs(client, grpc_client, digit_encodings):
    wav = digit_encodings["wav"]
    assert infer(client, [wav]).as_numpy("score").shape == (1, 3)  # AUDIOCLF_DEFAULT_TOP_K
    assert infer(client, [wav], parameters={"top_k": 1}).as_numpy("label").shape == (1, 1)
    assert infer(client, [wav], parameters={"top_k": 50}).as_numpy("label").shape == (1, 10)  # all the labels
    assert infer(client, [wav], parameters={"top_k": "2"}).as_numpy("label").shape == (1, 2)
    only = infer(client, [wav], outputs=[triton.InferRequestedOutput("label")])
    assert only.as_numpy("label").shape == (1, 3) and only.as_numpy("score") is None
    mixed = infer(client, [wav], outputs=[triton.InferRequestedOutput("score", binary_data=False)])
    assert mixed.get_response()["outputs"][0]["data"] and mixed.as_numpy("label") is None
    for top_k in (0, "three", 2.5, True):
        rest = refusal(lambda top_k=top_k: infer(client, [wav], parameters={"top_k": top_k}))
        assert rest.status() == "400" and "invalid_argument" in rest.message(), rest.message()
    message = grpc_message(lambda: grpc_infer(grpc_client, [wav], parameters={"top_k": 0}))
    assert refusal(lambda: infer(client, [wav], parameters={"top_k": 0})).message() == message


def test_bad_requests_get_grpcs_reason_and_message(client, grpc_client, digit_encodings):
    wav = digit_encodings["wav"]
    fp32 = triton.InferInput("audio", [1], "FP32")
    fp32.set_data_from_numpy(np.zeros(1, np.float32))
    fp32_grpc = triton_grpc.InferInput("audio", [1], "FP32")
    fp32_grpc.set_data_from_numpy(np.zeros(1, np.float32))
    matrix = triton.InferInput("audio", [1, 1], "BYTES")
    matrix.set_data_from_numpy(np.array([[wav]], dtype=object))
    matrix_grpc = triton_grpc.InferInput("audio", [1, 1], "BYTES")
    matrix_grpc.set_data_from_numpy(np.array([[wav]], dtype=object))
    sound = triton_grpc.InferInput("sound", [1], "BYTES")
    sound.set_data_from_numpy(np.array([wav], dtype=object))
    pairs = [  # (REST call, gRPC call, reason, HTTP status)
        (
            lambda: client.infer("nope", [_input([wav])]),
            lambda: grpc_client.infer("nope", [sound]),
            "unknown_model",
            "404",
        ),
        (
            lambda: client.infer(MODEL, [_input([wav])], model_version="999"),
            lambda: grpc_infer(grpc_client, [wav], model_version="999"),
            "unknown_model",
            "404",
        ),
        (
            lambda: client.get_model_metadata(MODEL, "999"),
            lambda: grpc_client.get_model_metadata(MODEL, "999"),
            "unknown_model",
            "404",
        ),
        (
            lambda: client.infer(MODEL, [_input([wav], "sound")]),
            lambda: grpc_client.infer(MODEL, [sound]),
            "missing",
            "400",
        ),
        (lambda: client.infer(MODEL, [fp32]), lambda: grpc_client.infer(MODEL, [fp32_grpc]), "invalid_argument", "400"),
        (
            lambda: client.infer(MODEL, [matrix]),
            lambda: grpc_client.infer(MODEL, [matrix_grpc]),
            "invalid_argument",
            "400",
        ),
        (
            lambda: infer(client, [wav], outputs=[triton.InferRequestedOutput("logits")]),
            lambda: grpc_infer(grpc_client, [wav], outputs=[triton_grpc.InferRequestedOutput("logits")]),
            "invalid_argument",
            "400",
        ),
        (lambda: infer(client, [wav, b""]), lambda: grpc_infer(grpc_client, [wav, b""]), "empty", "400"),
    ]
    for rest_call, grpc_call, reason, status in pairs:
        rest = refusal(rest_call)
        assert rest.status() == status, rest.message()
        assert rest.message().startswith(f"{reason}: ") and rest.message() == grpc_message(grpc_call)
    assert client.is_server_ready()


def test_json_elements_must_be_base64(client):
    for element in ("not base64!", "Zm9v\u00e9", "abc"):  # a bad character, non-ASCII, bad padding
        rest = refusal(lambda element=element: client.infer(MODEL, [_input([element.encode()], binary=False)]))
        assert rest.status() == "400" and rest.message().startswith("invalid_argument: audio[0] is not a base64"), (
            rest.message()
        )
    assert client.is_server_ready()


@pytest.fixture(scope="module")
def hostile(digit_wav):
    return {c.name: c for c in cases(digit_wav.read_bytes())}


def _hostile_names():
    from tests.conftest import FSDD

    return [c.name for c in cases((FSDD / "recordings" / "7_jackson_12.wav").read_bytes()) if not c.http_only]


@pytest.mark.parametrize("name", _hostile_names())
def test_hostile_files_get_the_same_reason_as_over_grpc(client, grpc_client, hostile, name):
    case = hostile[name]
    if case.code is None:
        assert infer(client, [case.data]).as_numpy("label").shape == (1, 3)
        return
    rest = refusal(lambda: infer(client, [case.data]))
    assert rest.status() == str(STATUS[case.code].http) == str(case.http)
    assert rest.message().startswith(f"{case.code}: audio[0]: "), rest.message()
    assert rest.message() == grpc_message(lambda: grpc_infer(grpc_client, [case.data]))
    assert client.is_server_ready()


def test_a_request_over_the_size_limit_gets_413(client, server):
    settings = Settings(
        **{k.removeprefix("AUDIOCLF_").lower(): v for k, v in server.env.items() if k.startswith("AUDIOCLF_")}
    )
    rest = refusal(lambda: infer(client, [bytes(message_limit(settings))]))  # the same limit as gRPC's messages
    assert rest.status() == "413" and rest.message().startswith("too_large: "), rest.message()
    head = f"POST /v2/models/{MODEL}/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\n"
    answer = rawhttp.exchange(server.http, head.encode() + b'{"inputs": [')  # refused from its declared length, unread
    assert answer.startswith(b"HTTP/1.1 413") and b"too_large" in answer, answer[:300]
    assert client.is_server_ready()


def _good_json(data: bytes) -> dict:
    return {"inputs": [{"name": "audio", "datatype": "BYTES", "shape": [1], "data": [base64.b64encode(data).decode()]}]}


def _malformed(wav: bytes) -> dict[str, tuple[bytes, dict, str]]:
    """name: (body, headers, words the error must contain)."""
    good = _good_json(wav)
    tensor = {k: v for k, v in good["inputs"][0].items() if k != "data"}
    packed = len(wav).to_bytes(4, "little") + wav

    def with_header(head: dict, tail: bytes) -> tuple[bytes, dict]:
        text = json.dumps(head).encode()
        return text + tail, {"Inference-Header-Content-Length": str(len(text))}

    def binary(size: int) -> dict:
        return {"inputs": [{**tensor, "parameters": {"binary_data_size": size}}]}

    def plain(request: dict, headers: dict | None = None) -> tuple[bytes, dict]:
        return json.dumps(request).encode(), headers or {}

    length = "Inference-Header-Content-Length"
    return {
        "not JSON": (b"{not json", {}, "not valid JSON"),
        "not UTF-8": (b"\xff\xfe\x00garbage", {}, "not valid JSON"),
        "nested 100000 deep": (b"[" * 100_000 + b"]" * 100_000, {}, "not valid JSON"),
        "an array": (b"[1, 2]", {}, "must be a JSON object"),
        "no inputs": (b"{}", {}, "must be a list"),
        "empty inputs": (b'{"inputs": []}', {}, "expected exactly one input"),
        "shape a string": (*plain({"inputs": [{**tensor, "shape": "1"}]}), "shape [N]"),
        "data a string": (*plain({"inputs": [{**tensor, "data": "x"}]}), "no 'data'"),
        "data a number": (*plain({"inputs": [{**tensor, "data": [7]}]}), "base64"),
        "more data than the shape": (*plain({"inputs": [{**tensor, "data": ["", ""]}]}), "declares shape [1]"),
        "header length not a number": (b"{}xyz", {length: "abc"}, "must be a number"),
        "header length negative": (b"{}", {length: "-5"}, "must be a number"),
        "header length past the body": (b'{"inputs": []}', {length: "999"}, "but the body has"),
        "header length cuts the JSON": (b'{"inputs": [{"name"', {length: "10"}, "not valid JSON"),
        "binary size mismatch": (*with_header(binary(len(packed)), packed + b"x"), "binary_data_size"),
        "binary without a size": (*with_header(good, packed), "declares no binary_data_size"),
        "binary element cut short": (*with_header(binary(10), packed[:10]), "raw BYTES content"),
        "outputs not objects": (*plain({**good, "outputs": ["label"]}), "'outputs' must be"),
        "output parameter": (
            *plain({**good, "outputs": [{"name": "label", "parameters": {"classification": 2}}]}),
            "not supported",
        ),
        "binary_data_output not a flag": (
            *plain({**good, "parameters": {"binary_data_output": "yes"}}),
            "true or false",
        ),
        "shared memory": (
            *plain({"inputs": [{**tensor, "parameters": {"shared_memory_region": "r"}}]}),
            "shared memory",
        ),
        "gzip": (*plain(good, {"Content-Encoding": "gzip"}), "Content-Encoding"),
    }


@pytest.mark.parametrize("name", list(_malformed(b"")))
def test_malformed_requests_get_400_never_500(server, digit_encodings, name):
    body, headers, words = _malformed(digit_encodings["wav"])[name]
    response = requests.post(f"{server.http}/v2/models/{MODEL}/infer", data=body, headers=headers, timeout=30)
    assert response.status_code == 400, response.text[:300]
    error = response.json()["error"]
    reason = error.split(":")[0]
    assert reason in ("invalid_argument", "missing") and words in error, error
    assert response.headers["X-Audioclf-Error"] == reason
    assert server.ready()


def test_json_request_without_binary_gets_json_and_binary_data_output_gets_binary(server, digit_encodings):
    url = f"{server.http}/v2/models/{MODEL}/infer"
    good = {**_good_json(digit_encodings["wav"]), "id": "r-1", "parameters": {"top_k": 2}}
    plain = requests.post(url, json=good, timeout=30)
    assert plain.status_code == 200 and "Inference-Header-Content-Length" not in plain.headers
    body = plain.json()
    assert body["id"] == "r-1" and body["model_name"] == MODEL
    assert [(o["name"], o["datatype"], o["shape"], len(o["data"])) for o in body["outputs"]] == [
        ("label", "BYTES", [1, 2], 2),
        ("score", "FP32", [1, 2], 2),
    ]
    binary = requests.post(url, json={**good, "parameters": {"top_k": 2, "binary_data_output": True}}, timeout=30)
    length = int(binary.headers["Inference-Header-Content-Length"])
    head = json.loads(binary.content[:length])
    sizes = [o["parameters"]["binary_data_size"] for o in head["outputs"]]
    assert len(binary.content) == length + sum(sizes) and sizes[1] == 2 * 4  # two float32 scores
    scores = np.frombuffer(binary.content[length + sizes[0] :], "<f4")
    assert scores.tolist() == np.array(body["outputs"][1]["data"], np.float32).tolist()


def test_the_server_is_still_ready(client, server):
    assert client.is_server_ready() and server.ready(), log_tail(server.log)


# --- a server of its own: readiness around warm-up and SIGTERM, the admission slot, the upload timeout ---


@pytest.fixture(scope="module")
def own_server(trained_model, tmp_path_factory):
    """1 worker taking 1 request at a time, 5 s request timeout (4 s upload timeout). Readiness over REST is
    sampled from the first answer on, before warm-up is done, until ready."""
    folder = tmp_path_factory.mktemp("oip-rest")
    proc, srv = start_server(
        trained_model.tag,
        folder / "server.log",
        workers=1,
        max_concurrency=1,
        request_timeout_s=5,
        drain_s=2,
    )
    url = srv.http.removeprefix("http://")
    seen: list[tuple[bool, bool]] = []
    try:
        deadline = time.monotonic() + 300
        with triton.InferenceServerClient(url, connection_timeout=2, network_timeout=5) as client:
            while time.monotonic() < deadline and proc.poll() is None and not (seen and seen[-1] == (True, True)):
                try:
                    seen.append((client.is_server_ready(), client.is_model_ready(MODEL)))
                except Exception:  # not listening yet
                    time.sleep(0.2)
                time.sleep(0.05)
        wait_ready(proc, srv)
        yield proc, srv, seen
    finally:
        stop(proc)


def test_readiness_is_false_until_warmed_up(own_server):
    _, server, seen = own_server
    assert seen and seen[0] == (False, False) and seen[-1] == (True, True), (seen[:3], log_tail(server.log))


def test_past_the_admission_limit_503_with_retry_after_and_a_stalled_upload_408(own_server, digit_wav):
    _, server, _ = own_server
    host, port = server.http.removeprefix("http://").split(":")
    body = json.dumps(_good_json(digit_wav.read_bytes())).encode()
    head = f"POST /v2/models/{MODEL}/infer HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    with socket.create_connection((host, int(port)), timeout=30) as held:  # holds the one slot: half a body
        held.sendall(head + body[: len(body) // 2])
        time.sleep(0.5)
        response = requests.post(f"{server.http}/v2/models/{MODEL}/infer", data=body, timeout=30)
        assert response.status_code == 503 and response.headers["Retry-After"] == "1", response.text
        assert response.json()["error"].startswith("overloaded: ")
        answer = held.recv(65536)  # the rest never comes: cut off at the upload timeout (0.8 x 5 s)
    assert answer.startswith(b"HTTP/1.1 408") and b"upload_timeout" in answer, answer[:300]
    with triton.InferenceServerClient(server.http.removeprefix("http://")) as client:
        assert client.infer(MODEL, [_input([digit_wav.read_bytes()])]).as_numpy("label").shape == (1, 3)


def test_sigterm_turns_readiness_false(own_server):
    proc, server, _ = own_server
    os.kill(proc.pid, signal.SIGTERM)
    deadline, status = time.monotonic() + 10, 200
    while time.monotonic() < deadline and status == 200:
        status = requests.get(f"{server.http}/v2/health/ready", timeout=5).status_code
        time.sleep(0.05)
    assert status == 400  # the OIP's "false": draining, still answering (AUDIOCLF_DRAIN_S=2)
    proc.wait(timeout=60)
