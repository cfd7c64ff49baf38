"""`seq2seq evaluate` refuses a --tokenize no asked metric uses, and names a SentencePiece tokenizer whose
model cannot be downloaded (offline) in one line, exit status 2, only when BLEU is asked for."""

from __future__ import annotations

import urllib.error
from typing import TYPE_CHECKING

import pytest

from seq2seq.cli import main
from seq2seq.config import ConfigError
from seq2seq.metrics import bleu_metric
from seq2seq.tools.evaluation import EvalSettings

if TYPE_CHECKING:
    from pathlib import Path


def write(path: Path, lines: list[str]) -> str:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return str(path)


@pytest.fixture
def files(tmp_path: Path) -> list[str]:
    return ["--hyp", write(tmp_path / "hyp", ["the cat sat"]), "--ref", write(tmp_path / "ref", ["the cat sat down"])]


@pytest.fixture
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """sacrebleu's SentencePiece tokenizers find no model on disk and cannot download one."""
    from sacrebleu.tokenizers import tokenizer_spm

    def download(url: str, dest: str, *args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(tokenizer_spm, "SACREBLEU_DIR", str(tmp_path / "sacrebleu"))
    monkeypatch.setattr(tokenizer_spm, "download_file", download)


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--metrics", "chrf", "--tokenize", "char"], "--tokenize char would be ignored"),
        (["--metrics", "ter", "--tokenize", "intl"], "--tokenize intl would be ignored"),
        (["--metrics", "chrf", "ter", "--tokenize", "flores101"], "--tokenize flores101 would be ignored"),
        (["--metrics", "chrf", "--tokenize", "zh"], "--tokenize zh would be ignored"),
        (["--metrics", "chrf", "--tokenize", "13a"], "--tokenize 13a would be ignored"),  # given at the default
    ],
)
def test_a_tokenizer_no_asked_metric_uses_is_refused(
    flags: list[str], says: str, files: list[str], capsys: pytest.CaptureFixture[str], offline: None
) -> None:
    assert main(["evaluate", *files, *flags]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and says in err and "add bleu" in err


def test_ter_takes_the_cjk_tokenizers_and_bleu_any(files: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", *files, "--metrics", "ter", "--tokenize", "zh"]) == 0
    assert "asian:yes" in capsys.readouterr().out
    assert main(["evaluate", *files, "--metrics", "bleu", "chrf", "--tokenize", "char"]) == 0
    assert "tok:char" in capsys.readouterr().out
    EvalSettings(metrics=("chrf",))  # the default tokenizer goes with any metrics
    assert main(["evaluate", *files, "--metrics", "chrf"]) == 0  # --tokenize left out


@pytest.mark.parametrize("tokenize", ["flores101", "flores200", "spm"])
def test_an_offline_sentencepiece_tokenizer_is_one_line(
    tokenize: str, files: list[str], capsys: pytest.CaptureFixture[str], offline: None
) -> None:
    assert main(["evaluate", *files, "--tokenize", tokenize]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert f"BLEU tokenizer {tokenize!r} needs a SentencePiece model" in err and "name resolution" in err
    with pytest.raises(ConfigError, match="download failed"):
        bleu_metric(tokenize)
