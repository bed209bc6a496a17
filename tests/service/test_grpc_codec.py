"""OIP BYTES tensors and parameters, as tritonclient encodes them, and malformed ones refused with a reason."""

import numpy as np
import pytest
from tritonclient.grpc import service_pb2
from tritonclient.utils import deserialize_bytes_tensor, serialize_byte_tensor

from service.errors import RequestError
from service.grpc_oip import top_k_parameter
from service.oip import pack_bytes, unpack_bytes


def test_bytes_round_trip_and_match_tritonclient():
    items = [b"RIFF....", b"", b"\x00\xff" * 1000]
    packed = pack_bytes(items)
    assert unpack_bytes(packed) == items
    assert packed == serialize_byte_tensor(np.array(items, dtype=object)).item()
    assert list(deserialize_bytes_tensor(packed)) == items


@pytest.mark.parametrize("raw", [b"\x05\x00", b"\x05\x00\x00\x00abc"], ids=["cut-length", "cut-element"])
def test_truncated_bytes_are_invalid(raw):
    with pytest.raises(RequestError) as info:
        unpack_bytes(raw)
    assert info.value.code == "invalid_argument"


def _params(**kinds):
    request = service_pb2.ModelInferRequest()
    for key, (kind, value) in kinds.items():
        setattr(request.parameters[key], kind, value)
    return request.parameters


@pytest.mark.parametrize(
    "kind, value, expected",
    [("int64_param", 4, 4), ("uint64_param", 2, 2), ("string_param", "5", 5), ("double_param", 3.0, 3)],
)
def test_top_k_accepts_integer_parameters(kind, value, expected):
    assert top_k_parameter(_params(top_k=(kind, value))) == expected


def test_top_k_absent_or_not_an_integer():
    assert top_k_parameter(_params()) is None
    for kind, value in [("bool_param", True), ("string_param", "three"), ("double_param", 2.5)]:
        with pytest.raises(RequestError, match="integer"):
            top_k_parameter(_params(top_k=(kind, value)))
