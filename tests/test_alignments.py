"""Word alignments from attention (translation/alignment.py; `seq2seq translate --alignments`).

The rule on a hand-built attention matrix, computed by hand: pieces to words at `▁`, a source word's
weight the sum of its pieces', an output word's row the mean of its pieces', each output word linked
to its largest source word, never to the source EOS. Then on the tiny trained model: every output
word gets one link inside the sentence, the ONNX engine gives the torch engine's alignments, and the
command line writes `text ||| i-j ...` (and the n-best and Moses forms).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import numpy as np
import pytest

from seq2seq.cli import main
from seq2seq.config import DecodeConfig
from seq2seq.translation.alignment import align, piece_words
from seq2seq.translation.torch_engine import Translator

if TYPE_CHECKING:
    from pathlib import Path

SENTENCES = ["red cat", "big old dog", "", "new house tree", "small bird green blue"]

# Source "Ein Fahrrad fährt" (Fahrrad in two pieces), output "rides a bike" (rides in two pieces).
SRC = ["▁Ein", "▁Fahr", "rad", "▁fährt"]
TGT = ["▁rid", "es", "▁a", "▁bike"]
ATTENTION = np.array(
    [  # ▁Ein ▁Fahr  rad  ▁fährt </s>
        [0.10, 0.05, 0.05, 0.30, 0.50],  # ▁rid
        [0.05, 0.05, 0.05, 0.30, 0.55],  # es
        [0.60, 0.10, 0.10, 0.05, 0.15],  # ▁a
        [0.05, 0.25, 0.25, 0.40, 0.05],  # ▁bike
        [0.00, 0.00, 0.00, 0.10, 0.90],  # </s> (the EOS step)
    ]
)


def test_a_hand_built_attention_matrix_gives_the_hand_computed_alignment() -> None:
    a = align(ATTENTION, SRC, TGT)
    assert (a.src_words, a.tgt_words) == (("Ein", "Fahrrad", "fährt"), ("rides", "a", "bike"))
    # rides: mean of its two rows = Ein 0.075, Fahrrad (0.1 + 0.1) / 2 = 0.1, fährt 0.3 (and EOS 0.525: no word)
    # a: Ein 0.6, Fahrrad 0.2, fährt 0.05; bike: Ein 0.05, Fahrrad 0.25 + 0.25 = 0.5 (the sum), fährt 0.4
    expected = [[0.075, 0.1, 0.3], [0.6, 0.2, 0.05], [0.05, 0.5, 0.4]]
    np.testing.assert_allclose(a.word_attention, expected, atol=1e-6)
    assert a.pairs == ((2, 0), (0, 1), (1, 2))
    assert str(a) == "2-0 0-1 1-2"  # fast_align's order: by output word
    assert a.src_pieces == (*SRC, "</s>") and a.tgt_pieces == (*TGT, "</s>")
    assert a.src_word_of_piece == (0, 1, 1, 2, None) and a.tgt_word_of_piece == (0, 0, 1, 2, None)
    assert a.attention.shape == (5, 5)


def test_the_given_words_name_the_words_when_they_are_as_many() -> None:
    a = align(ATTENTION, SRC, TGT, ["Ein", "Fahrrad", "fährt."], ["rides", "a", "bike."])
    assert (a.src_words, a.tgt_words) == (("Ein", "Fahrrad", "fährt."), ("rides", "a", "bike."))
    b = align(ATTENTION, SRC, TGT, ["two", "words"], ["x"])  # not as many: the pieces' words
    assert (b.src_words, b.tgt_words) == (("Ein", "Fahrrad", "fährt"), ("rides", "a", "bike"))


@pytest.mark.parametrize(
    ("pieces", "of", "words"),
    [
        (["▁a", "b", "▁c"], [0, 0, 1], ["ab", "c"]),
        (["▁", "(", "x", "▁y"], [0, 0, 0, 1], ["(x", "y"]),  # a bare ▁ starts the word its next piece fills
        (["▁a", "▁"], [0, 0], ["a"]),  # a bare ▁ at the end belongs to the word before it
        (["▁"], [None], []),
        (["x", "▁y"], [0, 1], ["x", "y"]),  # no ▁ on the first piece: it still starts a word
        (["▁a", None, "▁b", None], [0, None, 1, None], ["a", "b"]),  # special output pieces: no word
        (["▁a", "▁", None, "▁b"], [0, 1, None, 1], ["a", "b"]),
        ([], [], []),
    ],
)
def test_pieces_map_to_words_at_the_word_start_marker(pieces: list, of: list, words: list) -> None:
    assert piece_words(pieces) == (of, words)


def test_an_empty_side_and_a_misshapen_matrix() -> None:
    assert align(np.ones((3, 1)), [], ["▁a", "▁b"]).pairs == ()  # no source word: no link
    assert align(np.ones((1, 3)) / 3, ["▁a", "▁b"], []).pairs == ()  # empty output: nothing to link
    with pytest.raises(ValueError, match=r"expected \(5, 5\)"):
        align(ATTENTION[:4], SRC, TGT)


# --- the tiny model -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def translator(run_dir: Path) -> Translator:
    return Translator.from_checkpoint(run_dir / "best.pt")


def _check(sentences: list[str], found: list) -> None:
    for sentence, hyps in zip(sentences, found):
        assert bool(hyps) == bool(sentence)
        for a in hyps:
            words = a.text.split()
            assert a.alignment.tgt_words == tuple(words) and a.alignment.src_words == tuple(sentence.split())
            assert [j for _, j in a.alignment.pairs] == list(range(len(words)))  # one link per output word
            assert all(0 <= i < len(sentence.split()) for i, _ in a.alignment.pairs)
            rows = a.alignment.attention.sum(axis=1)
            np.testing.assert_allclose(rows, 1.0, atol=1e-2)  # distributions (bf16 rounding); no column of them cut
            assert a.alignment.attention.shape == (len(a.hypothesis.ids) + 1, len(a.alignment.src_pieces))


@pytest.mark.parametrize("beam", [1, 3])
def test_every_output_word_gets_one_link_inside_its_sentence(translator: Translator, beam: int) -> None:
    found = translator.translate_aligned(SENTENCES, beam_size=beam, n_best=min(beam, 2))
    assert [[a.text for a in hyps] for hyps in found] == [
        [t for t, _ in hyps] for hyps in translator.translate_nbest(SENTENCES, beam_size=beam, n_best=min(beam, 2))
    ]
    _check(SENTENCES, found)


def test_the_onnx_engine_gives_the_torch_engines_alignments(translator: Translator, run_dir: Path, tmp_path) -> None:
    pytest.importorskip("onnxruntime")
    from seq2seq.translation import export_model, load_translator

    onnx = load_translator(export_model(run_dir / "best.pt", tmp_path / "m.onnx.zip"))
    cfg = DecodeConfig(beam_size=3, n_best=2, precision="fp32")
    ours, theirs = translator.translate_aligned(SENTENCES, cfg), onnx.translate_aligned(SENTENCES, cfg)
    _check(SENTENCES, theirs)
    for mine, other in zip(ours, theirs):
        assert [(a.text, str(a.alignment)) for a in mine] == [(a.text, str(a.alignment)) for a in other]
        for a, b in zip(mine, other):
            np.testing.assert_allclose(a.alignment.attention, b.alignment.attention, atol=1e-4)


def test_translate_alignments_writes_text_then_the_i_j_pairs(run_dir: Path, tmp_path: Path, capsys) -> None:
    (tmp_path / "in.xx").write_text("".join(s + "\n" for s in SENTENCES), encoding="utf-8")
    base = ["translate", "--checkpoint", str(run_dir / "best.pt"), "--input", str(tmp_path / "in.xx"), "-q"]
    assert main([*base, "--alignments", "--beam-size", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    expected = Translator.from_checkpoint(run_dir / "best.pt").translate_aligned(SENTENCES, beam_size=2)
    assert lines == [f"{h[0].text} ||| {h[0].alignment}" if h else " ||| " for h in expected]
    assert all(re.fullmatch(r"[^|]* \|\|\| (\d+-\d+( \d+-\d+)*)?", line) for line in lines)
    assert main([*base, "--alignments", "--beam-size", "2", "--n-best", "2"]) == 0
    nbest = capsys.readouterr().out.splitlines()
    assert len(nbest) == 2 * 4 and all(re.fullmatch(r"\d\t-?\d+\.\d{4}\t[^|]* \|\|\| [\d -]*", x) for x in nbest)
    assert main([*base, "--alignments", "--beam-size", "2", "--nbest-format", "moses"]) == 0
    moses = capsys.readouterr().out.splitlines()
    assert [line.rsplit(" ||| ", 1)[1] for line in moses] == [str(h[0].alignment) for h in expected if h]
    assert main(base) == 0 and " ||| " not in capsys.readouterr().out  # off by default


def test_alignments_of_a_line_over_the_length_limit_align_to_the_cut_source(
    translator: Translator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """translate_aligned re-encoded the whole uncut line (365 MB more on a 15 MB line) where the search saw the
    cut one (translate_nbest's `_cut`): both encode the same cut text now."""
    line = "big old dog " * 20_000  # 240,000 characters, ~60,000 pieces: far past max_src_len 6
    encode, longest = translator.src_tok.encode, []

    def measured(texts: list[str]) -> list[list[int]]:
        longest.append(max(map(len, texts)))
        return encode(texts)

    monkeypatch.setattr(translator.src_tok, "encode", measured)
    (hyps,) = translator.translate_aligned([line], beam_size=1, max_src_len=6)
    cap = 2 * translator.src_tok.longest_piece * 6
    assert longest and max(longest) <= cap  # neither encoding saw more than the cut text
    a = hyps[0].alignment
    assert len(a.src_pieces) == 6 + 1  # the kept pieces and EOS
    assert all(0 <= i < len(a.src_words) for i, _ in a.pairs) and len(a.src_words) <= 6


def test_a_source_token_that_makes_no_piece_keeps_the_indices_of_the_source_words(translator: Translator) -> None:
    """A zero-width space between spaces is a token to str.split but makes no piece: the alignment silently
    switched to the pieces' words, and every index after it named the word before the one meant."""
    plain, spaced = "red cat big dog", "red \u200b cat big \ufeff dog"
    (a,), (b,) = (hyps[:1] for hyps in translator.translate_aligned([plain, spaced], beam_size=1))
    assert a.text == b.text
    assert b.alignment.src_words == tuple(spaced.split()) and None not in b.alignment.src_word_of_piece[:-1]
    shift = {0: 0, 1: 2, 2: 3, 3: 5}  # plain's words in spaced
    assert b.alignment.pairs == tuple((shift[i], j) for i, j in a.alignment.pairs)
    assert {1, 4}.isdisjoint(b.alignment.src_word_of_piece)  # the invisible tokens: no piece, no link
