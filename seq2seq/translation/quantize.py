"""The int8 graphs of `seq2seq export --quantize int8`: int8 weights, activations on a fixed scale.

ONNX Runtime's dynamic quantization (`quantize_dynamic`) stores the weights of the MatMul/Gemm
layers (per output channel) and of the embeddings in int8, and quantizes each activation when the
graph runs (`DynamicQuantizeLinear`) on a scale taken from the whole tensor: the batch's. A
sentence's translation then depended on the sentences batched with it (109 of the 1,000
test_2016_flickr lines changed between `--batch-size 64` and `256`, 2026-12-05), where fp32's
never does. Every activation these layers read is bounded by the network's construction to
[-1, 1]: RNN outputs (an LSTM's o * tanh(c), a GRU's mix of tanh values and its tanh-bridged
initial state, a tanh RNN's), their attention-weighted averages (the context), and tanh outputs
(the bridge's input is RNN outputs; the attentional vector and the MLP attention's hidden layer are
tanh). So each `DynamicQuantizeLinear` becomes a `QuantizeLinear` on the fixed scale 1/127 around
the zero point 128: what a row computes depends on that row alone, int8 output is the same whatever
the batch, and ONNX Runtime still fuses the integer matmul with its scales. The LSTMs stay fp32:
ONNX Runtime's int8 LSTM (`DynamicQuantizeLSTM`) quantizes its input and state per tensor inside
the operator. tests/test_onnx.py checks the bound on every quantized input of every model kind.
"""

from __future__ import annotations

import logging
import warnings
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    import onnx

QUANTIZED_OPS = ["MatMul", "Gemm", "Gather"]  # the layers with int8 weights (the LSTMs stay fp32)
SCALE, ZERO_POINT = 1 / 127, 128  # uint8 activations in [-1, 1]: x ~ (q - 128) / 127, q in 1 ... 255


def quantize_int8(graph: bytes, folder: Path, name: str) -> bytes:
    """`graph` with int8 weights for MatMul, Gemm and Gather (embeddings) and activations on the fixed
    scale; `folder` holds ONNX Runtime's intermediate files."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    src, dst = folder / f"{name}.fp32.onnx", folder / f"{name}.int8.onnx"
    src.write_bytes(graph)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.disable(logging.WARNING)  # its advice to pre-process, for image models, on the root logger
        try:
            quantize_dynamic(
                src, dst, weight_type=QuantType.QInt8, per_channel=True, op_types_to_quantize=QUANTIZED_OPS
            )
        finally:
            logging.disable(logging.NOTSET)
    proto = onnx.load(dst)
    fixed_scale(proto)
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def fixed_scale(proto: onnx.ModelProto) -> list[str]:
    """Replace every `DynamicQuantizeLinear` by a `QuantizeLinear` on the fixed scale 1/127 (zero point
    128) with the same three outputs: the uint8 tensor, its scale and its zero point (now constants).
    Returns the names of the activations quantized so."""
    from onnx import TensorProto, helper

    g, nodes, inputs = proto.graph, [], []
    for node in g.node:
        if node.op_type != "DynamicQuantizeLinear" or node.domain not in ("", "ai.onnx"):
            nodes.append(node)
            continue
        (x,), (q, scale, zero_point) = node.input, node.output
        g.initializer.extend([
            helper.make_tensor(scale, TensorProto.FLOAT, [], [SCALE]),
            helper.make_tensor(zero_point, TensorProto.UINT8, [], [ZERO_POINT]),
        ])  # fmt: skip
        nodes.append(helper.make_node("QuantizeLinear", [x, scale, zero_point], [q], name=f"{node.name}/fixed"))
        inputs.append(x)
    del g.node[:]
    g.node.extend(nodes)
    return inputs
