"""Ensemble decoding: the mean of several models' per-step log-probs, searched by the one search."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from typing import TYPE_CHECKING

import numpy as np
import pytest
import torch

from seq2seq.checkpoint import CheckpointError, read_model, write_model_checkpoint
from seq2seq.cli import main
from seq2seq.config import ConfigError, DecodeConfig
from seq2seq.search_budget import max_lengths
from seq2seq.tokenizer import BOS_ID, EOS_ID
from seq2seq.translation import load_translator
from seq2seq.translation.ensemble import EnsembleTranslator
from seq2seq.translation.torch_engine import TorchEngine, Translator

if TYPE_CHECKING:
    from pathlib import Path

    from seq2seq.translation.base import Translating

# fp32 where two computations of one model are compared: bf16 (what `auto` picks on CPUs with native
# bf16) rounds differently per batch shape, and an ONNX model computes in fp32.
FP32 = DecodeConfig(precision="fp32")
SENTENCES = ["red cat", "dog dog bird tree house", "", "green", "blue house red tree", "big old cat", "sun"]


@pytest.fixture(scope="module")
def other(run_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """best.pt with perturbed weights (through the model: tied weights stay tied): a different model
    with the same vocabularies."""
    model = Translator.from_checkpoint(run_dir / "best.pt").model
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for param in (p for p in model.parameters() if p.numel() > 1):
            param += 0.5 * param.std() * torch.randn(param.shape, generator=gen)
    path = tmp_path_factory.mktemp("other") / "other.pt"
    state = {name: t.clone() for name, t in model.state_dict().items()}
    write_model_checkpoint(path, dataclasses.replace(read_model(run_dir / "best.pt"), state_dict=state))
    return path


@pytest.fixture(scope="module")
def model_a(run_dir: Path) -> Translator:
    return Translator.from_checkpoint(run_dir / "best.pt")


@pytest.fixture(scope="module")
def model_b(other: Path) -> Translator:
    return Translator.from_checkpoint(other)


def _nbest(translator: Translating, cfg: DecodeConfig) -> list[list[tuple[str, list[int], float, float]]]:
    return [[(t, h.ids, h.score, h.log_prob) for t, h in hyps] for hyps in translator.translate_nbest(SENTENCES, cfg)]


@pytest.mark.parametrize(
    "cfg", [DecodeConfig(beam_size=1), DecodeConfig(beam_size=3, n_best=3)], ids=["greedy", "beam"]
)
def test_an_ensemble_of_one_model_or_of_a_model_twice_is_that_model(
    run_dir: Path, model_a: Translator, cfg: DecodeConfig
) -> None:
    alone = _nbest(model_a, cfg)
    one = EnsembleTranslator([Translator.from_checkpoint(run_dir / "best.pt")])
    assert _nbest(one, cfg) == alone  # texts, ids, scores: exact
    assert _nbest(EnsembleTranslator([model_a, model_a]), cfg) == alone
    assert _nbest(load_translator([run_dir / "best.pt", run_dir / "best.pt"]), cfg) == alone


def _greedy_reference(engines: list[TorchEngine], translator: Translator, sentence: str) -> tuple[list[int], float]:
    """At each step the argmax of the mean of the models' log-probs (EOS forced at the length limit)."""
    cfg = FP32
    src = [[*translator.src_tok.encode([sentence])[0], EOS_ID]]
    limit = int(max_lengths(np.array([len(src[0])]), cfg.max_len_a, cfg.max_len_b)[0])
    encoded = [engine.encode(src) for engine in engines]
    states, memories = [s for _, s in encoded], [m for m, _ in encoded]
    prev, ids, total = BOS_ID, [], np.float32(0.0)
    for t in range(1, limit + 1):
        steps = [engine.step(np.array([prev]), s, m) for engine, s, m in zip(engines, states, memories)]
        states = [s for _, s, _ in steps]
        mean = (steps[0][0][0] + steps[1][0][0]) / np.float32(2)
        prev = EOS_ID if t == limit else int(mean.argmax())
        total += mean[prev]
        if prev == EOS_ID:
            return ids, float(total)
        ids.append(prev)
    raise AssertionError("unreachable: EOS is forced at the limit")


def test_greedy_ensemble_takes_the_argmax_of_the_mean_log_probs(model_a: Translator, model_b: Translator) -> None:
    engines = [TorchEngine(model_a.model, FP32), TorchEngine(model_b.model, FP32)]
    sentences = ["red cat", "dog dog bird tree house", "blue house red tree"]
    greedy = dataclasses.replace(FP32, beam_size=1)
    found = EnsembleTranslator([model_a, model_b]).translate_nbest(sentences, greedy)
    alone = [model_a.translate_nbest(sentences, greedy), model_b.translate_nbest(sentences, greedy)]
    for i, sentence in enumerate(sentences):
        ids, log_prob = _greedy_reference(engines, model_a, sentence)
        hyp = found[i][0][1]
        assert hyp.ids == ids and hyp.log_prob == pytest.approx(log_prob, abs=1e-5), (sentence, hyp, ids, log_prob)
        for own in alone:  # really a third model: neither member's own result
            assert abs(own[i][0][1].log_prob - hyp.log_prob) > 1e-3


