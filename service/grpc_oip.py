"""gRPC front end: the Open Inference Protocol (KServe v2) with standard health checking and server reflection.

The servicer is tritonclient's generated one, so any OIP client (tritonclient, KServe's) works unmodified. It
runs as a grpc.aio server on the worker's event loop, so its clips go through the same pipeline and the same
batcher as HTTP requests. With SO_REUSEPORT every worker listens on the same port. The model, its metadata and
every check of a request are the protocol's (service.oip), shared with OIP over REST; this module only translates
protobuf messages.
"""

import asyncio
import logging
import time
from collections.abc import Callable

import grpc
import numpy as np
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from tritonclient.grpc import service_pb2, service_pb2_grpc

from service import metrics, oip
from service.admission import Admission
from service.contract import ClipResult
from service.errors import RETRY_AFTER_S, RETRYABLE, RequestError
from service.oip import pack_bytes, unpack_bytes
from service.pipeline import Classifier, Readiness
from service.settings import Settings

log = logging.getLogger("audioclf.grpc")

OIP_SERVICE = service_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name
# On a refusal worth retrying: when, in seconds (like HTTP's Retry-After) and as gRPC's own retry pushback.
RETRY_METADATA = (("retry-after", str(RETRY_AFTER_S)), ("grpc-retry-pushback-ms", str(RETRY_AFTER_S * 1000)))


def message_limit(settings: Settings) -> int:
    """Largest gRPC message either way: the OIP request limit (service.oip), the same as REST's body limit."""
    return oip.request_limit(settings)


def top_k_parameter(params) -> int | None:
    if "top_k" not in params:
        return None
    param = params["top_k"]
    kind = param.WhichOneof("parameter_choice")
    if kind is None:
        raise RequestError("invalid_argument", "parameter top_k has no value")
    return oip.top_k_parameter(getattr(param, kind))


class InferenceServicer(service_pb2_grpc.GRPCInferenceServiceServicer):
    """ServerLive/Ready, ModelReady, Server/ModelMetadata and ModelInfer; the Triton-only extras stay UNIMPLEMENTED."""

    def __init__(self, readiness: Readiness, model_name: str, admission: Admission, ready: Callable[[], bool]):
        self._readiness = readiness
        self._model_name = model_name
        self._admission = admission
        self._ready = ready  # warmed up and not draining
        self._metrics = metrics.get()

    async def _answer(self, context, call):
        try:
            return await call()
        except RequestError as err:
            if err.code != "unknown_model":
                self._metrics.errors.labels(reason=err.code, protocol="grpc").inc()
            retry = RETRY_METADATA if err.code in RETRYABLE else ()
            # the reason is finer than the code: it leads the message
            await context.abort(err.status.grpc, f"{err.code}: {err.detail}", trailing_metadata=retry)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("gRPC request failed")
            self._metrics.errors.labels(reason="internal", protocol="grpc").inc()
            await context.abort(grpc.StatusCode.INTERNAL, "internal error; see the server log")

    async def ServerLive(self, request, context):
        return service_pb2.ServerLiveResponse(live=True)

    async def ServerReady(self, request, context):
        return service_pb2.ServerReadyResponse(ready=self._ready())

    async def ModelReady(self, request, context):
        ready = oip.model_ready(self._model_name, self._readiness.classifier, request.name, request.version)
        return service_pb2.ModelReadyResponse(ready=ready)

    async def ServerMetadata(self, request, context):
        return service_pb2.ServerMetadataResponse(name=oip.SERVER_NAME, version=oip.server_version(), extensions=[])

    async def ModelMetadata(self, request, context):
        async def call():
            clf = await self._readiness.wait()
            oip.check_model(self._model_name, clf, request.name, request.version)
            meta = oip.model_metadata(self._model_name, clf)
            tensor = service_pb2.ModelMetadataResponse.TensorMetadata
            return service_pb2.ModelMetadataResponse(
                **{
                    **meta,
                    "inputs": [tensor(**t) for t in meta["inputs"]],
                    "outputs": [tensor(**t) for t in meta["outputs"]],
                }
            )

        return await self._answer(context, call)

    async def ModelInfer(self, request, context):
        m, started = self._metrics, time.perf_counter()
        m.in_flight.labels(protocol="grpc").inc()
        try:
            return await self._infer(request, context)
        finally:
            m.in_flight.labels(protocol="grpc").dec()
            code = context.code() or grpc.StatusCode.OK
            m.requests.labels(protocol="grpc", status=code.name).inc()
            m.request_duration.labels(protocol="grpc").observe(time.perf_counter() - started)

    async def _infer(self, request, context):
        async def call():
            with self._admission.slot():
                clf = await self._readiness.wait()
                oip.check_model(self._model_name, clf, request.model_name, request.model_version)
                files = _input_files(request)
                k = clf.top_k(top_k_parameter(request.parameters))
                wanted = oip.requested_outputs([o.name for o in request.outputs])
                results = await clf.classify_many(files, k=k, name=oip.INPUT)
                return _response(request, self._model_name, clf, results, k, wanted)

        return await self._answer(context, call)


