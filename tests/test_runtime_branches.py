"""Every branch of the NumPy engine runs in a test (engines/numpy_runtime.py against model.Seq2Seq).

The engine looks up the first layers' input parts in tables (embedding x input weights + biases)
when those fit in `TABLE_MAX_BYTES`, and multiplies otherwise: with real models (16k pieces, a
512-unit LSTM) only the multiplying path runs, with the tiny test models only the table path.
Here both run, for every cell, with two encoder and two decoder layers (layer 0 and the layers
above it take different paths), with and without input feeding. An engine that replaces this
one keeps the rule: each of its branches is exercised against the torch model.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seq2seq.config import ModelConfig
from seq2seq.model import Seq2Seq
from seq2seq.tokenizer import BOS_ID
from seq2seq.translation import numpy_runtime as runtime
from seq2seq.translation.numpy_runtime import Network

CASES = [
    ("lstm", "general", False),
    ("lstm", "bahdanau", True),
    ("gru", "general", True),
    ("gru", "bahdanau", False),
    ("rnn", "dot", False),
    ("rnn", "general", True),
]


@pytest.mark.parametrize("tables", [True, False], ids=["tables", "no tables"])
@pytest.mark.parametrize(("cell", "attention", "input_feeding"), CASES)
def test_both_input_paths_match_the_torch_model_at_every_layer(
    cell: str, attention: str, input_feeding: bool, tables: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not tables:
        monkeypatch.setattr(runtime, "TABLE_MAX_BYTES", 0)  # as for a model too large for the tables
    cfg = ModelConfig(cell=cell, attention=attention, input_feeding=input_feeding, emb_size=12, enc_hidden=8,
                      dec_hidden=16, enc_layers=2, dec_layers=2, tie_embeddings=False)  # fmt: skip
    torch.manual_seed(0)
    model = Seq2Seq(cfg, src_vocab=30, tgt_vocab=40).eval()
    with torch.no_grad():  # biases well away from 0, so that a path that drops one cannot pass
        for name, p in model.named_parameters():
            if "bias" in name:
                p.uniform_(-1.0, 1.0)
    net = Network(cfg, {k: v.numpy() for k, v in model.state_dict().items()})
    assert (net.emb_table is not None) == tables and bool(net.src_tables) == tables  # the path under test
    src = torch.tensor([[5, 6, 7, 8, 3], [9, 10, 3, 0, 0], [11, 3, 0, 0, 0]])  # padded, EOS-terminated
    lens = torch.tensor([5, 3, 2])
    with torch.inference_mode():
        memory, state = model.encode(src, lens)
        np_memory, np_state = net.encode_padded(src.numpy(), lens.numpy())
        np.testing.assert_allclose(np_memory.states, memory.states.numpy(), atol=1e-5)
        prev = torch.full((3,), BOS_ID)
        for t in range(4):
            log_probs, state, weights = model.step(prev, state, memory)
            np_log_probs, np_state, np_weights = net.step(prev.numpy(), np_state, np_memory)
            np.testing.assert_allclose(np_log_probs, log_probs.numpy(), atol=1e-5, err_msg=f"step {t}")
            np.testing.assert_allclose(np_weights, weights.numpy(), atol=1e-5, err_msg=f"step {t}")
            for layer, ours in enumerate(np_state.rnn):  # torch: (h, c) of shape (L, B, H); ours per layer
                for part, ref in zip(ours, state.rnn, strict=True):
                    np.testing.assert_allclose(part, ref[layer].numpy(), atol=1e-5, err_msg=f"step {t} layer {layer}")
            prev = log_probs.argmax(dim=1)
