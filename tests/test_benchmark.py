"""The benchmark's bookkeeping: peers of this CPU kind, ratios, and what it skips on hardware that cannot run it."""

from __future__ import annotations

import datetime
import json
import os
import sys
from types import SimpleNamespace
from typing import TYPE_CHECKING

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from seq2seq.batches import Batch
from seq2seq.cli import main
from seq2seq.config import ModelConfig, TrainConfig
from seq2seq.devtools import benchmark
from seq2seq.devtools import peers as peer_file
from seq2seq.errors import CorpusError
from seq2seq.machine import hardware, process
from seq2seq.model import Seq2Seq
from seq2seq.objective import forward_backward
from seq2seq.translation import onnx_model

if TYPE_CHECKING:
    from pathlib import Path


def _entry(model: str, capability: str, bf16: bool, tok_s: float, seconds: int = 900, cores: int = 2) -> dict:
    """A peers.json `machines` entry as ../shared/peers/run.sh writes it."""
    native = " + native bf16" if bf16 else ", no native bf16"
    figures = {"train_tgt_tok_s": tok_s, "train_seconds": seconds}
    return {"cpu_capability": capability, "bf16": bf16, "machine": f"{cores} cores {model}, {capability}{native}, "
            "2 threads, 2026-12-03", "peers": {"opennmt-py": figures}}  # fmt: skip


def test_ratios_only_against_a_peer_measured_on_a_machine_like_this_one(tmp_path: Path) -> None:
    here = peer_file.PeerMachine("AMD EPYC", "AVX512", True, 2)
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
    machine, entry = peer_file.peers_for_this_machine(path, here)
    assert entry is None
    assert machine.startswith("peer figures are from 2 cores AMD EPYC, AVX512, no native bf16")
    assert machine.endswith("; run ../shared/peers/run.sh here") and "Xeon" in machine
    same = _entry("AMD EPYC", "AVX512", True, 6.0)
    path.write_text(json.dumps({"machines": [*others, same]}))
    assert peer_file.peers_for_this_machine(path, here) == (same["machine"], same)


def test_the_core_count_a_peers_entry_gives_must_match_this_machine_s(tmp_path: Path) -> None:
    """An entry's `cores` must be this machine's; run.sh's machine line says "2 cores" on any machine (its
    nproc obeys its OMP_NUM_THREADS=2), so that count is not one, and such entries match as before."""
    here = peer_file.PeerMachine("AMD EPYC", "AVX512", True, 2)
    path = tmp_path / "peers.json"
    for cores, matches in ((4, False), (2, True), (None, True)):
        entry = _entry("AMD EPYC", "AVX512", True, 6.0, cores=4) | ({"cores": cores} if cores else {})
        path.write_text(json.dumps({"machines": [entry]}))
        assert (peer_file.peers_for_this_machine(path, here)[1] == entry) is matches
    assert peer_file.this_machine().cores == len(os.sched_getaffinity(0))


def test_the_benchmark_gives_no_ratio_against_another_machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "peers.json"
    other, same = _entry("Some Other CPU", "AVX2", False, 100.0), _entry("AMD EPYC", "AVX512", True, 100.0)
    path.write_text(json.dumps({"machines": [other]}))
    monkeypatch.setattr(peer_file, "this_machine", lambda: peer_file.PeerMachine("AMD EPYC", "AVX512", True, 2))
    result = {"train_tgt_tok_s_fp32": 300.0}
    assert peer_file.peer_ratios(result, path, quick=False, own_model=False) == {"ratios_vs_peers": {"skipped": (
        "peer figures are from 2 cores Some Other CPU, AVX2, no native bf16, 2 threads, 2026-12-03; "
        "run ../shared/peers/run.sh here")}}  # fmt: skip
    path.write_text(json.dumps({"machines": [other, same]}))
    found = peer_file.peer_ratios(result, path, quick=False, own_model=False)
    assert found["peers_machine"] == same["machine"]
    assert found["ratios_vs_peers"] == {"train_tgt_tok_s_fp32": {"opennmt-py": 3.0}}
    assert "skipped" in peer_file.peer_ratios(result, path, quick=True, own_model=False)["ratios_vs_peers"]


