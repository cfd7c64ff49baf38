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
the batch, and each integer matmul is fused with its scales and bias (`fuse_matmuls`). The LSTMs stay fp32:
ONNX Runtime's int8 LSTM (`DynamicQuantizeLSTM`) quantizes its input and state per tensor inside
the operator. tests/test_quantize.py checks the bound on every quantized input of every model kind.
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
    fuse_matmuls(proto)
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


def fuse_matmuls(proto: onnx.ModelProto) -> int:
    """Each `MatMulInteger -> Cast -> Mul(scales) [-> Add(bias)]` chain left by `fixed_scale` becomes one
    `MatMulIntegerToFloat` (ONNX Runtime's contrib kernel, which ONNX Runtime fuses to itself only for a
    dynamically quantized input): one pass over the (N, V) result instead of three. Returns the count."""
    from onnx import helper

    g = proto.graph
    made = {o: n for n in g.node for o in n.output}
    users: dict[str, list[onnx.NodeProto]] = {}
    for n in g.node:
        for i in n.input:
            users.setdefault(i, []).append(n)
    constants = {t.name for t in g.initializer}
    drop, fused = set(), {}
    for mm in (n for n in g.node if n.op_type == "MatMulInteger"):
        chain = [mm]
        while len(users.get(chain[-1].output[0], [])) == 1 and len(chain) < 4:
            chain.append(users[chain[-1].output[0]][0])
        kinds = [n.op_type for n in chain]
        if kinds[1:3] != ["Cast", "Mul"] or chain[2].input[1] not in made:
            continue
        scales = made[chain[2].input[1]]  # Mul(activation scale, weight scales)
        if scales.op_type != "Mul" or not set(scales.input) <= constants:
            continue
        bias = kinds[3:] == ["Add"] and chain[3].input[1] in constants
        last = chain[3] if bias else chain[2]
        a, b, a_zero, b_zero = mm.input
        inputs = [a, b, scales.input[0], scales.input[1], a_zero, b_zero] + ([chain[3].input[1]] if bias else [])
        fused[mm.output[0]] = helper.make_node("MatMulIntegerToFloat", inputs, [last.output[0]],
                                               name=f"{mm.name}/fused", domain="com.microsoft")  # fmt: skip
        drop.update(n.output[0] for n in chain[1 : 4 if bias else 3])  # outputs are unique, node names need not be
    nodes = [fused.get(n.output[0], n) for n in g.node if n.output[0] not in drop]
    del g.node[:]
    g.node.extend(nodes)
    if fused and not any(o.domain == "com.microsoft" for o in proto.opset_import):
        proto.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return len(fused)
