"""The bad-input table: every case gives a clear message naming file/line/field, and loses nothing."""

from __future__ import annotations

import json
import logging
import math
import re
from typing import TYPE_CHECKING

import pytest
import torch
from corpora import write_corpus
from test_resume import DATA, MODEL

import seq2seq.updater as updater_module
from seq2seq.checkpoint import load_checkpoint
from seq2seq.cli import main
from seq2seq.config import ConfigError, DecodeConfig, TrainConfig
from seq2seq.errors import DivergedError
from seq2seq.machine.hardware import HardwareError, cpu_bf16
from seq2seq.prepared import Prepared
from seq2seq.text import read_lines
from seq2seq.train import RunOptions, RunSpec, train
from seq2seq.translation.torch_engine import Translator

if TYPE_CHECKING:
    from pathlib import Path


def run_cli(args: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str]:
    code = main(args)
    return code, capsys.readouterr().err


def preprocess(corpus: Path, out: Path, capsys: pytest.CaptureFixture) -> tuple[int, str]:
    args = ["preprocess", "--data", str(corpus), "--src", "xx", "--tgt", "yy", "--out", str(out), "--vocab-size", "60"]
    return run_cli(args, capsys)


def test_crlf_empty_pairs_and_huge_lines_are_cleaned_and_counted(tmp_path, capsys, caplog) -> None:
    caplog.set_level(logging.INFO, logger="seq2seq")
    corpus = write_corpus(tmp_path / "c", n_train=120)
    src = (corpus / "train.xx").read_text().splitlines()
    tgt = (corpus / "train.yy").read_text().splitlines()
    src[3], tgt[5] = "", "   "  # two empty pairs
    src[7] = tgt[7] = "word " * 20_000  # a 100,000-character line
    (corpus / "train.xx").write_bytes("".join(s + "\r\n" for s in src).encode())
    (corpus / "train.yy").write_text("".join(t + "\n" for t in tgt))
    for name in ("val.xx", "val.yy"):  # real CRLF bytes on both sides of a split
        (corpus / name).write_bytes((corpus / name).read_bytes().replace(b"\n", b"\r\n"))
        assert (corpus / name).read_bytes().count(b"\r\n") == 20
    assert (corpus / "train.xx").read_bytes().count(b"\r\n") == 120
    # the one line reader drops the \r of each line ending, and keeps the line count
    lines = read_lines(corpus / "train.xx")
    assert len(lines) == 120 and not any("\r" in line for line in lines)
    code, err = preprocess(corpus, tmp_path / "run", capsys)
    assert code == 0, err
    manifest = json.loads((tmp_path / "run" / "preprocess.json").read_text())
    assert manifest["removed"]["empty"] == 2 and manifest["removed"]["too_long"] == 1
    assert manifest["splits"]["train"] == 117 and manifest["splits"]["val"] == 20
    assert "too_long: removed 1 pairs" in caplog.text and "2 empty pairs dropped" in caplog.text
    cached = sorted(Prepared.load(tmp_path / "run").cache.glob("*.txt"))
    assert {"train.src.txt", "val.src.txt", "val.tgt.txt"} <= {f.name for f in cached}
    for f in cached:  # bytes, not read_text(), which would turn a stray \r into \n
        assert b"\r" not in f.read_bytes(), f.name


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("tiny")
    corpus = write_corpus(tmp / "c", n_train=120)
    train(
        RunSpec(corpus, "xx", "yy", tmp / "run"),
        DATA,
        MODEL,
        TrainConfig(max_steps=4, valid_every=4),
        RunOptions(progress=False),
    )
    return tmp / "run" / "best.pt"


def test_translation_input_cases(tiny_model, tmp_path, capsys) -> None:
    tr = Translator.from_checkpoint(tiny_model)
    long_input = "red " * 5000  # far longer than anything in training: capped, bounded time
    out = tr.translate(["", "red cat", "   ", long_input], DecodeConfig(beam_size=3, max_src_len=50))
    assert len(out) == 4 and out[0] == "" and out[2] == ""
    assert len(tr.tgt_tok.encode([out[3]])[0]) <= 2.0 * 51 + 10
    (tmp_path / "in.txt").write_bytes(b"red cat\r\n\r\nblue dog\r\n")
    code = main(["translate", "--checkpoint", str(tiny_model), "--input", str(tmp_path / "in.txt"),
                 "--output", str(tmp_path / "out.txt"), "--beam-size", "1"])  # fmt: skip
    assert code == 0
    out = (tmp_path / "out.txt").read_bytes()  # bytes: read_text() would hide a \r
    assert b"\r" not in out
    assert out.count(b"\n") == 3  # line count kept, empty line stays empty
    assert out.split(b"\n")[1] == b""


