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
the batch, and each integer matmul is fused with its scales and bias (`fuse_matmuls`). The decoder
step's LSTMs are written out as their cell first (`lstm_cells`: ONNX Runtime's int8 LSTM,
`DynamicQuantizeLSTM`, quantizes its input and state per batch inside the operator), so that their
two products are int8 on fixed scales too: the state h lies in [-1, 1], and an embedding row within
its table's largest entry. The encoder's LSTMs (whole sequences, once per batch) stay fp32.
tests/test_quantize.py checks the bound on every quantized input of every model kind.

CPUs with AVX2 or AVX-512 but no VNNI multiply uint8 by int8 with `vpmaddubsw` (ONNX Runtime's
U8S8 kernels there), which adds each two neighbouring products along K in a saturating int16: with
activations up to 255, a pair of weights with |w0| + |w1| > 128 can overflow it (255 x 127 x 2 >
32,767), and the same model file then gives other results on those CPUs than on VNNI ones. So every
int8 weight column whose worst pair exceeds 128 gets the coarser scale that brings it within
(`pair_safe`): the integer products are then exact on every CPU.
"""

from __future__ import annotations

import logging
import warnings
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    import numpy as np
    import onnx

QUANTIZED_OPS = ["MatMul", "Gemm", "Gather"]  # the layers with int8 weights (the encoder's LSTMs stay fp32)
SCALE, ZERO_POINT = 1 / 127, 128  # uint8 activations in [-1, 1]: x ~ (q - 128) / 127, q in 1 ... 255
PAIR_LIMIT = 32767 // 255  # 128: |a0 w0 + a1 w1| <= 255 x 128 fits an int16 for uint8 a (`pair_safe`)


def quantize_graphs(encoder: bytes, step: bytes, folder: Path) -> tuple[bytes, bytes]:
    """The int8 encoder and decoder-step graphs of an export (`folder`: ONNX Runtime's intermediate files)."""
    return quantize_int8(encoder, folder, "encoder"), quantize_int8(step, folder, "step", lstm_steps=True)


def quantize_int8(graph: bytes, folder: Path, name: str, lstm_steps: bool = False) -> bytes:
    """`graph` with int8 weights for MatMul, Gemm and Gather (embeddings) and activations on a fixed
    scale; `folder` holds ONNX Runtime's intermediate files. `lstm_steps`: the graph's LSTMs run one
    time step (the decoder step's), written out as their cell (`lstm_cells`) so that their products
    are int8 too."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    src, dst = folder / f"{name}.fp32.onnx", folder / f"{name}.int8.onnx"
    bounds: dict[str, float] = {}
    if lstm_steps:
        proto = onnx.load_from_string(graph)
        bounds = lstm_cells(proto)
        graph = proto.SerializeToString()
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
    fixed_scale(proto, bounds)
    fuse_matmuls(proto)
    pair_safe(proto)
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def fixed_scale(proto: onnx.ModelProto, bounds: dict[str, float] | None = None) -> list[str]:
    """Replace every `DynamicQuantizeLinear` by a `QuantizeLinear` on the fixed scale 1/127 (zero point
    128) with the same three outputs: the uint8 tensor, its scale and its zero point (now constants).
    An activation named in `bounds` lies in [-bound, bound] instead: its scale is bound/127.
    Returns the names of the activations quantized so."""
    from onnx import TensorProto, helper

    g, nodes, inputs = proto.graph, [], []
    for node in g.node:
        if node.op_type != "DynamicQuantizeLinear" or node.domain not in ("", "ai.onnx"):
            nodes.append(node)
            continue
        (x,), (q, scale, zero_point) = node.input, node.output
        g.initializer.extend([
            helper.make_tensor(scale, TensorProto.FLOAT, [], [(bounds or {}).get(x, 1.0) * SCALE]),
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


def pair_sums(q: np.ndarray) -> np.ndarray:
    """Per column of an int8 weight (K, N), the largest |a0 w0 + a1 w1| / 255 over uint8 a0, a1 of its
    pairs of neighbouring rows (2j, 2j + 1): the larger of a pair's positive and negative entries' sums."""
    import numpy as np

    q = q.astype(np.int32).reshape(q.shape[0], -1)
    pairs = np.concatenate([q, np.zeros((q.shape[0] % 2, q.shape[1]), np.int32)]).reshape(-1, 2, q.shape[1])
    return np.maximum(np.clip(pairs, 0, None).sum(1), np.clip(-pairs, 0, None).sum(1)).max(0)


def pair_safe(proto: onnx.ModelProto) -> int:
    """Rescale each int8 weight column of the fused matmuls whose worst pair (`pair_sums`) exceeds
    `PAIR_LIMIT`: its integers times r = 127 / worst, rounded (so a pair stays within 128), its scale
    divided by r. Returns the number of columns rescaled."""
    import numpy as np
    from onnx import numpy_helper

    init = {t.name: t for t in proto.graph.initializer}
    seen, changed = set(), 0
    for node in proto.graph.node:
        b, _, b_scale = node.input[1:4] if node.op_type == "MatMulIntegerToFloat" else ("", "", "")
        if b in seen or b not in init or b_scale not in init:
            continue
        seen.add(b)
        q, scale = numpy_helper.to_array(init[b]), numpy_helper.to_array(init[b_scale])
        worst = pair_sums(q)
        if scale.size != q.shape[-1]:  # one scale for the whole tensor: one factor for every column
            worst = np.full_like(worst, worst.max())
        r = np.where(worst > PAIR_LIMIT, (PAIR_LIMIT - 1) / np.maximum(worst, 1), 1.0)
        if (r == 1.0).all():
            continue
        changed += int((r < 1.0).sum())
        init[b].CopyFrom(numpy_helper.from_array(np.rint(q * r).astype(np.int8), b))
        new_scale = scale / (r if scale.size == r.size else r[0])
        init[b_scale].CopyFrom(numpy_helper.from_array(new_scale.astype(scale.dtype).reshape(scale.shape), b_scale))
    return changed


def lstm_cells(proto: onnx.ModelProto) -> dict[str, float]:
    """Write each one-step, forward `LSTM` node of `proto` out as its cell (ONNX's LSTM, gates i, o, f,
    c): gates = x W^T + h R^T + (Wb + Rb), c' = f c + i g, h' = o tanh(c'), as two MatMuls that
    `quantize_dynamic` then stores in int8 (ONNX Runtime's own int8 LSTM scales its input and state
    per batch). h lies in [-1, 1]; x is an RNN's output or an embedding row (with the input-feeding
    vector, a tanh): returns the bound of each x that is not within 1 (`fixed_scale`'s `bounds`)."""
    from onnx import TensorProto, helper, numpy_helper

    g = proto.graph
    init = {t.name: t for t in g.initializer}
    made = {o: n for n in g.node for o in n.output}
    nodes, bounds = [], {}
    const = 0

    def constant(values: list[int]) -> str:
        nonlocal const
        const += 1
        name = f"lstm_cell_axes_{const}"
        g.initializer.append(helper.make_tensor(name, TensorProto.INT64, [len(values)], values))
        return name

    for node in g.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        ins = list(node.input) + [""] * (8 - len(node.input))
        if node.op_type != "LSTM" or set(attrs) - {"hidden_size"} or ins[4] or ins[7] or ins[1] not in init:
            nodes.append(node)  # a full sequence (the encoder's), or options this rewrite does not know
            continue
        x, w, r, b, _, h0, c0, _ = ins
        hidden = attrs["hidden_size"]
        w_t, r_t = numpy_helper.to_array(init[w])[0].T, numpy_helper.to_array(init[r])[0].T  # (I, 4H), (H, 4H)
        bias = numpy_helper.to_array(init[b])[0] if b else None
        p = node.name or node.output[0]
        parts = "W R B x h c xw hr sum gates i o f g si so sf tg fc ig c1 tc h1".split()
        names = {k: f"{p}/cell/{k}" for k in parts}
        g.initializer.extend(
            [numpy_helper.from_array(w_t.copy(), names["W"]), numpy_helper.from_array(r_t.copy(), names["R"])]
        )
        zero = constant([0])
        made_nodes = [
            helper.make_node("Squeeze", [x, zero], [names["x"]]),  # (N, I): one time step
            helper.make_node("Squeeze", [h0, zero], [names["h"]]),
            helper.make_node("Squeeze", [c0, zero], [names["c"]]),
            helper.make_node("MatMul", [names["x"], names["W"]], [names["xw"]]),
            helper.make_node("MatMul", [names["h"], names["R"]], [names["hr"]]),
        ]
        xw = names["xw"]
        if bias is not None:  # next to x W, where `fuse_matmuls` folds it into the int8 product
            g.initializer.append(numpy_helper.from_array(bias[: 4 * hidden] + bias[4 * hidden :], names["B"]))
            made_nodes.append(helper.make_node("Add", [xw, names["B"]], [names["sum"]]))
            xw = names["sum"]
        made_nodes += [
            helper.make_node("Add", [xw, names["hr"]], [names["gates"]]),
            helper.make_node("Split", [names["gates"]], [names["i"], names["o"], names["f"], names["g"]], axis=1),
            helper.make_node("Sigmoid", [names["i"]], [names["si"]]),
            helper.make_node("Sigmoid", [names["o"]], [names["so"]]),
            helper.make_node("Sigmoid", [names["f"]], [names["sf"]]),
            helper.make_node("Tanh", [names["g"]], [names["tg"]]),
            helper.make_node("Mul", [names["sf"], names["c"]], [names["fc"]]),
            helper.make_node("Mul", [names["si"], names["tg"]], [names["ig"]]),
            helper.make_node("Add", [names["fc"], names["ig"]], [names["c1"]]),
            helper.make_node("Tanh", [names["c1"]], [names["tc"]]),
            helper.make_node("Mul", [names["so"], names["tc"]], [names["h1"]]),
        ]  # fmt: skip
        y, y_h, y_c = (list(node.output) + ["", "", ""])[:3]
        if y:
            made_nodes.append(helper.make_node("Unsqueeze", [names["h1"], constant([0, 1])], [y]))  # (1, 1, N, H)
        if y_h:
            made_nodes.append(helper.make_node("Unsqueeze", [names["h1"], zero], [y_h]))
        if y_c:
            made_nodes.append(helper.make_node("Unsqueeze", [names["c1"], zero], [y_c]))
        for i, made_node in enumerate(made_nodes):
            made_node.name = f"{p}/cell/{i}"  # unique names: the quantizer names its nodes after them
        nodes.extend(made_nodes)
        bound = _bound(x, made, init)
        if bound > 1.0:
            bounds[names["x"]] = bound
    del g.node[:]
    g.node.extend(nodes)
    return bounds


def _bound(name: str, made: dict, init: dict) -> float:
    """The largest |value| a tensor can hold, followed back through shape operations to the embedding
    rows it gathers (an embedding table's largest |entry|); anything else lies in [-1, 1] (RNN outputs
    and tanh: checked for every model kind by tests/test_quantize.py)."""
    from onnx import numpy_helper

    node = made.get(name)
    if node is None:
        return 1.0
    if node.op_type in ("Transpose", "Squeeze", "Unsqueeze", "Reshape", "Identity", "Slice", "Gather"):
        data = node.input[0]  # the values pass through (moved, cut or picked)
        if data in init:
            return max(1.0, float(abs(numpy_helper.to_array(init[data])).max()))
        return _bound(data, made, init)
    if node.op_type == "Concat":
        return max(_bound(i, made, init) for i in node.input)
    return 1.0
