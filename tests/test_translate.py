"""A tiny model trained once on a toy reversal task: Translator behaviour and checkpoint files."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np
import pytest
import torch
from corpora import write_corpus

from seq2seq.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from seq2seq.config import DataConfig, DecodeConfig, ModelConfig, TrainConfig
from seq2seq.machine.hardware import HardwareError, cpu_bf16
from seq2seq.train import RunOptions, RunSpec, train
from seq2seq.translation.torch_engine import Translator
from seq2seq.updater import Updater

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture(scope="module")
def translator(run_dir: Path) -> Translator:
    return Translator.from_checkpoint(run_dir / "best.pt")


SENTENCES = [
    "red cat",
    "the moon",  # "the" is unknown to the tokenizer
    "dog dog bird sun moon tree house",
    "",
    "green",
    "   ",
    "blue house red tree",
    "sun",
    "cat  dog\tbird",
]


def test_training_writes_the_run_files(run_dir: Path) -> None:
    for name in ("best.pt", "last.pt", "metrics.jsonl", "config.json", "preprocess.json"):
        assert (run_dir / name).is_file(), name
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    valid = [r for r in records if r["type"] == "valid"]
    assert [r["step"] for r in valid] == [30, 60]
    assert all({"val_loss", "val_ppl", "val_bleu"} <= r.keys() for r in valid)
    assert [r["step"] for r in records if r["type"] == "train"] == [10, 20, 30, 40, 50, 60]
    assert records[-1]["type"] == "stop" and records[-1]["step"] == 60
    config = json.loads((run_dir / "config.json").read_text())
    assert config["model"]["emb_size"] == 32 and config["train"]["max_steps"] == 60
    # last.pt can resume a run, best.pt is for translation only
    assert "optimizer" in load_checkpoint(run_dir / "last.pt")
    assert "optimizer" not in load_checkpoint(run_dir / "best.pt")


def test_empty_list_translates_to_empty_list(translator: Translator) -> None:
    assert translator.translate([]) == []
    assert translator.translate([], DecodeConfig(beam_size=4)) == []


@pytest.mark.parametrize("beam_size", [1, 4])
def test_output_is_in_input_order_and_independent_of_batch_size(translator: Translator, beam_size: int) -> None:
    outputs = [translator.translate(SENTENCES, DecodeConfig(beam_size=beam_size, batch_size=bs)) for bs in (1, 3, 64)]
    assert outputs[0] == outputs[1] == outputs[2]
    out = outputs[0]
    assert len(out) == len(SENTENCES)
    # each output is the translation of the sentence at that position
    for sentence, translation in zip(SENTENCES, out):
        assert translator.translate([sentence], DecodeConfig(beam_size=beam_size)) == [translation]
    # reversing the input reverses the output
    assert translator.translate(SENTENCES[::-1], DecodeConfig(beam_size=beam_size, batch_size=3)) == out[::-1]


def test_a_str_gives_a_str_and_a_list_gives_a_list(translator: Translator) -> None:
    one = translator.translate("blue house red tree")
    assert isinstance(one, str) and one == translator.translate(["blue house red tree"])[0]
    assert translator.translate("") == ""
    assert (
        translator.translate("red cat", beam_size=1) == translator.translate(["red cat"], DecodeConfig(beam_size=1))[0]
    )


def test_decode_options_as_keywords_equal_a_decode_config(translator: Translator) -> None:
    by_keywords = translator.translate(SENTENCES, beam_size=2, length_penalty=0.0, batch_size=2)
    by_config = translator.translate(SENTENCES, DecodeConfig(beam_size=2, length_penalty=0.0, batch_size=2))
    assert by_keywords == by_config
    # keywords override the config's fields; the config itself is left alone
    cfg = DecodeConfig(beam_size=4, batch_size=2)
    assert translator.translate(SENTENCES, cfg, beam_size=1) == translator.translate(
        SENTENCES, DecodeConfig(beam_size=1)
    )
    assert cfg.beam_size == 4
    assert translator.describe()["engine"] == "torch" and translator.describe()["src_lang"] == "xx"


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda t: t.translate(["red cat", 3]), "a list holding a int"),
        (lambda t: t.translate(42), "int 42"),
        (lambda t: t.translate(b"red cat"), "bytes"),
        (lambda t: t.translate(["red cat"], beam_sise=2), "did you mean 'beam_size'"),
        (lambda t: t.translate(["red cat"], beam_size="5"), "DecodeConfig.beam_size must be int, got str"),
        (lambda t: t.translate(["red cat"], {"beam_size": 2}), "cfg must be a DecodeConfig"),
        (lambda t: t.translate("red cat", n_best=3), "not n_best=3: for n_best, use translate_nbest"),
        (lambda t: t.translate(["red cat"], DecodeConfig(beam_size=3, n_best=3)), "for n_best, use translate_nbest"),
        (lambda t: t.translate_nbest("red cat"), r"translate_nbest\(\) takes a list of str \(for one sentence"),
        (lambda t: t.translate_aligned("red cat"), r"translate_aligned\(\) takes a list of str"),  # was: per letter
        (lambda t: t.translate_nbest(["red cat", 1]), "a list holding a int"),
    ],
)
def test_wrong_types_are_a_clear_type_error(translator: Translator, call, message: str) -> None:  # noqa: ANN001
    with pytest.raises(TypeError, match=message):
        call(translator)


def test_a_bad_option_value_is_a_value_error(translator: Translator) -> None:
    with pytest.raises(ValueError, match="beam_size must be >= 1"):
        translator.translate("red cat", beam_size=0)
    with pytest.raises(ValueError, match=r"sentences\[1\] holds a lone surrogate"):
        translator.translate(["red cat", "cat \ud800"])


def test_empty_and_whitespace_lines_give_empty_output(translator: Translator) -> None:
    out = translator.translate(["", "  ", "\t", "red cat", ""])
    assert len(out) == 5
    assert out[0] == out[1] == out[2] == out[4] == ""
    assert translator.translate_nbest([" "]) == [[]]


def test_lines_without_a_piece_give_empty_output_not_an_invented_sentence(translator: Translator) -> None:
    invisible = ["\u200b", "\ufeff", "\x01\x02", "\u200b\u200b"]  # zero-width space, a BOM mid-file, controls
    assert translator.src_tok.encode(invisible) == [[]] * 4  # SentencePiece's normalisation leaves nothing
    out = translator.translate([*invisible, "red cat"])
    assert out[:4] == [""] * 4 and out[4] == translator.translate("red cat")
    unknown = ["\x00", "\u00ad", "\u2060", "\x00 \u00ad"]  # NUL, a soft hyphen, a word joiner: pieces, all <unk>
    assert all(translator.src_tok.encode(unknown))
    assert translator.translate(unknown) == [""] * 4  # were an invented sentence each
    assert translator.translate_nbest(invisible[:1]) == [[]]
    assert [str(a) for a in translator.translate_aligned(invisible[:1])] == ["[]"]
    foreign = ["\U0001f642", "\u6771\u4eac", "\U0001f642 \u6771\u4eac"]  # characters the vocabulary lacks: <unk> alone
    assert all(set(translator.src_tok.pieces(ids)) <= {"\u2581", "<unk>"} for ids in translator.src_tok.encode(foreign))
    out = translator.translate([*foreign, "red cat"], beam_size=1)
    assert out == ["", "", "", translator.translate("red cat", beam_size=1)]
    assert translator.translate_nbest(foreign[:1]) == [[]]  # were an invented sentence each
    assert translator.translate(["red \U0001f642 cat"]) != [""]  # a word beside them: translated


def test_translation_does_not_mutate_its_input(translator: Translator) -> None:
    sentences = list(SENTENCES)
    translator.translate(sentences, DecodeConfig(beam_size=3, batch_size=2))
    assert sentences == SENTENCES
    assert translator.translate(tuple(SENTENCES)) == translator.translate(SENTENCES)


def test_n_best_lists_are_distinct_and_sorted(translator: Translator) -> None:
    nbest = translator.translate_nbest(["red cat", "blue house red tree"], DecodeConfig(beam_size=4, n_best=3))
    for hyps in nbest:
        assert len(hyps) == 3
        scores = [h.score for _, h in hyps]
        assert scores == sorted(scores, reverse=True)
        assert len({tuple(h.ids) for _, h in hyps}) == 3


def test_checkpoint_round_trip_gives_identical_translations(run_dir: Path, tmp_path: Path) -> None:
    cfg = DecodeConfig(beam_size=3)
    first = Translator.from_checkpoint(run_dir / "best.pt").translate(SENTENCES, cfg)
    again = Translator.from_checkpoint(run_dir / "best.pt").translate(SENTENCES, cfg)
    assert first == again
    save_checkpoint(tmp_path / "copy.pt", load_checkpoint(run_dir / "best.pt"))
    copy = Translator.from_checkpoint(tmp_path / "copy.pt")
    assert copy.translate(SENTENCES, cfg) == first
    original = Translator.from_checkpoint(run_dir / "best.pt").model.state_dict()
    for name, tensor in copy.model.state_dict().items():
        assert torch.equal(tensor, original[name]), name
    assert not list(tmp_path.glob(".*.tmp"))  # the atomic write left no temporary file behind


def test_checkpoint_missing_parts_is_rejected(run_dir: Path, tmp_path: Path) -> None:
    payload = load_checkpoint(run_dir / "best.pt")
    del payload["tgt_spm"]
    save_checkpoint(tmp_path / "partial.pt", payload)
    with pytest.raises(CheckpointError, match="tgt_spm"):
        Translator.from_checkpoint(tmp_path / "partial.pt")


@pytest.mark.parametrize("beam_size", [1, 4])
def test_bf16_decoding_keeps_the_contract(translator: Translator, beam_size: int) -> None:
    """Where this CPU runs bf16: same contract as fp32, float32 attention maps; elsewhere: the clear error.
    That bf16 ran is checked too (the output layer's dtype, a log-prob that moved): an engine that decoded
    "bf16" in fp32 kept the contract and differed by 0, inside the tolerance."""
    sentences = ["red cat", "", "big old house tree dog"]
    cfg = DecodeConfig(beam_size=beam_size, precision="bf16")
    if not cpu_bf16().runs:
        with pytest.raises(HardwareError, match="precision bf16: this CPU .* use --precision fp32 or auto"):
            translator.translate(sentences, cfg)
        return
    dtypes: set[torch.dtype] = set()
    hook = translator.model.out.register_forward_hook(lambda _module, _args, output: dtypes.add(output.dtype))
    try:
        out = translator.translate(sentences, cfg)
    finally:
        hook.remove()
    assert dtypes == {torch.bfloat16}
    assert len(out) == 3 and out[1] == "" and all(isinstance(o, str) for o in out)
    batched = translator.translate(sentences, DecodeConfig(beam_size=beam_size, precision="bf16", batch_size=1))
    assert batched == out
    nbest = translator.translate_nbest(sentences, cfg, keep_attention=True)
    for _, hyp in (pairs[0] for pairs in nbest if pairs):
        assert hyp.attention.dtype == np.float32 and hyp.attention.shape[0] == len(hyp.ids) + 1
    # bf16 is fp32 rounded to 8 significant bits (relative 2^-9 per rounding): the tiny model's
    # log-probs move by ~0.002-0.005 nats per output step (measured), so texts mostly agree and a
    # hypothesis both find scores within 0.01 nats per step (EOS included) of fp32's; a bf16 path that
    # computed something else (a wrong scale, a lost state) is off by far more.
    others = ["red cat", "big old house tree dog", "blue house red tree"]
    fp32 = translator.translate_nbest(others, DecodeConfig(beam_size=beam_size, precision="fp32"))
    bf16 = translator.translate_nbest(others, cfg)
    same = [(a[0][1], b[0][1]) for a, b in zip(fp32, bf16) if a[0][0] == b[0][0]]
    assert len(same) >= 2, (fp32, bf16)
    for a, b in same:
        assert abs(a.log_prob - b.log_prob) <= 0.01 * (len(a.ids) + 1), (a, b)
    assert any(a.log_prob != b.log_prob for a, b in same), same  # rounded: not fp32's numbers


@pytest.mark.parametrize("cell", ["gru", "rnn"])
def test_every_cell_trains_translates_and_reloads(tmp_path: Path, cell: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Training is checked to move every weight and lower the validation loss: an Updater that stepped at
    learning rate 0 trained, translated and reloaded as well."""
    initial: dict[str, torch.Tensor] = {}
    real_step = Updater.step

    def spy(self, batch, tokens, lr):
        if not initial:  # the weights before the first update
            initial.update((k, v.detach().clone()) for k, v in self.model.state_dict().items())
        return real_step(self, batch, tokens, lr)

    monkeypatch.setattr(Updater, "step", spy)
    data = write_corpus(tmp_path / "data", n_train=60)
    model_cfg = ModelConfig(cell=cell, emb_size=16, enc_hidden=16, dec_hidden=32, enc_layers=2, dec_layers=2)
    cfg = TrainConfig(max_steps=6, valid_every=3, valid_bleu_sentences=5, tbptt=2)
    train(
        RunSpec(data, "xx", "yy", tmp_path / "run"),
        DataConfig(vocab_size=40),
        model_cfg,
        cfg,
        RunOptions(progress=False),
    )
    trained = load_checkpoint(tmp_path / "run" / "last.pt")["model"]
    assert initial.keys() == trained.keys()
    assert [k for k in initial if torch.equal(initial[k], trained[k])] == []  # every tensor trained
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    val_losses = [r["val_loss"] for r in records if r["type"] == "valid"]
    assert len(val_losses) == 2 and val_losses[1] < val_losses[0], val_losses  # after updates 3 and 6
    translator = Translator.from_checkpoint(tmp_path / "run" / "best.pt")
    assert translator.model.cfg.cell == cell
    for beam in (1, 3):  # fp32: batch-size invariance is exact there (bf16 rounds differently per batch shape)
        out = translator.translate(SENTENCES, DecodeConfig(beam_size=beam, precision="fp32"))
        assert out == Translator.from_checkpoint(tmp_path / "run" / "best.pt").translate(
            SENTENCES, DecodeConfig(beam_size=beam, batch_size=1, precision="fp32")
        )


def test_a_model_of_another_language_pair_is_refused_when_languages_are_given(run_dir: Path, capsys) -> None:
    """The checkpoint records xx -> yy: asking for yy -> xx is one ConfigError naming the file (a model of another
    pair translated into nonsense); a side not asked for is not checked; a file recording none cannot be checked."""
    from seq2seq.cli import main
    from seq2seq.errors import ConfigError
    from seq2seq.translation import load_translator
    from seq2seq.translation.loading import check_languages

    path = run_dir / "best.pt"
    assert load_translator(path, languages=("xx", "yy")).src_lang == "xx"
    assert load_translator(path, languages=(None, "YY")).tgt_lang == "yy"  # codes compared case-insensitively
    with pytest.raises(ConfigError, match=rf"^{path} translates xx -> yy, not yy -> \? \(source language 'yy'\)"):
        load_translator(path, languages=("yy", None))
    tr = Translator.from_checkpoint(path)
    tr.src_lang = None
    with pytest.raises(ConfigError, match="records no source language, so 'xx' cannot be checked"):
        check_languages(tr, "xx", None)
    assert main(["translate", "--checkpoint", str(path), "--src", "xx", "--tgt", "zz", "--quiet"]) == 2
    assert capsys.readouterr().err == (f"seq2seq translate: error: {path} translates xx -> yy, not xx -> zz "
                                       "(target language 'zz'): use a model of that language pair\n")  # fmt: skip


def test_translate_nbest_takes_decode_options_as_keywords(translator: Translator) -> None:
    by_keywords = translator.translate_nbest(["red cat", "blue house"], beam_size=4, n_best=3)
    by_config = translator.translate_nbest(["red cat", "blue house"], DecodeConfig(beam_size=4, n_best=3))
    assert [[t for t, _ in hyps] for hyps in by_keywords] == [[t for t, _ in hyps] for hyps in by_config]
    assert all(len(hyps) == 3 for hyps in by_keywords)
