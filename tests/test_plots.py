"""Plots and diagnostics: training curves, attention maps, gradient flow, memory span."""

from __future__ import annotations

import builtins
import importlib.util
import json
import math
import random
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from seq2seq.batches import Batch, pad
from seq2seq.cli import main
from seq2seq.config import DataConfig, DecodeConfig, ModelConfig, TrainConfig
from seq2seq.errors import RunFolderError
from seq2seq.model import DecoderState, Memory, Seq2Seq
from seq2seq.runfiles import read_metrics
from seq2seq.science.gradflow import fresh_gradient_flow, gradient_flow
from seq2seq.tokenizer import BOS_ID, EOS_ID
from seq2seq.tools.plots import PlotError, new_figure, plot_run
from seq2seq.train import RunOptions, RunSpec, train
from seq2seq.translation.torch_engine import Translator

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
needs_matplotlib = pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="needs seq2seq-nmt[plot]")
WORDS = "red blue green big small dog cat bird tree house sees has likes the a".split()


def assert_png(path: str | Path) -> None:
    data = Path(path).read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    assert len(data) > 5000, f"{path} is suspiciously small ({len(data)} bytes)"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model trained for 20 steps on a word-reversal toy corpus."""
    root = tmp_path_factory.mktemp("plots")
    rng = random.Random(0)
    for split, n in (("train", 300), ("val", 20), ("test", 20)):
        src = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 8))) for _ in range(n)]
        (root / f"{split}.xx").write_text("".join(s + "\n" for s in src), encoding="utf-8")
        (root / f"{split}.yy").write_text("".join(" ".join(s.split()[::-1]).upper() + "\n" for s in src), "utf-8")
    model = ModelConfig(emb_size=16, enc_hidden=16, dec_hidden=16, dropout=0.1)
    cfg = TrainConfig(max_steps=20, valid_every=10, log_every=2, max_tokens=400, valid_bleu_sentences=10, threads=1)
    train(RunSpec(root, "xx", "yy", root / "run"), DataConfig(vocab_size=48), model, cfg, RunOptions(progress=False))
    return root / "run"


@needs_matplotlib
def test_plot_run_writes_curves(run: Path) -> None:
    paths = plot_run(run)
    assert sorted(p.name for p in paths) == ["bleu.png", "grad_norm.png", "loss.png", "lr.png"]
    for p in paths:
        assert p.parent == run
        assert_png(p)


def test_metrics_are_read_by_type_with_the_latest_record_of_a_step_winning(tmp_path: Path) -> None:
    lines = [{"type": "train", "step": 2, "loss": 5.0}, {"type": "train", "step": 4, "loss": 4.0},
             {"type": "valid", "step": 4, "val_bleu": 1.0}, {"type": "train", "step": 4, "loss": 3.5}]  # fmt: skip
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in lines) + "\n")  # a resumed run rewrote step 4
    recs = read_metrics(path)
    assert [r["loss"] for r in recs["train"]] == [5.0, 3.5] and [r["step"] for r in recs["valid"]] == [4]
    path.write_text(path.read_text() + '{"type": "train", "step": 6, "lo\n')  # cut short by a kill
    with pytest.raises(RunFolderError, match=r"metrics.jsonl:6: not JSON"):
        read_metrics(path)
    assert main(["plot", "--run", str(tmp_path)]) == 2


def test_plot_run_without_metrics_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PlotError, match="metrics.jsonl"):
        plot_run(tmp_path)


@pytest.mark.parametrize("beam_size", [1, 3])
def test_attention_recorded_per_output_step(run: Path, beam_size: int) -> None:
    """Each hypothesis carries the attention of its own path (EOS step included), whatever the batch."""
    translator = Translator.from_checkpoint(run / "best.pt")
    sentences = ["the big dog sees a small cat", "red bird", "a tree has the green house and the blue cat"]
    cfg = DecodeConfig(beam_size=beam_size, precision="fp32")  # compared with an fp32 re-run below
    nbest = translator.translate_nbest(sentences, cfg, keep_attention=True)
    model = translator.model
    for sentence, [(_, hyp)] in zip(sentences, nbest):
        src = translator.src_tok.encode([sentence])
        n_src = len(src[0]) + 1  # + EOS
        assert hyp.attention.shape[0] == len(hyp.ids) + 1 and hyp.attention.shape[1] >= n_src
        assert not hyp.attention[:, n_src:].any()  # padding columns of a shorter sentence in the batch
        with torch.no_grad():  # re-run the hypothesis teacher-forced
            memory, state = model.encode(pad(src, after=EOS_ID), torch.tensor([n_src]))
            _, _, weights = model.decoder(torch.tensor([[BOS_ID, *hyp.ids]]), state, memory)
        assert torch.allclose(torch.from_numpy(hyp.attention[:, :n_src]), weights[0], atol=1e-5)


@needs_matplotlib
@pytest.mark.parametrize("beam_size", ["1", "3"])
def test_cli_attention_map(run: Path, tmp_path: Path, beam_size: str) -> None:
    out = tmp_path / "att.png"
    args = ["attention", "--checkpoint", str(run / "best.pt"), "--sentence", "a red bird has the tree"]
    assert main([*args, "--out", str(out), "--beam-size", beam_size]) == 0
    assert_png(out)


@needs_matplotlib
def test_a_long_sentence_keeps_the_attention_figure_bounded(tmp_path: Path) -> None:
    """400 source and 900 output pieces: at most MAX_INCHES a side (the size grew with the pieces: 130 x 270
    inches, 560 million pixels), every k-th piece labelled."""
    from PIL import Image

    from seq2seq.tools.plots import MAX_INCHES, plot_attention

    src, tgt = [f"\u2581s{i}" for i in range(400)], [f"\u2581t{i}" for i in range(900)]
    weights = np.full((900, 400), 1 / 400)
    out = plot_attention(weights, src, tgt, tmp_path / "long.png", title="long")
    with Image.open(out) as image:
        assert max(image.size) <= MAX_INCHES * 120 and min(image.size) > 1000, image.size
    small = plot_attention(weights[:5, :4], src[:4], tgt[:5], tmp_path / "short.png")  # short: as before
    with Image.open(small) as image:
        assert image.size[0] == 6 * 120


def test_cli_plot(run: Path) -> None:
    (run / "loss.png").unlink(missing_ok=True)
    assert main(["plot", "--run", str(run)]) == 0
    assert_png(run / "loss.png")


def test_gradient_flow_one_finite_positive_value_per_step(run: Path) -> None:
    model = Translator.from_checkpoint(run / "best.pt").model
    src, tgt = [[5, 6, 7, 8, 9], [10, 11]], [[12, 13, 14], [15, 16, 17, 18, 19, 20]]
    batch = Batch(pad(src, after=EOS_ID), torch.tensor([6, 3]), pad(tgt, before=BOS_ID), pad(tgt, after=EOS_ID), 11)
    for loss in ("last", "all"):
        result = gradient_flow(model, batch, loss)
        assert len(result["encoder"]) == 6 and len(result["decoder"]) == 7
        values = result["encoder"] + result["decoder"]
        assert all(math.isfinite(v) and v > 0 for v in values), result
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_gradient_flow_is_the_total_derivative_through_time(cell: str) -> None:
    """Decoder ||dL/dh_t|| equals a hand-split run: h_t as the state of a second call plus its direct use."""
    torch.manual_seed(0)
    model = Seq2Seq(ModelConfig(cell=cell, emb_size=8, enc_hidden=6, dec_hidden=10, dropout=0.0), 30, 30).double()
    src, tgt = [[5, 6, 7, 8, 9, 10]], [[11, 12, 13, 14, 15]]
    batch = Batch(pad(src, after=EOS_ID), torch.tensor([7]), pad(tgt, before=BOS_ID), pad(tgt, after=EOS_ID), 6)
    measured = gradient_flow(model, batch, "all")["decoder"]
    steps = batch.tgt_in.size(1)
    for t in range(steps - 1):
        memory, state = model.encode(batch.src_ids, batch.src_lens)
        memory = Memory(*(None if m is None else m.detach() for m in memory))
        _, state1, _ = model.decoder(batch.tgt_in[:, : t + 1], state, memory)
        h_t = state1.rnn[0]  # (1, 1, Hd): the state at step t, as a node
        att2, _, _ = model.decoder(batch.tgt_in[:, t + 1 :], DecoderState((h_t, *state1.rnn[1:]), None), memory)
        direct, _ = model.decoder._attend(h_t.transpose(0, 1), memory)  # the step-t output from the same node
        loss = F.cross_entropy(model.logits(att2[0]), batch.tgt_out[0, t + 1 :], reduction="sum")
        loss = loss + F.cross_entropy(model.logits(direct[0]), batch.tgt_out[0, t : t + 1], reduction="sum")
        (grad,) = torch.autograd.grad(loss, [h_t])
        assert measured[t] == pytest.approx(grad.norm().item(), rel=1e-9)


def test_fresh_rnn_gradient_vanishes_through_the_decoder() -> None:
    result = fresh_gradient_flow(["rnn"], length=30, batch_size=4)["rnn"]
    assert len(result["decoder"]) == 31 and len(result["encoder"]) == 31
    assert result["decoder"][0] < 1e-4 * result["decoder"][-1]


@needs_matplotlib
def test_cli_gradflow_fresh_and_checkpoint(run: Path, tmp_path: Path) -> None:
    out = tmp_path / "fresh.png"
    assert main(["gradflow", "--cell", "all", "--length", "12", "--batch-size", "2", "--out", str(out)]) == 0
    assert_png(out)
    (tmp_path / "src.txt").write_text("the dog sees a cat\nred bird\n", encoding="utf-8")
    out = tmp_path / "ckpt.png"
    args = ["gradflow", "--checkpoint", str(run / "best.pt"), "--input", str(tmp_path / "src.txt")]
    assert main([*args, "--out", str(out)]) == 0
    assert_png(out)
    assert main(["gradflow", "--checkpoint", str(run / "best.pt"), "--out", str(out)]) == 2  # no --input


@needs_matplotlib
def test_gradflow_keeps_models_of_the_same_run_name_apart(run: Path, tmp_path: Path, capsys) -> None:
    """a/run/best.pt and b/run/best.pt were both "run/best.pt": one of them vanished from plot and summary."""
    import shutil

    models = [tmp_path / side / "run" / "best.pt" for side in "ab"]
    for model in models:
        model.parent.mkdir(parents=True)
        shutil.copy(run / "best.pt", model)
    (tmp_path / "src.txt").write_text("the dog sees a cat\n", encoding="utf-8")
    args = ["gradflow", "--input", str(tmp_path / "src.txt"), "--out", str(tmp_path / "g.png"), "--checkpoint"]
    assert main([*args, *map(str, models)]) == 0
    out = capsys.readouterr().out
    assert all(f"{model} decoder:" in out for model in models), out
    assert main([*args, str(models[0]), str(models[0])]) == 2
    assert "more than once" in capsys.readouterr().err


@needs_matplotlib
def test_cli_memory_span(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["memory-span", "--out", str(tmp_path), "--quick", "--cells", "gru", "--delays", "3", "--steps", "10"]
    assert main(args) == 0
    assert "gru" in capsys.readouterr().out
    assert_png(tmp_path / "memory_span.png")


def test_missing_matplotlib_gives_install_hint(
    run: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real_import = builtins.__import__

    def no_matplotlib(name: str, *args, **kwargs):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    with pytest.raises(PlotError, match=r"pip install 'seq2seq-nmt\[plot\]'"):
        new_figure()
    assert main(["plot", "--run", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'seq2seq-nmt[plot]'" in err


def test_the_last_outputs_gradient_averages_sentences_at_their_own_distance_from_eos() -> None:
    """By position, a 3-piece sentence's direct gradient at its EOS (t = 3) was averaged with an 8-piece one's
    vanished gradient 5 steps before its EOS: a spike where nothing reaches. Aligned at each EOS, the batch's
    curve is the mean of the sentences' own curves at equal distance d from their loss."""
    torch.manual_seed(0)
    model = Seq2Seq(ModelConfig(cell="rnn", emb_size=8, enc_hidden=6, dec_hidden=10, dropout=0.0), 30, 30).double()
    src, tgt = [[5, 6, 7, 8], [9, 10, 11]], [[11, 12, 13], [14, 15, 16, 17, 18, 19, 20, 21]]

    def flow(rows: list[int], loss: str) -> list[float]:
        pick = lambda seqs: [seqs[i] for i in rows]  # noqa: E731
        lens = torch.tensor([len(s) + 1 for s in pick(src)])
        batch = Batch(pad(pick(src), after=EOS_ID), lens, pad(pick(tgt), before=BOS_ID), pad(pick(tgt), after=EOS_ID),
                      sum(len(t) + 1 for t in pick(tgt)))  # fmt: skip
        return gradient_flow(model, batch, loss)["decoder"]

    short, long, both = flow([0], "last"), flow([1], "last"), flow([0, 1], "last")
    assert len(short) == 4 and len(long) == len(both) == 9
    for d in range(9):  # value 8 - d: d steps before each sentence's EOS
        expected = (short[3 - d] + long[8 - d]) / 2 if d < 4 else long[8 - d]
        assert both[8 - d] == pytest.approx(expected, rel=1e-9), d
    # the loss of every output is read at every step: there the curve stays by target position
    short_all, long_all, both_all = flow([0], "all"), flow([1], "all"), flow([0, 1], "all")
    assert both_all[:4] == pytest.approx([(a + b) / 2 for a, b in zip(short_all, long_all)], rel=1e-9)
    assert both_all[4:] == pytest.approx(long_all[4:], rel=1e-9)


