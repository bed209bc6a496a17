"""Every runtime setting of the service, read once from `AUDIOCLF_*` environment variables and validated at start.

Preprocessing parameters and labels are deliberately absent: they belong to the model and come from its metadata.
"""

from functools import lru_cache
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AUDIOCLF_", extra="ignore", frozen=True)

    model_tag: str = Field("audio_classifier:latest", description="BentoML store tag of the model to serve.")
    # Keras's own variable (not AUDIOCLF_*): Keras reads it when it is imported, in every worker; read here to be
    # validated before any worker starts. The same .keras artifact runs on each (tests/service/test_model.py).
    keras_backend: Literal["tensorflow", "jax", "torch"] = Field(
        "tensorflow",
        validation_alias="KERAS_BACKEND",
        description="Keras backend that runs the model: tensorflow (the CPU image), jax or torch (GPU machines).",
    )
    default_top_k: int = Field(3, ge=1, le=1000, description="Predictions returned when a request names no top_k.")
    max_upload_bytes: int = Field(10 * 2**20, ge=1024, description="Largest accepted encoded file.")
    max_audio_seconds: float = Field(60.0, gt=0, le=3600, description="Longest accepted clip (declared or decoded).")
    max_batch_size: int = Field(
        64, ge=1, description="Most clips one model call takes (adaptive batching; 1 turns it off)."
    )
    # Sheds load only under real overload: 64 clients on 2 cores queue for well under a second.
    max_latency_ms: int = Field(
        10_000, ge=10, description="Longest a clip may queue for the model; past it the request gets 503 overloaded."
    )
    max_batch_wait_ms: float = Field(
        2.0,
        ge=0,
        le=1000,
        description="Longest the batcher waits for company after a clip arrives while the model is idle.",
    )
    workers: int = Field(
        2, ge=1, le=64, description="Worker processes, each a whole server with its own model and batcher."
    )
    model_threads: int = Field(1, ge=1, le=64, description="TensorFlow threads per worker (intra- and inter-op).")
    preprocess_threads: int = Field(2, ge=1, le=64, description="Decoding threads per worker.")
    host: str = Field("0.0.0.0", description="Address HTTP and gRPC listen on.")
    http_port: int = Field(3000, ge=1, le=65535)
    grpc_port: int = Field(50051, ge=1, le=65535)
    request_timeout_s: float = Field(
        60.0,
        gt=0,
        description="BentoML's per-request timeout (504); an upload must arrive within 80 % of it (408).",
    )
    # Per worker, HTTP and gRPC together: the service takes workers x this at once. It bounds memory
    # (each request holds up to max_upload_bytes plus its audio) and turns overload into fast 503s, not a queue.
    max_concurrency: int = Field(
        64, ge=1, le=10_000, description="Classification requests one worker takes at once; more get 503."
    )
    tracing: bool = Field(
        False,
        description="OpenTelemetry spans for classification requests (BentoML's tracing; configure its exporter). "
        "Off, they are not created at all: with no exporter they were a fifth of a worker's request-handling CPU.",
    )
    worker_loss_grace_s: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="With fewer workers running than configured for this long, /livez fails (a container's killed "
        "worker is not restarted).",
    )
    drain_s: float = Field(
        2.0, ge=0, le=300, description="After SIGTERM: seconds a worker serves on, already unready, before it stops."
    )

    @field_validator("keras_backend", mode="before")
    @classmethod
    def _unset_backend(cls, value):
        return value or "tensorflow"  # set but empty: Keras takes its default, so do we

    @model_validator(mode="after")
    def _distinct_ports(self) -> "Settings":
        if self.http_port == self.grpc_port:
            raise ValueError(f"http_port and grpc_port are both {self.http_port}")
        return self

    @property
    def model_name(self) -> str:
        """The name part of the tag: the model name gRPC clients address (`audio_classifier`)."""
        return self.model_tag.split(":", 1)[0]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