def test_nan_losses_are_skipped_then_stop_training(tmp_path, monkeypatch) -> None:
    corpus = write_corpus(tmp_path / "c", n_train=120)
    real = updater_module.forward_backward
    calls = {"n": 0}

    def flaky(model, batch, cfg, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3 or calls["n"] > 6:  # one stray NaN, then NaN forever
            return math.nan
        return real(model, batch, cfg, **kwargs)

    monkeypatch.setattr(updater_module, "forward_backward", flaky)
    cfg = TrainConfig(max_steps=50, valid_every=2, max_nan_steps=4, valid_bleu_sentences=0)
    with pytest.raises(DivergedError, match="from update 4;") as diverged:
        train(RunSpec(corpus, "xx", "yy", tmp_path / "run"), DATA, MODEL, cfg, RunOptions(progress=False))
    result = diverged.value.result
    assert result.steps == 5  # calls 1, 2, 4, 5, 6 updated; call 3 skipped; 7-10 skipped, then stop
    assert "non-finite" in result.stop_reason
    ckpt = load_checkpoint(tmp_path / "run" / "last.pt")
    assert ckpt["train_state"]["step"] == 4  # the last good checkpoint, not one after the NaNs
    assert all(torch.isfinite(t).all() for t in ckpt["model"].values())


def test_non_finite_weights_after_a_finite_update_are_never_saved(tmp_path, monkeypatch) -> None:
    """A finite loss and gradient can still leave non-finite weights (a huge step): the run stops as diverged
    and keeps the last good checkpoint (it wrote the non-finite weights into last.pt and best.pt at exit 0)."""
    corpus = write_corpus(tmp_path / "c", n_train=120)
    real = updater_module.forward_backward
    calls = {"n": 0}

    def overflowing_step(model, batch, cfg, **kwargs):
        calls["n"] += 1
        loss = real(model, batch, cfg, **kwargs)
        if calls["n"] == 5:  # as if the optimiser's step overflowed: the update goes ahead, finite loss
            with torch.no_grad():
                next(model.parameters()).fill_(math.inf)
        return loss

    monkeypatch.setattr(updater_module, "forward_backward", overflowing_step)
    cfg = TrainConfig(max_steps=5, valid_every=2, valid_bleu_sentences=0)
    with pytest.raises(DivergedError, match="after update 5 \\(non-finite weights\\).* is from update 4;"):
        train(RunSpec(corpus, "xx", "yy", tmp_path / "run"), DATA, MODEL, cfg, RunOptions(progress=False))
    for name in ("last.pt", "best.pt"):
        ckpt = load_checkpoint(tmp_path / "run" / name)
        assert all(torch.isfinite(t).all() for t in ckpt["model"].values()), name
    assert load_checkpoint(tmp_path / "run" / "last.pt")["train_state"]["step"] == 4


def test_a_minimum_learning_rate_above_the_learning_rate_is_one_line() -> None:
    """Every update ran at min_lr (the lr never decays below it)."""
    with pytest.raises(ConfigError, match="min_lr 0.01 is above lr 0.001: no update would run at lr"):
        TrainConfig(min_lr=0.01)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_real_non_finite_gradients_are_skipped_then_stop_training(tmp_path, monkeypatch, precision) -> None:
    # a real backward pass with the loss scaled beyond float32's range (1e300): finite loss, inf/NaN gradients
    corpus = write_corpus(tmp_path / "c", n_train=120)
    if precision == "bf16" and not cpu_bf16().runs:  # where bf16 cannot run: the clear error, not a skip
        cfg = TrainConfig(max_steps=2, precision="bf16")
        with pytest.raises(HardwareError, match="precision bf16: this CPU"):
            train(RunSpec(corpus, "xx", "yy", tmp_path / "run"), DATA, MODEL, cfg, RunOptions(progress=False))
        assert not (tmp_path / "run").exists()
        return
    real = updater_module.forward_backward
    calls = {"n": 0}
    seen: dict[int, dict[str, torch.Tensor]] = {}
    bad_grads: list[bool] = []

    def overflowing(model, batch, cfg, **kwargs):
        calls["n"] += 1
        seen[calls["n"]] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        overflow = calls["n"] == 3 or calls["n"] > 6  # one stray overflow, then overflow forever
        if overflow:
            kwargs["scale"] = kwargs["scale"] * 1e300
        loss = real(model, batch, cfg, **kwargs)
        if overflow:
            bad_grads.append(any(not torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None))
        return loss

    monkeypatch.setattr(updater_module, "forward_backward", overflowing)
    cfg = TrainConfig(max_steps=50, valid_every=2, max_nan_steps=4, valid_bleu_sentences=0, precision=precision)
    with pytest.raises(DivergedError, match="from update 4;") as diverged:
        train(RunSpec(corpus, "xx", "yy", tmp_path / "run"), DATA, MODEL, cfg, RunOptions(progress=False))
    result = diverged.value.result
    assert len(bad_grads) == 5 and all(bad_grads)  # calls 3, 7, 8, 9, 10: the gradients really were non-finite
    assert result.steps == 5 and calls["n"] == 10  # calls 1, 2, 4, 5, 6 updated; 3 and 7-10 skipped, then stop
    assert "non-finite" in result.stop_reason
    for k, v in seen[3].items():  # the skipped update left the weights as they were
        assert torch.equal(v, seen[4][k]), k
    assert any(not torch.equal(v, seen[5][k]) for k, v in seen[4].items())  # and the next one did update
    ckpt = load_checkpoint(tmp_path / "run" / "last.pt")
    assert ckpt["train_state"]["step"] == 4  # the last good checkpoint, not one after the skips
    assert all(torch.isfinite(t).all() for t in ckpt["model"].values())
    assert all(float(s["step"]) == 4 for s in ckpt["optimizer"]["state"].values())  # Adam never saw a bad step


def test_same_seed_gives_identical_runs(tmp_path) -> None:
    corpus = write_corpus(tmp_path / "c", n_train=120)
    cfg = TrainConfig(max_steps=6, valid_every=3, valid_bleu_sentences=5)
    runs = [
        train(RunSpec(corpus, "xx", "yy", tmp_path / f"r{i}"), DATA, MODEL, cfg, RunOptions(progress=False))
        for i in range(2)
    ]
    strip = [[{k: v for k, v in r.items() if k != "elapsed_s"} for r in run.history] for run in runs]
    assert strip[0] == strip[1]
    a, b = (load_checkpoint(tmp_path / f"r{i}" / "last.pt")["model"] for i in range(2))
    assert all(torch.equal(a[k], b[k]) for k in a)
    t0, t1 = (Translator.from_checkpoint(tmp_path / f"r{i}" / "best.pt") for i in range(2))
    sents = ["red cat", "big old house tree"]
    assert t0.translate(sents) == t1.translate(sents)


def test_a_model_too_large_for_this_machine_is_one_line_before_anything_is_allocated(tmp_path, capsys) -> None:
    """Each size within its bound, together 67.8 billion parameters (25.8 billion in the recurrent matrices
    alone): refused from the sizes (it was an allocator error, or the OOM killer)."""
    from seq2seq.cli import main

    corpus = write_corpus(tmp_path / "c", n_train=60)
    big = ["--enc-hidden", "8192", "--enc-layers", "32", "--dec-hidden", "8192", "--dec-layers", "32"]
    args = ["train", "--data", str(corpus), "--src", "xx", "--tgt", "yy", "--out", str(tmp_path / "run"),
            "--vocab-size", "60", "--max-steps", "1", *big]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and re.search(r"a model of more than 25,769,[0-9,]+ parameters needs over 412\.3 GB", err[0])
    assert not (tmp_path / "run" / "last.pt").exists()


def test_a_batch_whose_output_scores_alone_exceed_the_memory_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """--max-tokens 1,000,000 is within its bound, but one batch's (tokens x 34 pieces) float32 scores need 136 MB."""
    from seq2seq import updater
    from seq2seq.cli import main

    monkeypatch.setattr(updater, "half_memory", lambda: 50_000_000)  # a 100 MB machine
    corpus = write_corpus(tmp_path / "c", n_train=60)
    args = ["train", "--data", str(corpus), "--src", "xx", "--tgt", "yy", "--out", str(tmp_path / "run"),
            "--vocab-size", "60", "--max-steps", "1", "--precision", "fp32", "--max-tokens"]  # fmt: skip
    assert main([*args, "1000000"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "batches of 1,000,000 target tokens over 34 target pieces need over" in err[0], err
    assert "(the output layer's scores alone: 0.1 GB, the decoder's activations at least 8.2 GB)" in err[0], err
    assert not (tmp_path / "run" / "last.pt").exists()
    assert main([*args, "1000", "--overwrite"]) == 0  # 0.14 MB of scores: trains
