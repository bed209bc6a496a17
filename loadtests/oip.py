"""Open Inference Protocol (KServe v2 gRPC) requests for the load: one encoded file per ModelInfer call.

Requests are serialized once, up front, and sent as bytes through a plain unary-unary method: the server sees
exactly what tritonclient would send (raw BYTES content, shape [1]), while the load generator skips rebuilding
protobufs on every call.
"""

import struct

from tritonclient.grpc import service_pb2

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
