"""The int8 graphs of the ONNX export (translation/quantize.py): every input they quantize is bounded by 1, a
sentence's int8 results never depend on its batch, and the fused integer matmuls compute the unfused chain."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np
import pytest
import torch
from model_kinds import VARIANTS, output_layer_op

from seq2seq.model import Seq2Seq
from seq2seq.tokenizer import EOS_ID
from seq2seq.translation import quantize
from seq2seq.translation.onnx_model import OnnxEngine, export_graphs
from seq2seq.translation.quantize import quantize_graphs

if TYPE_CHECKING:
    from pathlib import Path

pytest.importorskip("onnxruntime")


def _saw_linear_inputs(model: Seq2Seq) -> dict[str, float]:
    """Encode three sentences and take three greedy steps; the largest |input| each nn.Linear saw."""
    seen: dict[str, float] = {}

    def hook(name: str):  # noqa: ANN202
        return lambda _module, args: seen.__setitem__(name, max(seen.get(name, 0.0), args[0].abs().max().item()))

    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear):
            module.register_forward_pre_hook(hook(name))
    src = torch.tensor([[5, 6, 7, 8, 9, 10, EOS_ID], [11, 12, EOS_ID, 0, 0, 0, 0], [13, 14, 15, EOS_ID, 0, 0, 0]])
    with torch.no_grad():
        memory, state = model.encode(src, torch.tensor([7, 3, 4]))
        prev = torch.tensor([4, 5, 6])
        for _ in range(3):
            log_probs, state, _ = model.step(prev, state, memory)
            prev = log_probs.argmax(dim=1)
    return seen


@pytest.mark.parametrize("name", VARIANTS)
def test_every_layer_int8_quantizes_reads_values_within_one(name: str) -> None:
    """The int8 graphs quantize the inputs of the weight matrices (every nn.Linear: projections, bridge,
    combine, output layer) on the fixed scale 1/127 (translation/quantize.py), exact only if those inputs
    lie in [-1, 1] by construction: RNN outputs, their averages, tanh. Weights x 20 saturate every
    nonlinearity; an unbounded input (a cell state, an embedding, a pre-activation) would exceed 1."""
    torch.manual_seed(0)
    model = Seq2Seq(dataclasses.replace(VARIANTS[name], dropout=0.0), 23, 29).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(20)
    seen = _saw_linear_inputs(model)
    assert {"out", "decoder.combine", "bridge_h"} <= set(seen)
    assert max(seen.values()) <= 1 + 1e-6, seen


@pytest.mark.parametrize("name", VARIANTS)
def test_int8_rows_never_depend_on_their_batch(name: str, tmp_path: Path) -> None:
    """A sentence's int8 encoding and step log-probs are those it gets alone, in a batch of others: ONNX
    Runtime's dynamic quantization scaled each activation by its batch's range (10.9 % of the test lines
    changed between batch sizes 64 and 256 on 2026-12-05); the fixed scale depends on nothing else."""
    torch.manual_seed(0)
    model = Seq2Seq(dataclasses.replace(VARIANTS[name], dropout=0.0), 23, 29).eval()
    encoder, step, names = export_graphs(model)
    int8 = quantize_graphs(encoder, step, tmp_path)
    engine = OnnxEngine(*int8, {"model_config": dataclasses.asdict(model.cfg), **names}, threads=1)
    assert b"QuantizeLinear" in int8[1] and b"DynamicQuantizeLinear" not in int8[0] + int8[1]
    assert output_layer_op(int8[1]) == "MatMulIntegerToFloat"  # the output layer: one fused kernel (fuse_matmuls)
    src = [[5, 6, 7, 8, 9, 10, EOS_ID], [11, 12, EOS_ID], [13, 14, 15, EOS_ID], [16, EOS_ID]]

    def first_steps(sentences: list[list[int]], prev: list[int]) -> np.ndarray:
        memory, state = engine.encode(sentences)
        log_probs, state, _ = engine.step(np.asarray(prev), state, memory)
        return engine.step(log_probs.argmax(axis=1), state, memory)[0]

    together = first_steps(src, [4, 5, 6, 7])
    for i, sentence in enumerate(src):
        np.testing.assert_allclose(first_steps([sentence], [4 + i])[0], together[i], rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", VARIANTS)
def test_fused_int8_matmuls_compute_the_unfused_chain(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """quantize.fuse_matmuls turns MatMulInteger -> Cast -> Mul(scales) [-> Add(bias)] into one kernel: the
    graphs give the same memory and log-probs with and without it (both without `pair_safe`, which
    rescales the fused kernels' weights only)."""
    monkeypatch.setattr(quantize, "pair_safe", lambda proto: 0)
    torch.manual_seed(0)
    model = Seq2Seq(dataclasses.replace(VARIANTS[name], dropout=0.0), 23, 29).eval()
    encoder, step, names = export_graphs(model)
    meta = {"model_config": dataclasses.asdict(model.cfg), **names}
    fused = OnnxEngine(*quantize_graphs(encoder, step, tmp_path), meta, threads=1)
    monkeypatch.setattr(quantize, "fuse_matmuls", lambda proto: 0)
    plain = OnnxEngine(*quantize_graphs(encoder, step, tmp_path), meta, threads=1)
    src, prev = [[5, 6, 7, 8, 9, 10, EOS_ID], [11, 12, EOS_ID]], np.array([4, 5])
    (m1, s1), (m2, s2) = fused.encode(src), plain.encode(src)
    np.testing.assert_allclose(m1.keys, m2.keys, rtol=0, atol=1e-5)
    np.testing.assert_allclose(fused.step(prev, s1, m1)[0], plain.step(prev, s2, m2)[0], rtol=0, atol=1e-5)


LSTM_KINDS = [name for name, cfg in VARIANTS.items() if cfg.cell == "lstm"]


def _run(graph: bytes, feeds: dict[str, np.ndarray], outputs: list[str]) -> list[np.ndarray]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"]).run(outputs, feeds)


def _step_feeds(model: Seq2Seq) -> dict[str, np.ndarray]:
    """The step graph's inputs for 3 sentences, 2 rows each, after a random step of the state."""
    src = torch.tensor([[5, 6, 7, 8, 9, 10, EOS_ID], [11, 12, EOS_ID, 0, 0, 0, 0], [13, 14, 15, EOS_ID, 0, 0, 0]])
    with torch.no_grad():
        memory, state = model.encode(src, torch.tensor([7, 3, 4]))
    rows = torch.tensor([0, 0, 1, 1, 2, 2])
    state = state.select(rows)
    g = torch.Generator().manual_seed(1)
    rnn = [
        torch.tanh(3 * torch.randn(t.shape, generator=g)) if i == 0 else 5 * torch.randn(t.shape, generator=g)
        for i, t in enumerate(state.rnn)
    ]  # fmt: skip  (h in [-1, 1]; c unbounded)
    feeds = {"prev_ids": np.array([4, 5, 6, 7, 8, 9]), "k": np.array([2])}
    feeds |= {name: t.numpy() for name, t in zip(("h", "c"), rnn)}
    if model.cfg.input_feeding:
        feeds["feed"] = torch.tanh(3 * torch.randn(6, model.cfg.emb_size, generator=g)).numpy()
    return feeds | {"states": memory.states.numpy(), "keys": memory.keys.numpy(), "mask": memory.mask.numpy()}


@pytest.mark.parametrize("name", LSTM_KINDS)
def test_the_written_out_lstm_cell_computes_the_lstm_operator(name: str) -> None:
    """quantize.lstm_cells replaces each one-step LSTM node of the step graph by its cell (two MatMuls and
    the gates): in fp32 the graph gives the LSTM operator's log-probs and new state."""
    import onnx

    torch.manual_seed(0)
    model = Seq2Seq(dataclasses.replace(VARIANTS[name], dropout=0.0), 23, 29).eval()
    _, step, names = export_graphs(model)
    proto = onnx.load_from_string(step)
    quantize.lstm_cells(proto)
    assert not any(n.op_type == "LSTM" for n in proto.graph.node)
    feeds, outputs = _step_feeds(model), ["log_probs", "h_out", "c_out"]
    for expect, got in zip(_run(step, feeds, outputs), _run(proto.SerializeToString(), feeds, outputs)):
        np.testing.assert_allclose(got, expect, rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", VARIANTS)
def test_every_activation_the_int8_step_quantizes_lies_within_its_fixed_scale(name: str, tmp_path: Path) -> None:
    """Each QuantizeLinear of the int8 step graph (the layers' inputs, and for LSTMs the cell's input and
    state) covers [-127, 127] x its scale: 1/127 for values bounded by 1, an embedding table's largest
    entry / 127 for its rows (quantize._bound). Weights x 20 drive every bounded value to its bound."""
    import onnx
    from onnx import numpy_helper

    torch.manual_seed(0)
    model = Seq2Seq(dataclasses.replace(VARIANTS[name], dropout=0.0), 23, 29).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(20)
    encoder, step, _ = export_graphs(model)
    proto = onnx.load_from_string(quantize_graphs(encoder, step, tmp_path)[1])
    init = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    quantized = {n.input[0]: float(init[n.input[1]]) * 127 for n in proto.graph.node if n.op_type == "QuantizeLinear"}
    proto.graph.output.extend(onnx.helper.make_empty_tensor_value_info(x) for x in quantized)
    feeds = _step_feeds(model)
    feeds["h"] = np.tanh(feeds["h"] * 20)
    seen = dict(zip(quantized, _run(proto.SerializeToString(), feeds, list(quantized))))
    if model.cfg.cell == "lstm":
        assert any(x.endswith("/cell/x") for x in seen) and any(x.endswith("/cell/h") for x in seen)
    for x, values in seen.items():
        assert np.abs(values).max() <= quantized[x] * (1 + 1e-6), (x, np.abs(values).max(), quantized[x])


def test_pair_sums_is_the_worst_int16_pair_of_each_column() -> None:
    """vpmaddubsw adds a0 w0 + a1 w1 (uint8 a, int8 w, rows 2j and 2j + 1) into an int16: the worst over a
    is 255 x the larger of the pair's positive and negative sums; an odd K pairs its last row with 0."""
    q = np.array([[127, -3, 100], [2, -127, -100], [-1, 5, 0]], np.int8)
    assert quantize.pair_sums(q).tolist() == [129, 130, 100]
    assert 255 * quantize.PAIR_LIMIT <= 32767 < 255 * (quantize.PAIR_LIMIT + 1)


@pytest.mark.parametrize("name", VARIANTS)
def test_no_int8_product_can_overflow_an_int16_pair(name: str, tmp_path: Path) -> None:
    """Every int8 weight of both int8 graphs keeps each pair of neighbouring rows within |w0| + |w1| <= 128
    (quantize.pair_safe), so CPUs without VNNI (vpmaddubsw's saturating int16) compute the same products."""
    import onnx
    from onnx import numpy_helper

    torch.manual_seed(0)
    model = Seq2Seq(dataclasses.replace(VARIANTS[name], dropout=0.0), 23, 29).eval()
    encoder, step, _ = export_graphs(model)
    checked = 0
    for graph in quantize_graphs(encoder, step, tmp_path):
        proto = onnx.load_from_string(graph)
        init = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
        for node in proto.graph.node:
            if node.op_type in ("MatMulInteger", "MatMulIntegerToFloat", "DynamicQuantizeMatMul"):
                weight = init[node.input[1]]
                assert weight.dtype == np.int8 and quantize.pair_sums(weight).max() <= 128, (node.name, weight.shape)
                checked += 1
    assert checked >= 3  # at least the bridge, the combining layer and the output layer