def test_without_a_peers_file_the_ratios_say_why_they_are_missing() -> None:
    assert peer_file.peer_ratios({"train_tgt_tok_s_fp32": 300.0}, None, quick=False, own_model=False) == {
        "ratios_vs_peers": {"skipped": "no peers file: run ../shared/peers/run.sh here"}}  # fmt: skip


def test_training_ratios_only_against_a_peer_run_of_900_s_whose_date_is_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`run.sh 240` writes a peers entry of the peer's first 4 minutes, its warm-up: no training ratio
    from it (nor from an entry that does not say how long it trained); its date and age are recorded."""
    monkeypatch.setattr(peer_file, "this_machine", lambda: peer_file.PeerMachine("AMD EPYC", "AVX512", True, 2))
    result = {"train_tgt_tok_s_fp32": 300.0, "train_peak_rss_mb": 500.0}
    path = tmp_path / "peers.json"
    for seconds, ratio in ((900, 3.0), (1200, 3.0), (240, None), (None, None)):
        entry = _entry("AMD EPYC", "AVX512", True, 100.0, seconds)
        entry["peers"]["opennmt-py"] |= {"train_peak_rss_mb": 2000.0}
        path.write_text(json.dumps({"machines": [entry]}))
        found = peer_file.peer_ratios(result, path, quick=False, own_model=False)
        peer = found["ratios_vs_peers"]["train_tgt_tok_s_fp32"]["opennmt-py"]
        if ratio:
            assert peer == ratio and found["ratios_vs_peers"]["train_peak_rss_mb"]["opennmt-py"] == 4.0
        else:
            assert "training ratios need a run of 900 s or more" in peer["skipped"]
            assert ("trained 240 s" if seconds else "does not say how long it trained") in peer["skipped"]
            assert "skipped" in found["ratios_vs_peers"]["train_peak_rss_mb"]["opennmt-py"]
        assert found["peers_date"] == "2026-12-03" and found["peers_age_days"] >= 3
    entry = _entry("AMD EPYC", "AVX512", True, 100.0)
    assert peer_file.peer_date(entry, datetime.date(2026, 12, 10)) == {"peers_date": "2026-12-03", "peers_age_days": 7}
    assert peer_file.peer_date(entry | {"date": "2026-12-09"}, datetime.date(2026, 12, 10))["peers_age_days"] == 1
    assert peer_file.peer_date({"machine": "2 cores AMD EPYC AVX-512+bf16, 2 threads"}) == {}


def test_ratios_name_the_precision_and_skip_translation_of_the_benchmark_s_own_model() -> None:
    """The peer trains in fp32: fp32 and bf16 are compared with it separately (bf16 skipped where it did
    not run); translation ratios only for a --checkpoint, not for the benchmark's minutes-old model."""
    peers = {"opennmt-py": {"train_tgt_tok_s": 100.0, "train_seconds": 900, "translate_wall_s_beam5": 8.0}}
    result = {"train_tgt_tok_s_fp32": 200.0, "train_tgt_tok_s_bf16": 400.0, "translate_wall_s_beam5": 2.0}
    assert peer_file.compare(result, peers) == {"train_tgt_tok_s_fp32": {"opennmt-py": 2.0},
        "train_tgt_tok_s_bf16": {"opennmt-py": 4.0}, "translate_wall_s_beam5": {"opennmt-py": 4.0}}  # fmt: skip
    result["train_tgt_tok_s_bf16"] = {"skipped": "no bf16 here"}
    ratios = peer_file.compare(result, peers, own_model=True)
    assert ratios["train_tgt_tok_s_fp32"] == {"opennmt-py": 2.0}
    assert ratios["train_tgt_tok_s_bf16"] == {"opennmt-py": {"skipped": "no bf16 here"}}
    assert "translation ratios need --checkpoint" in ratios["translate_wall_s_beam5"]["opennmt-py"]["skipped"]


