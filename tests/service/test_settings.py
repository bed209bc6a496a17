"""Settings: every knob comes from an AUDIOCLF_* variable, is validated once, and a bad value names itself."""

import pytest
from pydantic import ValidationError

from service.settings import Settings


def test_defaults_serve_the_latest_model_on_the_documented_ports(monkeypatch):
    for name in [n for n in __import__("os").environ if n.startswith("AUDIOCLF_")]:
        monkeypatch.delenv(name)
    s = Settings()
    assert (s.model_tag, s.model_name) == ("audio_classifier:latest", "audio_classifier")
    assert (s.http_port, s.grpc_port) == (3000, 50051)
    assert s.default_top_k == 3 and s.max_batch_size > 1


def test_environment_overrides_each_setting(monkeypatch):
    monkeypatch.setenv("AUDIOCLF_MODEL_TAG", "digits:abc123")
    monkeypatch.setenv("AUDIOCLF_DEFAULT_TOP_K", "5")
    monkeypatch.setenv("AUDIOCLF_MAX_UPLOAD_BYTES", "123456")
    monkeypatch.setenv("AUDIOCLF_MAX_AUDIO_SECONDS", "12.5")
    monkeypatch.setenv("AUDIOCLF_MAX_BATCH_SIZE", "16")
    monkeypatch.setenv("AUDIOCLF_MAX_LATENCY_MS", "250")
    monkeypatch.setenv("AUDIOCLF_WORKERS", "2")
    monkeypatch.setenv("AUDIOCLF_MODEL_THREADS", "1")
    monkeypatch.setenv("AUDIOCLF_HTTP_PORT", "8080")
    monkeypatch.setenv("AUDIOCLF_GRPC_PORT", "9090")
    s = Settings()
    assert s.model_name == "digits" and s.default_top_k == 5
    assert (s.max_upload_bytes, s.max_audio_seconds, s.max_batch_size, s.max_latency_ms) == (123456, 12.5, 16, 250)
    assert (s.workers, s.model_threads, s.http_port, s.grpc_port) == (2, 1, 8080, 9090)


@pytest.mark.parametrize(
    "name, value",
    [
        ("DEFAULT_TOP_K", "0"),
        ("MAX_BATCH_SIZE", "0"),
        ("HTTP_PORT", "70000"),
        ("MAX_AUDIO_SECONDS", "-1"),
        ("WORKERS", "many"),
    ],
)
def test_invalid_values_are_refused_with_their_name(monkeypatch, name, value):
    monkeypatch.setenv(f"AUDIOCLF_{name}", value)
    with pytest.raises(ValidationError, match=name.lower()):
        Settings()


def test_http_and_grpc_cannot_share_a_port(monkeypatch):
    monkeypatch.setenv("AUDIOCLF_HTTP_PORT", "5000")
    monkeypatch.setenv("AUDIOCLF_GRPC_PORT", "5000")
    with pytest.raises(ValidationError, match="both 5000"):
        Settings()


def test_classification_routes_are_traced_only_when_asked(monkeypatch):
    """BentoML's OpenTelemetry middleware would make a span per request even with no exporter (a fifth of a worker's
    request CPU): the service config excludes the classification routes unless AUDIOCLF_TRACING is on."""
    from service import http_api
    from service.app import AudioClassifier

    assert AudioClassifier.config["tracing"]["excluded_urls"] == list(http_api.ROUTES)
    monkeypatch.setenv("AUDIOCLF_TRACING", "true")
    assert Settings().tracing is True


def test_the_keras_backend_is_kerass_own_variable_validated(monkeypatch):
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    assert Settings().keras_backend == "tensorflow"
    monkeypatch.setenv("KERAS_BACKEND", "")  # set but empty: Keras's default
    assert Settings().keras_backend == "tensorflow"
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    assert Settings().keras_backend == "jax"
    monkeypatch.setenv("KERAS_BACKEND", "theano")
    with pytest.raises(ValidationError, match="KERAS_BACKEND"):
        Settings()


def test_a_backend_that_is_not_installed_is_refused_before_serving():
    from service.model_check import ModelUnusable, check_backend

    check_backend("tensorflow")
    check_backend("jax")
    with pytest.raises(ModelUnusable, match="torch is not installed"):
        check_backend("torch")