def _input_files(request) -> list[bytes]:
    tensor = request.inputs[0] if request.inputs else None
    n = oip.check_input(
        [t.name for t in request.inputs], tensor.datatype if tensor else "", list(tensor.shape) if tensor else []
    )
    if request.raw_input_contents:
        if len(request.raw_input_contents) != 1:
            raise RequestError("invalid_argument", "expected one raw_input_contents entry, for input 'audio'")
        files = unpack_bytes(request.raw_input_contents[0])
    else:
        files = list(tensor.contents.bytes_contents)
    return oip.check_count(n, files)


def _response(request, model_name: str, clf: Classifier, results: list[ClipResult], k: int, wanted: list[str]):
    labels, scores = oip.output_rows(results)
    response = service_pb2.ModelInferResponse(model_name=model_name, model_version=clf.info.version, id=request.id)
    for name in wanted:
        response.outputs.add(name=name, datatype=oip.DATATYPES[name], shape=[len(results), k])
        if name == "label":
            response.raw_output_contents.append(pack_bytes([label.encode() for label in labels]))
        else:
            response.raw_output_contents.append(np.array(scores, dtype="<f4").tobytes())
    return response


_UNPARSABLE = object()


class CallCounter(grpc.aio.ServerInterceptor):
    """Counts finished unary calls by method and status code (`audioclf_grpc_requests_total`)."""

    def __init__(self) -> None:
        self._metrics = metrics.get()

    async def intercept_service(self, continuation, details):
        handler = await continuation(details)
        if handler is None or handler.unary_unary is None:  # unknown methods (unbounded names) and streams
            return handler
        inner, method, counter = handler.unary_unary, details.method, self._metrics.grpc_requests
        parse = handler.request_deserializer

        def lenient(data: bytes):  # grpc answers INTERNAL to a request that fails to parse: make it the client's
            try:
                return parse(data) if parse else data
            except Exception:
                return _UNPARSABLE

        async def counted(request, context):
            try:
                if request is _UNPARSABLE:
                    await context.abort(
                        grpc.StatusCode.INVALID_ARGUMENT,
                        "invalid_argument: the request is not a valid protobuf message",
                    )
                response = await inner(request, context)
            except BaseException:
                counter.labels(method=method, code=(context.code() or grpc.StatusCode.UNKNOWN).name).inc()
                raise
            counter.labels(method=method, code=(context.code() or grpc.StatusCode.OK).name).inc()
            return response

        return grpc.unary_unary_rpc_method_handler(
            counted,
            request_deserializer=lenient,
            response_serializer=handler.response_serializer,
        )


class GrpcServer:
    """The running server and its health service; `set_ready` flips health and readiness for probes."""

    def __init__(self, settings: Settings, readiness: Readiness, admission: Admission, ready: Callable[[], bool]):
        limit = message_limit(settings)
        self.server = grpc.aio.server(
            interceptors=[CallCounter()],
            options=[
                ("grpc.so_reuseport", 1),  # every entry worker binds the same port; the kernel spreads connections
                ("grpc.max_receive_message_length", limit),
                ("grpc.max_send_message_length", limit),
            ],
        )
        service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(
            InferenceServicer(readiness, settings.model_name, admission, ready), self.server
        )
        self.health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection((OIP_SERVICE, health.SERVICE_NAME, reflection.SERVICE_NAME), self.server)
        self.address = f"{settings.host}:{settings.grpc_port}"
        self.server.add_insecure_port(self.address)

    async def start(self) -> None:
        await self.set_ready(False)
        await self.server.start()
        log.info("gRPC (Open Inference Protocol, health, reflection) listening on %s", self.address)

    async def set_ready(self, ready: bool) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if ready else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ("", OIP_SERVICE):
            await self.health.set(name, status)

    async def stop(self, grace_s: float) -> None:
        """Refuse new calls, let those in flight finish for up to grace_s."""
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace_s)