def test_ratios_say_better_as_greater_than_one_and_skip_what_a_peer_lacks() -> None:
    result = {"train_tgt_tok_s_fp32": 300.0, "translate_wall_s_beam5": 2.0}
    peers = {"a": {"train_tgt_tok_s": 100.0, "train_seconds": 900, "translate_wall_s_beam5": 8.0},
             "b": {"train_tgt_tok_s": 600.0, "train_seconds": 900}}  # fmt: skip
    assert peer_file.compare(result, peers) == {
        "train_tgt_tok_s_fp32": {"a": 3.0, "b": 0.5},
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


class _Prepared:
    """What the benchmark reads of a prepared folder: the vocabularies and the train split's lengths."""

    vocab = (4000, 4000)

    def split(self, name: str) -> SimpleNamespace:
        return SimpleNamespace(src_lens=np.array([14, 18]), tgt_lens=np.array([13, 16]))


LENGTHS = (17.0, 15.5)  # _Prepared's mean lengths + EOS/BOS


def _benchmark(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *flags: str, bf16: bool = True
) -> tuple[dict, list[tuple]]:
    """`seq2seq benchmark FLAGS` with the measurements stubbed: the JSON it prints, and what it did, in order."""
    calls: list[tuple] = []

    def train(corpus: object, run: Path, precision: str, warmup_s: float, measure_s: float, extra: list[str]) -> dict:
        calls.append(("train", precision, extra))
        run.mkdir(parents=True, exist_ok=True)
        (run / "last.pt").write_bytes(b"a model")
        return {"tgt_tok_s": {"fp32": 1000.0, "bf16": 2000.0}[precision], "peak_rss_mb": 600.0}

    def translate(ckpt: Path, src: Path, out: Path, n: int, ref: Path, threads: int) -> dict:
        calls.append(("translate", threads))
        return {"translate_wall_s_beam5": 2.0}

    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    for name in ("test.de", "test.en", "model.pt"):
        (data / name).write_text("ein Hund\n", encoding="utf-8")
    figures = {"train_tgt_tok_s": 500.0, "train_seconds": 900, "translate_wall_s_beam5": 4.0}
    peers = {"machines": [{"cpu_capability": "AVX512", "bf16": True, "machine": "2 cores AMD EPYC, AVX512 + native "
                           "bf16, 2 threads, 2026-12-03", "peers": {"opennmt-py": figures}}]}  # fmt: skip
    if not (data / "peers.json").exists():  # a test may have changed it
        (data / "peers.json").write_text(json.dumps(peers))
    monkeypatch.setattr("seq2seq.preprocess.ensure_prepared", lambda *args, **kwargs: _Prepared())
    monkeypatch.setattr(benchmark, "measure_training", train)
    monkeypatch.setattr(benchmark, "measure_translation", translate)
    monkeypatch.setattr(benchmark, "gemm_gflop_s", lambda dtype, *args: calls.append(("gemm", dtype)) or 100.0)
    monkeypatch.setattr(benchmark, "bf16_skipped", lambda: None if bf16 else {"skipped": "no bf16 here"})
    monkeypatch.setattr(benchmark, "_load", lambda path, threads=0: calls.append(("load", path)))
    monkeypatch.setattr(peer_file, "this_machine", lambda: peer_file.PeerMachine("AMD EPYC", "AVX512", True, 2))
    monkeypatch.setattr(process, "apply", lambda settings: calls.append(("apply", settings)))
    monkeypatch.setattr(torch, "set_num_threads", lambda n: calls.append(("threads", n)))
    given = [f.replace("DATA", str(data)) for f in flags]
    argv = ["benchmark", "--data", str(data), "--out", str(tmp_path / "bench"), "--test-split", "test", *given]
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out), calls


