"""The benchmark's bookkeeping: peers of this CPU kind, ratios, and what it skips on hardware that cannot run it."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from seq2seq.batches import Batch
from seq2seq.config import ModelConfig, TrainConfig
from seq2seq.devtools import benchmark
from seq2seq.errors import CorpusError
from seq2seq.machine import hardware
from seq2seq.model import Seq2Seq
from seq2seq.objective import forward_backward

if TYPE_CHECKING:
    from pathlib import Path


def _entry(model: str, capability: str, bf16: bool, tok_s: float) -> dict:
    """A peers.json `machines` entry as ../shared/peers/run.sh writes it."""
    native = " + native bf16" if bf16 else ", no native bf16"
    return {"cpu_capability": capability, "bf16": bf16, "machine": f"2 cores {model}, {capability}{native}, 2 threads, "
            "2026-12-03", "peers": {"opennmt-py": {"train_tgt_tok_s": tok_s}}}  # fmt: skip


def test_ratios_only_against_a_peer_measured_on_a_machine_like_this_one(tmp_path: Path) -> None:
    here = benchmark.PeerMachine("AMD EPYC", "AVX512", True)
    others = [
        _entry("AMD EPYC", "AVX512", False, 1.0),  # same model and capability, no native bf16
        _entry("AMD EPYC", "AVX2", True, 2.0),  # capability capped
        _entry("Intel(R) Xeon(R) Platinum", "AVX512", True, 3.0),  # another CPU model
        {
            "cpu_capability": "AVX512",
            "bf16": True,
            "machine": "2 cores AMD EPYC AVX-512+bf16, 2 threads",
            "peers": {"opennmt-py": {"train_tgt_tok_s": 4.0}},
        },  # fmt: skip  # no model in its machine line
    ]
    path = tmp_path / "peers.json"
    path.write_text(json.dumps({"peers": {"opennmt-py": {"train_tgt_tok_s": 5.0}}, "machines": others}))
    machine, figures = benchmark.peers_for_this_machine(path, here)
    assert figures is None
    assert machine.startswith("peer figures are from 2 cores AMD EPYC, AVX512, no native bf16")
    assert machine.endswith("; run ../shared/peers/run.sh here") and "Xeon" in machine
    same = _entry("AMD EPYC", "AVX512", True, 6.0)
    path.write_text(json.dumps({"machines": [*others, same]}))
    assert benchmark.peers_for_this_machine(path, here) == (same["machine"], same["peers"])


def test_the_benchmark_gives_no_ratio_against_another_machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "peers.json"
    other, same = _entry("Some Other CPU", "AVX2", False, 100.0), _entry("AMD EPYC", "AVX512", True, 100.0)
    path.write_text(json.dumps({"machines": [other]}))
    monkeypatch.setattr(benchmark, "this_machine", lambda: benchmark.PeerMachine("AMD EPYC", "AVX512", True))
    result = {"train_tgt_tok_s": 300.0}
    assert benchmark.peer_ratios(result, path, quick=False) == {"ratios_vs_peers": {"skipped": (
        "peer figures are from 2 cores Some Other CPU, AVX2, no native bf16, 2 threads, 2026-12-03; "
        "run ../shared/peers/run.sh here")}}  # fmt: skip
    path.write_text(json.dumps({"machines": [other, same]}))
    assert benchmark.peer_ratios(result, path, quick=False) == {
        "peers_machine": same["machine"], "ratios_vs_peers": {"train_tgt_tok_s": {"opennmt-py": 3.0}}}  # fmt: skip
    assert "skipped" in benchmark.peer_ratios(result, path, quick=True)["ratios_vs_peers"]


def test_ratios_say_better_as_greater_than_one_and_skip_what_a_peer_lacks() -> None:
    result = {"train_tgt_tok_s": 300.0, "translate_wall_s_beam5": 2.0}
    peers = {"a": {"train_tgt_tok_s": 100.0, "translate_wall_s_beam5": 8.0}, "b": {"train_tgt_tok_s": 600.0}}
    assert benchmark.compare(result, peers) == {
        "train_tgt_tok_s": {"a": 3.0, "b": 0.5},
        "translate_wall_s_beam5": {"a": 4.0},
    }


def test_bf16_is_skipped_with_the_reason_only_where_it_cannot_run(monkeypatch: pytest.MonkeyPatch) -> None:
    for runs, native in ((False, False), (True, False), (True, True)):
        hardware.cpu_bf16.cache_clear()
        error = None if runs else "no primitive"
        monkeypatch.setattr(hardware, "_probe_bf16_lstm", lambda e=error: e)
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda n=native: n)
        skipped = benchmark.bf16_skipped()
        assert (skipped is None) == runs  # emulated bf16 is measured (and the JSON says it is not native)
        if not runs:
            assert "no native bf16" in skipped["skipped"] and "no primitive" in skipped["skipped"]
    hardware.cpu_bf16.cache_clear()


TINY = {"emb_size": 16, "enc_hidden": 8, "dec_hidden": 16, "dropout": 0.0}


@pytest.mark.parametrize(
    "cfg",
    [
        ModelConfig(**TINY),
        ModelConfig(**TINY, attention="bahdanau"),
        ModelConfig(**TINY, input_feeding=True, tie_embeddings=False),
        ModelConfig(**TINY, attention="dot", enc_layers=2, dec_layers=2),
        ModelConfig(**TINY, cell="gru", attention="bahdanau"),
    ],
    ids=["general", "bahdanau", "input-feeding", "dot-2-layers", "gru"],
)
def test_the_flop_formula_counts_what_a_training_update_multiplies(cfg: ModelConfig) -> None:
    """`flops_per_tgt_token` against torch's own count (FlopCounterMode) of a real forward + backward of a
    tiny model, every sentence of one length (no padding): bridges, attention and output layer included.
    oneDNN's LSTM kernel is opaque to the counter, so its matmuls are added by hand (GRUs it counts)."""
    lstm = torch.nn.LSTM(4, 4)
    with FlopCounterMode(display=False) as probe:
        lstm(torch.randn(3, 1, 4))[0].sum().backward()
    assert probe.get_total_flops() == 0  # else the hand count below would count the LSTMs twice
    src_vocab, tgt_vocab, rows, src_len, tgt_len = 30, 50, 3, 7, 5
    torch.manual_seed(0)
    model = Seq2Seq(cfg, src_vocab, tgt_vocab)
    ids = torch.randint(4, tgt_vocab, (2, rows, tgt_len))
    batch = Batch(torch.randint(4, src_vocab, (rows, src_len)), torch.full((rows,), src_len), *ids, rows * tgt_len)
    with FlopCounterMode(display=False) as counter:
        forward_backward(model, batch, TrainConfig())
    counted = counter.get_total_flops()
    e, he, hd = cfg.emb_size, cfg.enc_hidden, cfg.dec_hidden
    if cfg.cell == "lstm":  # forward matmuls of every step, both encoder directions; the backward twice them
        enc_in = [e] + [2 * he] * (cfg.enc_layers - 1)
        dec_in = [e * (2 if cfg.input_feeding else 1)] + [hd] * (cfg.dec_layers - 1)
        forward = sum(2 * rows * src_len * 2 * 4 * he * (n + he) for n in enc_in)
        forward += sum(rows * tgt_len * 2 * 4 * hd * (n + hd) for n in dec_in)
        counted += 3 * forward
    else:  # torch skips the gradient of the encoder's zero initial state, which 3x the forward counts
        counted += cfg.enc_layers * 2 * rows * 2 * 3 * he * he
    formula = benchmark.flops_per_tgt_token(cfg, tgt_vocab, src_len, tgt_len) * batch.n_tokens
    assert formula == pytest.approx(counted, rel=1e-9)


def test_scores_need_one_reference_per_output_line(tmp_path: Path) -> None:
    (tmp_path / "bench-greedy.txt").write_text("a dog\ntwo dogs\n", encoding="utf-8")
    with pytest.raises(CorpusError, match="bench-greedy.txt: 2 lines for 3 references"):
        benchmark._quality(tmp_path, "greedy", "greedy", ["a dog", "two dogs", "a cat"])
    assert benchmark._quality(tmp_path, "greedy", "greedy", ["a dog", "two dogs"])["chrf_greedy"] == 100.0
