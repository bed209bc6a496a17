"""Locust users for the audio classifier: HTTP uploads to /classify and Open Inference Protocol calls over gRPC.

Both send real clips, mostly short FSDD digits with some long instrument clips (--long-weight), and both report
through Locust's request events, so one run's statistics, CSV and HTML report hold HTTP and gRPC side by side.
A deliberate 503 / UNAVAILABLE from load shedding is a failure whose message starts with SHED, so that the summary
(loadtests/summary.py) counts it apart from real failures.

    locust -f loadtests/locustfile.py --host http://127.0.0.1:3000 --grpc-host 127.0.0.1:50051
or a profile: python -m loadtests.run smoke|steady|ramp (see loadtests/profiles.py).
"""

# gRPC's C core must cooperate with gevent before any channel exists (Locust has already monkey-patched).
import grpc.experimental.gevent as grpc_gevent

grpc_gevent.init_gevent()

import random  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from functools import lru_cache  # noqa: E402
from pathlib import Path  # noqa: E402

import grpc  # noqa: E402
from locust import FastHttpUser, User, constant, constant_pacing, events, task  # noqa: E402
from tritonclient.grpc import service_pb2  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `locust` runs from its own bin/, not the repo

from devtools import loadgen  # noqa: E402
from loadtests import clips as clipsets  # noqa: E402
from loadtests import oip  # noqa: E402

SHED = "load shed"


@events.init_command_line_parser.add_listener
def _options(parser) -> None:
    group = parser.add_argument_group("audio classifier")
    group.add_argument("--grpc-host", default="127.0.0.1:50051", help="gRPC host:port of the service")
    group.add_argument("--data", default="", help="shared data folder (fsdd/, instruments/); default ../shared/data")
    group.add_argument("--long-weight", type=int, default=1, help="long instrument clips per 9 short digits")
    group.add_argument("--pace", type=float, default=0.0, help="seconds between a user's request starts (0: none)")
    group.add_argument("--model-name", default=oip.MODEL, help="OIP model name")
    group.add_argument("--ramp-users", default="4,8,16,32,64,128", help="ramp profile: users per step")
    group.add_argument("--ramp-step-s", type=float, default=20.0, help="ramp profile: seconds per step")


@lru_cache(maxsize=1)
def _clips(data: str) -> tuple[list[clipsets.Clip], list[clipsets.Clip]]:
    folder = clipsets.data_dir(data or None)
    return clipsets.short_clips(folder), clipsets.long_clips(folder)


def _wait(user: User) -> float:
    """--pace as Locust's constant_pacing (open-ish loop per user); 0 = back to back (closed loop)."""
    pace = user.environment.parsed_options.pace if user.environment.parsed_options else 0.0
    return constant_pacing(pace)(user) if pace > 0 else constant(0)(user)


class _AudioUser:
    """What both users share: the clip sets (read once per process) and the short/long choice."""

    def _setup_clips(self) -> None:
        options = self.environment.parsed_options
        self.short, self.long = _clips(options.data if options else "")
        self.long_weight = options.long_weight if options else 1

    def _pick(self) -> tuple[str, clipsets.Clip]:
        if random.randrange(9 + self.long_weight) < 9:
            return "short", random.choice(self.short)
        return "long", random.choice(self.long)


class HttpClassifyUser(FastHttpUser, _AudioUser):
    """POST /classify with a multipart upload, as any HTTP client would."""

    weight = 1
    wait_time = _wait
    network_timeout = 120.0
    connection_timeout = 10.0

    def on_start(self) -> None:
        self._setup_clips()
        self.bodies = {id(c): loadgen.multipart(c.name, c.data, c.content_type) for c in [*self.short, *self.long]}

    @task
    def classify(self) -> None:
        kind, clip = self._pick()
        body, content_type = self.bodies[id(clip)]
        with self.client.post(
            "/classify",
            data=body,
            headers={"Content-Type": content_type},
            name=f"/classify {kind}",
            catch_response=True,
        ) as response:
            if response.status_code == 503 and '"overloaded"' in (response.text or ""):
                response.failure(f"{SHED}: HTTP 503 {response.text[:120]}")
            elif response.status_code != 200:
                response.failure(f"HTTP {response.status_code}: {(response.text or '')[:160]}")
            elif not (response.json() or {}).get("predictions"):
                response.failure("HTTP 200 without predictions")


class GrpcInferUser(User, _AudioUser):
    """ModelInfer over gRPC on its own channel (connection), timed and reported through `events.request`."""

    weight = 1
    wait_time = _wait
    timeout_s = 120.0

    def on_start(self) -> None:
        self._setup_clips()
        options = self.environment.parsed_options
        target = options.grpc_host if options else "127.0.0.1:50051"
        model = options.model_name if options else oip.MODEL
        self.channel = grpc.insecure_channel(target, options=oip.channel_options())
        self.infer = self.channel.unary_unary(
            oip.METHOD, request_serializer=None, response_deserializer=service_pb2.ModelInferResponse.FromString
        )
        self.requests = {id(c): oip.infer_request(c.data, model) for c in [*self.short, *self.long]}

    def on_stop(self) -> None:
        self.channel.close()

    @task
    def model_infer(self) -> None:
        kind, clip = self._pick()
        payload = self.requests[id(clip)]
        started = time.perf_counter()
        exception, length = None, 0
        try:
            response = self.infer(payload, timeout=self.timeout_s)
            length = response.ByteSize()
            oip.top_label(response)
        except grpc.RpcError as err:
            code, detail = err.code(), err.details() or ""
            shed = code == grpc.StatusCode.UNAVAILABLE and detail.startswith("overloaded")
            exception = RuntimeError(f"{SHED + ': ' if shed else ''}gRPC {code.name}: {detail[:160]}")
        except ValueError as err:
            exception = err
        self.environment.events.request.fire(
            request_type="grpc",
            name=f"ModelInfer {kind}",
            response_time=(time.perf_counter() - started) * 1000,
            response_length=length,
            exception=exception,
            context={},
        )