def test_the_json_says_what_each_side_trained_and_their_flops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """OpenNMT-py's matched setup has input feeding, untied embeddings and one joint 8k model's vocabularies;
    ours by default neither: the JSON records both, each with the same FLOP formula."""
    result, calls = _benchmark(tmp_path, monkeypatch, capsys, "--peers", "DATA/peers.json")
    arch = result["architectures"]
    ours, peer = arch["ours"], arch["opennmt-py"]
    assert (ours["input_feeding"], ours["tie_embeddings"], ours["src_vocab"], ours["tgt_vocab"]) == (
        False, True, 4000, 4000)  # fmt: skip
    assert (peer["input_feeding"], peer["tie_embeddings"], peer["src_vocab"], peer["tgt_vocab"]) == (
        True, False, 5481, 3960)  # fmt: skip
    assert peer["precision"] == "fp32" and peer["vocab_from"] == "../shared/PEERS.md"
    for side, cfg in ((ours, ModelConfig()), (peer, ModelConfig(input_feeding=True, tie_embeddings=False))):
        assert {k: side[k] for k in ("cell", "emb_size", "enc_hidden", "dec_hidden", "attention")} == {
            "cell": cfg.cell, "emb_size": cfg.emb_size, "enc_hidden": cfg.enc_hidden, "dec_hidden": cfg.dec_hidden,
            "attention": cfg.attention}  # fmt: skip
        flops = benchmark.flops_per_tgt_token(cfg, side["tgt_vocab"], *LENGTHS)
        assert side["model_mflop_per_tgt_token"] == round(flops / 1e6, 2)
    assert result["model_mflop_per_tgt_token"] == ours["model_mflop_per_tgt_token"]
    assert {"input_feeding", "tie_embeddings", "src_vocab", "tgt_vocab"} <= set(arch["differ"])
    assert "differ" in arch["note"] and "model" not in result  # no more "ModelConfig() defaults"
    assert all("--input-feeding" not in c[2] for c in calls if c[0] == "train")
    peers = json.loads((tmp_path / "data" / "peers.json").read_text())
    peers["machines"][0]["peers"]["opennmt-py"] |= {"src_vocab": 5000, "tgt_vocab": 3500}
    (tmp_path / "data" / "peers.json").write_text(json.dumps(peers))
    peer = _benchmark(tmp_path, monkeypatch, capsys, "--peers", "DATA/peers.json")[0]["architectures"]["opennmt-py"]
    assert (peer["src_vocab"], peer["tgt_vocab"], peer["vocab_from"]) == (5000, 3500, "the peers file")


def test_input_feeding_trains_the_peer_s_decoder_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    result, calls = _benchmark(tmp_path, monkeypatch, capsys, "--input-feeding")
    assert [c[1] for c in calls if c[0] == "train"] == ["fp32", "bf16"]
    assert all(c[2][-1] == "--input-feeding" for c in calls if c[0] == "train")
    ours = result["architectures"]["ours"]
    assert ours["input_feeding"] is True and "input_feeding" not in result["architectures"]["differ"]
    flops = benchmark.flops_per_tgt_token(ModelConfig(input_feeding=True), 4000, *LENGTHS)
    assert ours["model_mflop_per_tgt_token"] == result["model_mflop_per_tgt_token"] == round(flops / 1e6, 2)
    assert result["model_gflop_s"] == round(flops * 1000.0 / 1e9, 1)


