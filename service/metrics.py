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
CLIP_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
PROTOCOLS = ("http", "grpc", "rest")  # /classify, OIP over gRPC, OIP over REST


class Metrics:
    def __init__(self) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        self.predictions = Counter("audioclf_predictions", "Classified clips by their top label.", ["label"])
        self.audio_duration = Histogram(
            "audioclf_audio_duration_seconds", "Duration of the decoded clips.", buckets=DURATION_BUCKETS
        )
        self.preprocess = Histogram(
            "audioclf_preprocess_seconds",
            "Time to decode, resample and cut one clip into the model's windows (features are computed per batch).",
            buckets=LATENCY_BUCKETS,
        )
        self.batch_wait = Histogram(
            "audioclf_batch_wait_seconds",
            "Time from a clip entering the batcher's queue until the model call holding it starts: queueing and the "
            "batcher's wait for company.",
            buckets=LATENCY_BUCKETS,
        )
        self.batch_size = Histogram(
            "audioclf_batch_size",
            "Clips scored by one model call (the in-process batcher's batch).",
            buckets=CLIP_BUCKETS,
        )
        self.model_seconds = Histogram(
            "audioclf_model_seconds",
            "Time one batch spends in features and the model call, all its clips together.",
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
        self.requests = Counter(
            "audioclf_requests",
            "Finished classification requests by protocol and status (HTTP status code for http and rest, gRPC status "
            "name for grpc).",
            ["protocol", "status"],
        )
        self.request_duration = Histogram(
            "audioclf_request_duration_seconds",
            "Time from a classification request's arrival to its answer, by protocol (uploads included for HTTP).",
            ["protocol"],
            buckets=LATENCY_BUCKETS,
        )
        self.in_flight = Gauge(
            "audioclf_requests_in_flight",
            "Classification requests accepted and not yet answered, by protocol (summed over the pod's workers).",
            ["protocol"],
            multiprocess_mode="livesum",
        )
        self.grpc_requests = Counter(
            "audioclf_grpc_requests", "Finished gRPC calls by full method name and status code.", ["method", "code"]
        )
        # BentoML's multiprocess mode exports no process_* series: each worker reports its own CPU and memory, so a
        # dashboard has them without cAdvisor (the pod's container_* series say the same from outside).
        self.cpu_seconds = Counter(
            "audioclf_process_cpu_seconds", "CPU time (user + system) spent by the service's worker processes."
        )
        self.resident_memory = Gauge(
            "audioclf_process_resident_memory_bytes",
            "Resident memory of the live worker processes (summed).",
            multiprocess_mode="livesum",
        )
        self._cpu_seen = 0.0
        self._model_info = Gauge(
            "audioclf_model_info",
            "Always 1; its labels name the model being served.",
            ["model", "tag", "version", "features"],
            multiprocess_mode="max",
        )

    def model_info(self, tag: str, features: str) -> None:
        name, _, version = tag.partition(":")
        self._model_info.labels(model=name, tag=tag, version=version, features=features).set(1)

    def sample_process(self) -> None:
        """Add this worker's CPU time since the last sample and set its resident memory (call every few seconds)."""
        import psutil

        proc = psutil.Process()
        times = proc.cpu_times()
        total = times.user + times.system
        self.cpu_seconds.inc(max(0.0, total - self._cpu_seen))
        self._cpu_seen = total
        self.resident_memory.set(proc.memory_info().rss)

    def known_labels(self, labels: list[str]) -> None:
        """Create every label's series at 0, so rates and absent-label alerts work from the first scrape."""
        for label in labels:
            self.predictions.labels(label=label)


@lru_cache(maxsize=1)
def get() -> Metrics:
    return Metrics()
