"""A leading UTF-8 byte order mark is no text: every reader of lines (files, standard input,
held-out references, `evaluate`) drops it from the first line, and only there."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from corpora import write_corpus

from seq2seq.cli import main
from seq2seq.prepared import Prepared
from seq2seq.text import BOM, decode_lines, read_lines
from seq2seq.translation.stream import chunks

if TYPE_CHECKING:
    from pathlib import Path

LINES = ["Ein Hund läuft.", "Zwei Katzen schlafen auf dem Sofa."]


def test_the_line_readers_drop_a_leading_bom(tmp_path: Path) -> None:
    data = BOM + "\n".join(LINES).encode() + b"\n"
    (tmp_path / "bom.txt").write_bytes(data)
    assert read_lines(tmp_path / "bom.txt") == LINES
    assert decode_lines(data, "<stdin>") == LINES
    assert [line for chunk in chunks(io.BytesIO(data), "<stdin>") for line in chunk] == LINES  # translate's stdin
    # only the file's first line: a U+FEFF further on is the file's text, kept as it is
    later = ("a\n" + "\ufeffb\n").encode()
    assert decode_lines(later, "x") == ["a", "\ufeffb"]


def test_identical_text_scores_100_whatever_the_bom(tmp_path: Path, capsys) -> None:
    text = "\n".join(LINES * 3) + "\n"
    (tmp_path / "hyp.txt").write_text(text, encoding="utf-8")
    (tmp_path / "ref.txt").write_text(text, encoding="utf-8-sig")  # the same text behind a BOM
    code = main(["evaluate", "--hyp", str(tmp_path / "hyp.txt"), "--ref", str(tmp_path / "ref.txt"),
                 "--metrics", "bleu", "chrf"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0 and "BLEU = 100.00" in out and "chrF = 100.00" in out, out


def test_held_out_references_lose_the_bom_at_preprocess(tmp_path: Path, capsys) -> None:
    corpus = write_corpus(tmp_path / "c", n_train=120)
    for name in ("val.yy", "train.xx"):
        path = corpus / name
        path.write_bytes(BOM + path.read_bytes())
    expected = read_lines(corpus / "val.yy")
    assert not expected[0].startswith("\ufeff")
    code = main(["preprocess", "--data", str(corpus), "--src", "xx", "--tgt", "yy", "--out", str(tmp_path / "run"),
                 "--vocab-size", "60"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    src, refs = Prepared.load(tmp_path / "run").text("val")
    assert refs == expected and not any("\ufeff" in line for line in src + refs)