def test_each_gemm_right_after_its_training_window_and_translation_in_decoding_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The fp32 GEMM right after the fp32 window (not minutes later, after bf16's), the bf16 one after
    bf16's; the in-process translation under seq2seq translate's process settings and the benchmark's
    threads, which it also gives the ONNX engine and the child processes."""
    result, calls = _benchmark(tmp_path, monkeypatch, capsys, "--checkpoint", "DATA/model.pt")
    assert [c[:2] for c in calls if c[0] in ("train", "gemm")] == [
        ("train", "fp32"), ("gemm", torch.float32), ("train", "bf16"), ("gemm", torch.bfloat16)]  # fmt: skip
    assert (result["gemm_fp32_gflop_s"], result["gemm_bf16_gflop_s"]) == (100.0, 100.0)
    assert "gemm_peak_gflop_s" not in result and "gemm_peak_gflop_s_bf16" not in result
    threads = min(2, hardware.usable_cores())
    assert calls[0] == ("apply", process.ProcessSettings.for_decoding())  # first: before the checkpoint's load
    assert calls.index(("threads", threads)) < calls.index(("translate", threads))
    assert result["translate_threads"] == threads
    result, calls = _benchmark(tmp_path, monkeypatch, capsys, bf16=False)
    assert [c[:2] for c in calls if c[0] in ("train", "gemm")] == [("train", "fp32"), ("gemm", torch.float32)]
    assert result["train_tgt_tok_s_bf16"] == {"skipped": "no bf16 here"} and "gemm_bf16_gflop_s" not in result


def test_the_ratios_in_the_json_skip_what_is_not_like_for_like(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    result = _benchmark(tmp_path, monkeypatch, capsys)[0]
    assert result["ratios_vs_peers"] == {"skipped": "no peers file: run ../shared/peers/run.sh here"}
    ratios = _benchmark(tmp_path, monkeypatch, capsys, "--peers", "DATA/peers.json")[0]["ratios_vs_peers"]
    assert ratios["train_tgt_tok_s_fp32"] == {"opennmt-py": 2.0} and ratios["train_tgt_tok_s_bf16"] == {
        "opennmt-py": 4.0}  # fmt: skip
    assert "translation ratios need --checkpoint" in ratios["translate_wall_s_beam5"]["opennmt-py"]["skipped"]
    flags = ("--peers", "DATA/peers.json", "--checkpoint", "DATA/model.pt")
    result = _benchmark(tmp_path, monkeypatch, capsys, *flags)[0]
    assert result["ratios_vs_peers"]["translate_wall_s_beam5"] == {"opennmt-py": 2.0}
    assert result["peers_date"] == "2026-12-03"


def test_training_windows_report_real_target_tokens_per_update(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def child(cmd: list[str], log: Path, threads: int = 0) -> tuple[float, float]:
        records = [{"type": "train", "step": s, "tokens": 2100 * s + 7, "elapsed_s": s / 10} for s in range(5, 500, 5)]
        log.write_text("")
        (log.parent / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
        return 50.0, 600.0

    monkeypatch.setattr(benchmark, "_run_child", child)
    corpus = benchmark.Corpus(tmp_path, "de", "en")
    (tmp_path / "run").mkdir()
    window = benchmark.measure_training(corpus, tmp_path / "run", "fp32", 10.0, 30.0, [])
    assert window["tgt_tokens_per_update"] == 2100 and window["tgt_tok_s"] == 21000.0


def test_translation_children_and_onnx_sessions_run_on_the_benchmark_s_threads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The peer translates with OMP_NUM_THREADS=2: so do the benchmark's `seq2seq translate` children (and on
    that many cores, where there are more: ONNX Runtime makes a thread per usable core), and its ONNX engine."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "16")  # the benchmark's own decoding setting
    show = "import os; print(os.environ.get('OMP_NUM_THREADS'), os.environ.get('MKL_NUM_THREADS'), " \
           "len(os.sched_getaffinity(0)), os.environ.get('ONEDNN_PRIMITIVE_CACHE_CAPACITY'))"  # fmt: skip
    benchmark._run_child([sys.executable, "-c", show], tmp_path / "one.log", threads=1)
    assert (tmp_path / "one.log").read_text().split() == ["1", "1", "1", "None"]
    benchmark._run_child([sys.executable, "-c", show], tmp_path / "all.log")
    assert (tmp_path / "all.log").read_text().split() == ["None", "None", str(len(os.sched_getaffinity(0))), "None"]
    loaded = []
    monkeypatch.setattr(onnx_model, "is_onnx_model", lambda path: True)
    monkeypatch.setattr(onnx_model.OnnxTranslator, "load", lambda path, threads=0: loaded.append(threads) or
                        SimpleNamespace(check=lambda cfg: None))  # fmt: skip
    benchmark._load(tmp_path / "model.onnx.zip", 2)
    assert loaded == [2]
