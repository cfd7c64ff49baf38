"""`seq2seq benchmark` checks what it reads at the end (--checkpoint, --peers, the test split) before it
prepares or trains anything: one line, exit status 2."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import TYPE_CHECKING

import numpy as np
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


class _TinyPrepared:
    """A prepared folder's vocabularies and train lengths, as the benchmark reads them."""

    vocab = (40, 40)

    def split(self, name: str) -> SimpleNamespace:
        return SimpleNamespace(src_lens=np.array([4, 5]), tgt_lens=np.array([4, 5]))


@pytest.mark.parametrize(
    ("seconds", "says"),
    [
        ([0.6 * n for n in range(1, 11)], "the corpus ran out: training stopped (max_epochs=100) after 100 updates in "
                                          "6.0 s, before the measuring window (10 s of warm-up, then 25 s measured): "
                                          "give a larger train split"),
        ([1.2 * n for n in range(1, 10)], "stopped (max_epochs=100) after 90 updates in 10.8 s"),  # 1 past 10 s
    ],
)  # fmt: skip
def test_benchmark_says_in_one_line_that_the_corpus_ran_out_before_the_measuring_window(
    seconds: list[float], says: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 30-line corpus trained its max_epochs in 6 s, before --quick's 10 s of warm-up: a StopIteration traceback
    (and a single record after the warm-up, a ZeroDivisionError). The training child stands in: it writes the
    metrics of such a run."""

    def tiny_training(cmd: list[str], log: Path, threads: int = 0) -> tuple[float, float]:
        steps = [10 * n for n in range(1, len(seconds) + 1)]
        records = [{"type": "train", "step": n, "tokens": 30 * n, "elapsed_s": t} for n, t in zip(steps, seconds)]
        records.append({"type": "stop", "step": steps[-1], "reason": "max_epochs=100", "elapsed_s": seconds[-1]})
        (log.parent / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
        return seconds[-1] + 2, 300.0

    monkeypatch.setattr("seq2seq.preprocess.ensure_prepared", lambda *args, **kwargs: _TinyPrepared())
    monkeypatch.setattr(benchmark, "_run_child", tiny_training)
    monkeypatch.setattr(benchmark, "report", lambda device: {"device": "cpu", "precision": "fp32"})
    monkeypatch.setattr(benchmark, "cpu_bf16", lambda: SimpleNamespace(runs=False, native=False))
    monkeypatch.setattr(benchmark.process, "apply", lambda settings: None)
    monkeypatch.setattr(benchmark.torch, "set_num_threads", lambda n: None)
    data = tmp_path / "data"
    data.mkdir()
    for name in ("train.xx", "train.yy", "test.xx", "test.yy"):
        (data / name).write_text("a b\n" * 30, encoding="utf-8")
    (tmp_path / "bench/run").mkdir(parents=True)  # where ensure_prepared would have prepared the corpus
    argv = ["benchmark", "--quick", "--data", str(data), "--src", "xx", "--tgt", "yy", "--test-split", "test",
            "--out", str(tmp_path / "bench")]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert f"--data {data}: " in err and says in err, err