def test_a_trained_models_gradient_flow_runs_in_float64_and_a_gap_is_said(
    run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """In float32 the earliest steps of a 300-piece target underflowed to exactly 0 (53 of 301 here): gaps in
    the plot, said nowhere. In float64, as the fresh models, every value is a number; a 0 left (or a value
    that is not finite) is one warning line."""
    from seq2seq.science import gradflow

    flow = gradflow.checkpoint_gradient_flow(run / "best.pt", ["the dog sees a cat"], [" ".join(["RED"] * 300)])
    assert len(flow["decoder"]) == 301 and all(v > 0 for v in flow["decoder"]), sum(v == 0 for v in flow["decoder"])
    if importlib.util.find_spec("matplotlib") is None:
        return
    fake = {"rnn": {"encoder": [1.0, 2.0], "decoder": [0.0, 0.0, float("nan"), 1.0]}}
    monkeypatch.setattr(gradflow, "fresh_gradient_flow", lambda *args, **kwargs: fake)
    with caplog.at_level("WARNING", logger="seq2seq"):
        gradflow.run_gradient_flow(tmp_path / "g.png", fresh=gradflow.FreshModels(cell="rnn", length=3))
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == ["gradflow: values 0 (below float64's smallest number) or not finite, gaps in the plot: "
                        "rnn decoder 3 of 4"]  # fmt: skip
