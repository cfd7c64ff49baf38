"""The benchmark's bookkeeping: peers of this CPU kind, ratios, and what it skips on hardware that cannot run it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from seq2seq.lab import benchmark
from seq2seq.machine import hardware


def test_peers_are_those_measured_on_this_kind_of_cpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def box(capability: str, tok_s: float) -> dict:
        return {
            "cpu_capability": capability,
            "machine": f"{capability} box",
            "peers": {"p": {"train_tgt_tok_s": tok_s}},
        }

    peers = {
        "machine": "old",
        "peers": {"p": {"train_tgt_tok_s": 1.0}},
        "machines": [box("AVX512", 2.0), box("AVX2", 4.0)],
    }
    path = tmp_path / "peers.json"
    path.write_text(json.dumps(peers))
    for capability, machine, tok_s in (("AVX2", "AVX2 box", 4.0), ("AVX512", "AVX512 box", 2.0)):
        monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda c=capability: c)
        assert benchmark.peers_for_this_cpu(path) == (machine, {"p": {"train_tgt_tok_s": tok_s}})
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "NEON")
    machine, figures = benchmark.peers_for_this_cpu(path)
    assert machine.startswith("old") and "NEON" in machine and figures == peers["peers"]


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
        skipped = benchmark._bf16_skipped()
        assert (skipped is None) == runs  # emulated bf16 is measured (and the JSON says it is not native)
        if not runs:
            assert "no native bf16" in skipped["skipped"] and "no primitive" in skipped["skipped"]
    hardware.cpu_bf16.cache_clear()