@pytest.mark.parametrize("beam_size", [1, 3])
def test_ensemble_output_does_not_depend_on_the_batch_size(
    model_a: Translator, model_b: Translator, beam_size: int
) -> None:
    ensemble = EnsembleTranslator([model_a, model_b])
    one = ensemble.translate(SENTENCES, FP32, beam_size=beam_size, batch_size=1)
    assert ensemble.translate(SENTENCES, FP32, beam_size=beam_size, batch_size=4) == one
    assert one[2] == "" and len(one) == len(SENTENCES)


def test_torch_and_onnx_members_mix(run_dir: Path, other: Path, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    from seq2seq.translation import export_model

    onnx = export_model(other, tmp_path / "other.onnx.zip")
    mixed = load_translator([run_dir / "best.pt", onnx])
    assert mixed.describe()["engine"] == "ensemble of 2 models (torch, onnx)"
    assert mixed.describe()["models"] == [str(run_dir / "best.pt"), str(onnx)]
    expect = load_translator([run_dir / "best.pt", other]).translate(SENTENCES, FP32)
    assert mixed.translate(SENTENCES, FP32) == expect
    # An ensemble of exported models never imports torch.
    best = export_model(run_dir / "best.pt", tmp_path / "best.onnx.zip")
    code = (
        "import sys; from seq2seq.translation import load_translator; "
        f"print(load_translator([{str(best)!r}, {str(onnx)!r}]).translate({SENTENCES!r})); "
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == repr(expect)


def _with(path: Path, out: Path, **changes: object) -> Path:
    write_model_checkpoint(out, dataclasses.replace(read_model(path), **changes))
    return out


@pytest.fixture(scope="module")
def other_vocab(run_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """best.pt with another target SentencePiece model (its source one) and the embedding and output
    rows that fit it: a consistent checkpoint, with a vocabulary best.pt does not share."""
    saved = read_model(run_dir / "best.pt")
    pieces = len(Translator.from_checkpoint(run_dir / "best.pt").src_tok)
    resized = {
        name: (t[:pieces] if len(t) >= pieces else torch.cat([t, t[: pieces - len(t)]]))
        if name in ("decoder.embed.weight", "out.weight", "out.bias")
        else t
        for name, t in saved.state_dict.items()
    }
    out = tmp_path_factory.mktemp("vocab") / "target.pt"
    return _with(run_dir / "best.pt", out, tgt_spm=saved.src_spm, state_dict=resized)


def test_models_with_other_vocabularies_or_languages_are_refused(
    run_dir: Path, other_vocab: Path, tmp_path: Path
) -> None:
    best = run_dir / "best.pt"
    assert Translator.from_checkpoint(other_vocab).translate(["red cat"]) is not None  # loads on its own
    with pytest.raises(CheckpointError) as err:
        load_translator([best, other_vocab])
    message = str(err.value)
    assert "\n" not in message and str(best) in message and str(other_vocab) in message, message
    assert "target vocabulary" in message
    lang = _with(best, tmp_path / "lang.pt", src_lang="zz")
    with pytest.raises(CheckpointError, match="source language zz, but .* has xx"):
        load_translator([best, lang])


def test_shortlist_is_an_unknown_decode_option_of_an_ensemble(model_a: Translator, model_b: Translator) -> None:
    with pytest.raises(ConfigError, match="^unknown DecodeConfig key 'shortlist'") as err:  # the shortlist is gone
        EnsembleTranslator([model_a, model_b]).translate(["red cat"], shortlist=5)
    assert "\n" not in str(err.value)


def test_cli_translates_with_an_ensemble_and_refuses_a_mismatch(
    run_dir: Path, other: Path, other_vocab: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "in.txt").write_text("red cat\n\nblue house red tree\ngreen\n", encoding="utf-8")
    args = ["--input", str(tmp_path / "in.txt"), "--output", str(tmp_path / "out.txt"), "--quiet"]
    assert main(["translate", "--checkpoint", str(run_dir / "best.pt"), str(other), "--beam-size", "2", *args]) == 0
    lines = (tmp_path / "out.txt").read_text(encoding="utf-8").split("\n")
    expect = EnsembleTranslator([Translator.from_checkpoint(run_dir / "best.pt"), Translator.from_checkpoint(other)])
    assert lines == [*expect.translate(["red cat", "", "blue house red tree", "green"], beam_size=2), ""]
    capsys.readouterr()
    assert main(["translate", "--checkpoint", str(run_dir / "best.pt"), str(other_vocab), *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(other_vocab) in err and str(run_dir / "best.pt") in err, err
