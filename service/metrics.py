"""The service's own Prometheus series, served beside BentoML's on /metrics.

They are created on first use, not at import: BentoML puts prometheus_client into multiprocess mode through an
environment variable its workers see only once they run, and a series created before that would be invisible.
In multiprocess mode every worker (entry and model alike) writes to the same directory, so /metrics on the HTTP
port shows the model workers' series too.
"""

from functools import lru_cache

# Seconds of audio: FSDD digits are ~0.5 s, instrument clips up to ~30 s, the default limit is 60 s.
DURATION_BUCKETS = (0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600)
# Seconds of work or waiting: from a 1 ms short clip to a long clip on a busy machine.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
WINDOW_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)


class Metrics:
    def __init__(self) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        self.predictions = Counter("audioclf_predictions", "Classified clips by their top label.", ["label"])
        self.audio_duration = Histogram(
            "audioclf_audio_duration_seconds", "Duration of the decoded clips.", buckets=DURATION_BUCKETS
        )
        self.preprocess = Histogram(
            "audioclf_preprocess_seconds",
            "Time to decode, resample and compute the features of one clip.",
            buckets=LATENCY_BUCKETS,
        )
        self.batch_wait = Histogram(
            "audioclf_batch_wait_seconds",
            "Time from the entry service sending a clip to the model service until the model call holding it starts: "
            "transport, queueing and the batcher's wait for company.",
            buckets=LATENCY_BUCKETS,
        )
        self.batch_windows = Histogram(
            "audioclf_batch_windows",
            "Windows scored by one model call (all clips of the batch).",
            buckets=WINDOW_BUCKETS,
        )
        self.errors = Counter(
            "audioclf_inference_errors",
            "Refused or failed classification requests, by reason (see docs/service.md) and protocol.",
            ["reason", "protocol"],
        )
        self.grpc_requests = Counter(
            "audioclf_grpc_requests", "Finished gRPC calls by full method name and status code.", ["method", "code"]
        )
        self._model_info = Gauge(
            "audioclf_model_info",
            "Always 1; its labels name the model being served.",
            ["model", "tag", "version", "features"],
            multiprocess_mode="max",
        )

    def model_info(self, tag: str, features: str) -> None:
        name, _, version = tag.partition(":")
        self._model_info.labels(model=name, tag=tag, version=version, features=features).set(1)

    def known_labels(self, labels: list[str]) -> None:
        """Create every label's series at 0, so rates and absent-label alerts work from the first scrape."""
        for label in labels:
            self.predictions.labels(label=label)


@lru_cache(maxsize=1)
def get() -> Metrics:
    return Metrics()
