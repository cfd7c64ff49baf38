"""The encoder and decoder-step graphs of a `model.Seq2Seq`, traced by `torch.onnx` from the model's own
modules (`Seq2Seq.encode`, `Seq2Seq.step`: nothing of the network is written again), with the search's
candidates added to the step graph. onnx_model.py writes them into the model file; torch and onnx are
imported lazily, by the export alone."""

from __future__ import annotations

import io
import warnings
from typing import TYPE_CHECKING, Any

from ..ids import EOS_ID, PAD_ID
from .onnx_engine import CANDIDATES, state_names

if TYPE_CHECKING:
    from ..config import ModelConfig

OPSET = 17


def _graphs(model: Any) -> tuple[Any, Any]:
    """torch modules whose forward is the encoder graph and the decoder-step graph (flat tensors in and out)."""
    from torch import nn

    from ..model import DecoderState, Memory

    class EncoderGraph(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, src_ids: Any, src_lens: Any) -> tuple[Any, ...]:
            memory, state = self.model.encode(src_ids, src_lens)
            return (memory.states, memory.keys, memory.mask, *state.rnn)

    class StepGraph(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, prev_ids: Any, *tensors: Any) -> tuple[Any, ...]:
            *state, states, keys, mask = tensors
            feed = state.pop() if model.cfg.input_feeding else None
            log_probs, new, weights = self.model.step(
                prev_ids, DecoderState(tuple(state), feed), Memory(states, keys, mask)
            )
            return (log_probs, *new.rnn, *([new.feed] if new.feed is not None else []), weights)

    return EncoderGraph().eval(), StepGraph().eval()


def _example(model: Any, cfg: ModelConfig) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """Inputs to trace with: 2 sentences of lengths 5 and 3, 2 rows (beams) each in the step."""
    import torch

    src = torch.tensor([[4, 5, 6, 7, 3], [4, 5, 3, PAD_ID, PAD_ID]])
    lens = torch.tensor([5, 3])
    with torch.no_grad():
        memory, state = model.encode(src, lens)
        rows = torch.tensor([0, 0, 1, 1])
        state = state.select(rows)
    feed = [state.feed] if cfg.input_feeding else []
    step = (torch.tensor([4, 5, 6, 7]), *state.rnn, *feed, memory.states, memory.keys, memory.mask)
    return (src, lens), step


def _to_onnx(module: Any, args: tuple[Any, ...], inputs: list[str], outputs: list[str], axes: dict) -> bytes:
    import torch

    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the tracer's notes on Python values it records as constants
        torch.onnx.export(module, args, buffer, dynamo=False, opset_version=OPSET, input_names=inputs,
                          output_names=outputs, dynamic_axes=axes, do_constant_folding=True)  # fmt: skip
    return buffer.getvalue()


def export_graphs(model: Any) -> tuple[bytes, bytes, dict[str, list[str]]]:
    """The encoder and decoder-step graphs of a `model.Seq2Seq` (in eval mode, fp32), and their I/O names."""
    cfg = model.cfg
    enc_example, step_example = _example(model, cfg)
    states = state_names(cfg)
    rnn = [s for s in states if s != "feed"]
    mem = {"states": {0: "B", 1: "S"}, "keys": {0: "B", 1: "S"}, "mask": {0: "B", 1: "S"}}
    enc_out = ["states", "keys", "mask", *rnn]
    enc_axes = {"src_ids": {0: "B", 1: "S"}, "src_lens": {0: "B"}, **mem, **{s: {1: "B"} for s in rnn}}
    step_in = ["prev_ids", *states, "states", "keys", "mask"]
    step_out = ["log_probs", *(f"{s}_out" for s in states), "attention"]
    row = {s: ({0: "N"} if s == "feed" else {1: "N"}) for s in states}
    step_axes = {"prev_ids": {0: "N"}, **row, **{f"{s}_out": a for s, a in row.items()}, **mem,
                 "log_probs": {0: "N"}, "attention": {0: "N", 1: "S"}}  # fmt: skip
    encoder, step = _graphs(model)
    enc_bytes = _to_onnx(encoder, enc_example, ["src_ids", "src_lens"], enc_out, enc_axes)
    step_bytes = _with_candidates(_to_onnx(step, step_example, step_in, step_out, step_axes))
    io_names = {"encoder_inputs": ["src_ids", "src_lens"], "encoder_outputs": enc_out,
                "step_inputs": [*step_in, "k"], "step_outputs": [*step_out, *CANDIDATES]}  # fmt: skip
    return enc_bytes, step_bytes, io_names


def _with_candidates(graph: bytes) -> bytes:
    """The step graph with the search's candidates as outputs beside the log-probs: each row's `k` best
    pieces (TopK over the log-probs: values best first, ties to the lower id) and EOS's log-prob. `k`
    is a required input: given a default (an initializer of the same name), ONNX Runtime inferred the
    outputs as (N, 1) from it and warned at every call with another k. A search that asks only for
    these never copies out the (N, V) log-probs (ONNX Runtime computes them inside the graph either way)."""
    import onnx
    from onnx import TensorProto, helper

    proto = onnx.load_from_string(graph)
    g = proto.graph
    g.initializer.append(helper.make_tensor("eos_id", TensorProto.INT64, [], [EOS_ID]))
    g.input.append(helper.make_tensor_value_info("k", TensorProto.INT64, [1]))
    g.node.extend([
        helper.make_node("TopK", ["log_probs", "k"], CANDIDATES[:2], axis=1, largest=1, sorted=1),
        helper.make_node("Gather", ["log_probs", "eos_id"], [CANDIDATES[2]], axis=1),
    ])  # fmt: skip
    g.output.extend([
        helper.make_tensor_value_info(CANDIDATES[0], TensorProto.FLOAT, ["N", "k"]),
        helper.make_tensor_value_info(CANDIDATES[1], TensorProto.INT64, ["N", "k"]),
        helper.make_tensor_value_info(CANDIDATES[2], TensorProto.FLOAT, ["N"]),
    ])  # fmt: skip
    onnx.checker.check_model(proto)
    return proto.SerializeToString()
