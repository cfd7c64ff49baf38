"""What an ONNX graph's protobuf holds, read without the `onnx` package (not a runtime dependency of an
exported model): its operators, and the first tensor that keeps its data in another file (ONNX external
data, which ONNX Runtime would read from the current folder). onnx_model.py decides what they mean for a
model file."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator


# The messages of an ONNX model (protobuf, onnx.proto) that can hold a tensor, by field number: a graph's nodes,
# initializers and sparse ones; a node's attributes; an attribute's tensors and subgraphs; the model's graph,
# training graphs and functions.
_HOLDS = {
    "model": {7: "graph", 20: "training", 25: "function"},
    "training": {1: "graph", 2: "graph"},
    "function": {7: "node"},
    "graph": {1: "node", 5: "tensor", 15: "sparse"},
    "node": {5: "attribute"},
    "attribute": {5: "tensor", 6: "graph", 10: "tensor", 11: "graph", 22: "sparse", 23: "sparse"},
    "sparse": {1: "tensor", 2: "tensor"},
}
_NODE_OP, _TENSOR_NAME, _EXTERNAL_DATA, _DATA_LOCATION = 4, 8, 13, 14  # NodeProto.op_type; TensorProto fields
INT8_OPS = {"MatMulIntegerToFloat", "MatMulInteger", "QuantizeLinear", "DynamicQuantizeLinear", "DynamicQuantizeLSTM"}


def _varint(data: memoryview, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(data) or shift > 63:
            raise ValueError("not an ONNX graph (a damaged protobuf varint)")
        byte, at = data[at], at + 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, at
        shift += 7


def _fields(data: memoryview) -> Iterator[tuple[int, int, Any]]:
    """The fields of one protobuf message: (number, wire type, value: a varint, or a length-delimited field's
    bytes; None for a fixed-size number)."""
    at = 0
    while at < len(data):
        key, at = _varint(data, at)
        wire, value = key & 7, None
        if wire == 0:
            value, at = _varint(data, at)
        elif wire == 2:
            size, at = _varint(data, at)
            value, at = data[at : at + size], at + size
        elif wire in (1, 5):
            at += 8 if wire == 1 else 4
        else:
            raise ValueError(f"not an ONNX graph (protobuf wire type {wire})")
        if at > len(data):
            raise ValueError("not an ONNX graph (a truncated protobuf field)")
        yield key >> 3, wire, value


@dataclass
class Scan:
    external: str | None = None  # the first tensor whose data is in another file
    ops: set[str] = field(default_factory=set)  # every node's operator


def _scan(data: memoryview, kind: str = "model", found: Scan | None = None, depth: int = 0) -> Scan:
    """What an ONNX model's protobuf holds, read without the onnx package (no runtime dependency): its
    operators, and a tensor that keeps its data in another file (`data_location` EXTERNAL, or
    `external_data` entries), which ONNX Runtime would read from the current folder."""
    found = Scan() if found is None else found
    if depth > 64:
        raise ValueError("not an ONNX graph (nested more than 64 deep)")
    name, external = "(unnamed)", False
    for number, wire, value in _fields(data):
        if kind == "tensor":
            name = bytes(value).decode("utf-8", "replace") if (number, wire) == (_TENSOR_NAME, 2) else name
            external |= (number, wire) == (_EXTERNAL_DATA, 2) or ((number, wire) == (_DATA_LOCATION, 0) and value != 0)
        elif kind == "node" and (number, wire) == (_NODE_OP, 2):
            found.ops.add(bytes(value).decode("utf-8", "replace"))
        elif wire == 2 and number in _HOLDS[kind]:
            _scan(value, _HOLDS[kind][number], found, depth + 1)
    if external and found.external is None:
        found.external = name
    return found


def scan(graph: bytes) -> Scan:
    """The operators of an ONNX model (serialised `ModelProto`) and its first external-data tensor, if any; a
    ValueError names what is damaged."""
    return _scan(memoryview(graph))
