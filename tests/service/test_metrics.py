"""/metrics: BentoML's series and the service's, valid for promtool, and scraped by a real Prometheus server."""

import shutil
import subprocess
import time

import numpy as np
import pytest
import requests
import tritonclient.grpc as triton
import tritonclient.http as triton_http
from prometheus_client.parser import text_string_to_metric_families

from devtools.server import free_port, log_tail

pytestmark = pytest.mark.e2e

OWN_SERIES = {
    "audioclf_predictions": "counter",
    "audioclf_audio_duration_seconds": "histogram",
    "audioclf_preprocess_seconds": "histogram",
    "audioclf_batch_wait_seconds": "histogram",
    "audioclf_batch_windows": "histogram",
    "audioclf_batch_size": "histogram",
    "audioclf_model_seconds": "histogram",
    "audioclf_requests": "counter",
    "audioclf_request_duration_seconds": "histogram",
    "audioclf_requests_in_flight": "gauge",
    "audioclf_process_cpu_seconds": "counter",
    "audioclf_process_resident_memory_bytes": "gauge",
    "audioclf_inference_errors": "counter",
    "audioclf_grpc_requests": "counter",
    "audioclf_model_info": "gauge",
}


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} is not installed: apt-get install -y prometheus (Debian's package has both tools)")
    return path


@pytest.fixture(scope="module")
def exposition(server, digit_encodings) -> str:
    """/metrics after one good and one silent upload over HTTP, one inference over gRPC, and one good and one bad
    inference over OIP REST."""
    url = f"{server.http}/classify"
    assert requests.post(url, files={"audio": ("a.wav", digit_encodings["wav"])}, timeout=60).status_code == 200
    silent = digit_encodings["wav"][:44] + bytes(8000)
    assert requests.post(url, files={"audio": ("a.wav", silent)}, timeout=60).status_code == 422
    with triton.InferenceServerClient(server.grpc) as client:
        audio = triton.InferInput("audio", [1], "BYTES")
        audio.set_data_from_numpy(np.array([digit_encodings["flac"]], dtype=object))
        client.infer("audio_classifier", [audio])
    with triton_http.InferenceServerClient(server.http.removeprefix("http://")) as client:
        audio = triton_http.InferInput("audio", [1], "BYTES")
        audio.set_data_from_numpy(np.array([digit_encodings["ogg"]], dtype=object))
        client.infer("audio_classifier", [audio])
        audio.set_data_from_numpy(np.array([b"not audio" * 20], dtype=object))
        with pytest.raises(triton_http.InferenceServerException):
            client.infer("audio_classifier", [audio])
    response = requests.get(f"{server.http}/metrics", timeout=10)
    assert response.status_code == 200
    return response.text


def test_promtool_accepts_the_exposition(exposition):
    done = subprocess.run([need("promtool"), "check", "metrics"], input=exposition, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_services_series_sit_beside_bentomls(exposition, server):
    families = {f.name: f for f in text_string_to_metric_families(exposition)}
    for name, kind in OWN_SERIES.items():
        assert families[name].type == kind, name
    for name in ("bentoml_service_request", "bentoml_service_request_duration_seconds"):
        assert name in families, name

    def value(family: str, sample: str, **labels) -> float:
        return sum(s.value for s in families[family].samples if s.name == sample and labels.items() <= s.labels.items())

    assert value("audioclf_model_info", "audioclf_model_info", tag=server.tag, model="audio_classifier") == 1
    assert value("audioclf_predictions", "audioclf_predictions_total") >= 2
    assert value("audioclf_inference_errors", "audioclf_inference_errors_total", reason="silent", protocol="http") >= 1
    infer = "/inference.GRPCInferenceService/ModelInfer"
    assert value("audioclf_grpc_requests", "audioclf_grpc_requests_total", method=infer, code="OK") >= 1
    assert value("audioclf_batch_wait_seconds", "audioclf_batch_wait_seconds_count") >= 2
    assert value("audioclf_batch_size", "audioclf_batch_size_count") >= 1
    assert value("audioclf_batch_size", "audioclf_batch_size_sum") >= 2  # clips scored
    assert value("audioclf_preprocess_seconds", "audioclf_preprocess_seconds_count") >= 2
    errors = "audioclf_inference_errors_total"
    assert value("audioclf_inference_errors", errors, reason="unsupported_format", protocol="rest") >= 1
    for protocol, status in (("http", "200"), ("http", "422"), ("grpc", "OK"), ("rest", "200"), ("rest", "415")):
        assert value("audioclf_requests", "audioclf_requests_total", protocol=protocol, status=status) >= 1
        assert value("audioclf_request_duration_seconds", "audioclf_request_duration_seconds_count", protocol=protocol)
    assert value("audioclf_process_resident_memory_bytes", "audioclf_process_resident_memory_bytes") > 50 * 2**20


def test_a_real_prometheus_scrapes_the_service(server, exposition, tmp_path):
    port = free_port()
    target = server.http.removeprefix("http://")
    (tmp_path / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"scrape_configs:\n  - job_name: audioclf\n    static_configs: [{{targets: ['{target}']}}]\n"
    )
    log = tmp_path / "prometheus.log"
    with open(log, "wb") as handle:
        proc = subprocess.Popen(
            [
                need("prometheus"),
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline, found = time.monotonic() + 90, []
        while time.monotonic() < deadline and not found:
            time.sleep(1)
            try:
                answer = requests.get(
                    f"http://127.0.0.1:{port}/api/v1/query",
                    params={"query": 'audioclf_model_info{job="audioclf"}'},
                    timeout=5,
                ).json()
            except requests.RequestException:
                continue
            found = answer.get("data", {}).get("result", [])
        assert found, f"Prometheus never returned the series:\n{log_tail(log)}"
        assert found[0]["metric"]["tag"] == server.tag and found[0]["value"][1] == "1"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
