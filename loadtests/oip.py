"""Open Inference Protocol (KServe v2 gRPC) requests for the load: one encoded file per ModelInfer call, and the
gRPC client the benchmark plugs into devtools.loadgen's loops.

Requests are serialized once, up front, and sent as bytes through a plain unary-unary method: the server sees
exactly what tritonclient would send (raw BYTES content, shape [1]), while the load generator skips rebuilding
protobufs on every call.
"""

import asyncio
import struct

import grpc
from tritonclient.grpc import service_pb2

from devtools.loadgen import Failure

MODEL = "audio_classifier"
METHOD = "/inference.GRPCInferenceService/ModelInfer"
MAX_MESSAGE = 64 * 2**20


def infer_request(data: bytes, model: str = MODEL, top_k: int = 3) -> bytes:
    request = service_pb2.ModelInferRequest(model_name=model)
    request.inputs.add(name="audio", datatype="BYTES", shape=[1])
    request.parameters["top_k"].int64_param = top_k
    request.raw_input_contents.append(struct.pack("<I", len(data)) + data)
    return request.SerializeToString()


def top_label(response: service_pb2.ModelInferResponse) -> str:
    """The first label of the first file: proof the answer holds a prediction."""
    for out, raw in zip(response.outputs, response.raw_output_contents, strict=False):
        if out.name == "label" and len(raw) >= 4:
            (size,) = struct.unpack_from("<I", raw, 0)
            return raw[4 : 4 + size].decode()
    raise ValueError("the response has no label output")


def channel_options() -> list[tuple[str, int]]:
    """Large messages (long clips), and a connection of the channel's own: channels to one target otherwise share
    a subchannel, and every simulated client would ride one TCP connection to one entry worker."""
    return [
        ("grpc.max_send_message_length", MAX_MESSAGE),
        ("grpc.max_receive_message_length", MAX_MESSAGE),
        ("grpc.use_local_subchannel_pool", 1),
    ]


class Grpc:
    """ModelInfer with pre-serialized requests; `channels` connections used round-robin (one per client)."""

    def __init__(self, target: str, payloads: list[bytes], channels: int):
        self.target, self.payloads, self.n = target, payloads, channels

    async def __aenter__(self):
        self.channels = [grpc.aio.insecure_channel(self.target, options=channel_options()) for _ in range(self.n)]
        self.methods = [
            ch.unary_unary(METHOD, request_serializer=None, response_deserializer=_parse) for ch in self.channels
        ]
        return self

    async def __aexit__(self, *exc):
        await asyncio.gather(*(ch.close() for ch in self.channels))

    async def call(self, i: int) -> Failure | None:
        try:
            response = await self.methods[i % self.n](self.payloads[i % len(self.payloads)], timeout=120)
            top_label(response)
            return None
        except grpc.aio.AioRpcError as err:
            detail = err.details() or ""
            refused = err.code() == grpc.StatusCode.UNAVAILABLE
            return Failure(
                f"gRPC {err.code().name}", detail[:100], refused, refused and detail.startswith("overloaded")
            )
        except ValueError as exc:
            return Failure("ValueError", str(exc)[:100])


def _parse(raw: bytes) -> service_pb2.ModelInferResponse:
    return service_pb2.ModelInferResponse.FromString(raw)
