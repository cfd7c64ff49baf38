"""`seq2seq benchmark` checks what it reads at the end (--checkpoint, --peers, the test split) before it
prepares or trains anything: one line, exit status 2."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from seq2seq.cli import main
from seq2seq.devtools import benchmark

if TYPE_CHECKING:
    from pathlib import Path


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--checkpoint", "DATA/missing.pt"], "missing.pt: no such checkpoint file"),
        (["--checkpoint", "DATA/test.de"], "test.de: not a checkpoint file"),
        (["--peers", "DATA/missing.json"], "--peers DATA/missing.json: cannot read it"),
        (["--peers", "DATA/test.de"], "--peers DATA/test.de:1: not JSON"),
        (["--peers", "DATA/list.json"], "not a peers.json"),
        (["--test-split", "nosuch"], "DATA/nosuch.de: no such file"),
        (["--test-split", "short"], "DATA/short.en: 1 lines, DATA/short.de 2: the translations are scored"),
    ],
)
def test_benchmark_refuses_its_inputs_before_training(
    flags: list[str], says: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def started(*args: object, **kwargs: object) -> None:
        raise AssertionError("preparation or training started before the refusal")

    monkeypatch.setattr("seq2seq.preprocess.ensure_prepared", started)
    monkeypatch.setattr(benchmark, "measure_training", started)
    data = tmp_path / "data"
    data.mkdir()
    for name in ("train.de", "train.en", "test.de", "test.en"):
        (data / name).write_text("ein Hund\n", encoding="utf-8")
    (data / "short.de").write_text("ein Hund\nzwei Hunde\n", encoding="utf-8")
    (data / "short.en").write_text("a dog\n", encoding="utf-8")
    (data / "list.json").write_text(json.dumps({"machines": {"a": 1}}))
    given = [f.replace("DATA", str(data)) for f in flags]
    argv = ["benchmark", "--data", str(data), "--out", str(tmp_path / "bench"), "--test-split", "test", *given]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert says.replace("DATA", str(data)) in err
    assert not (tmp_path / "bench").exists()
