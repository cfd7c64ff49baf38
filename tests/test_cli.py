"""The `seq2seq` command end to end, in-process, on a tiny corpus (and once as a subprocess)."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest
from corpora import write_corpus

from seq2seq.cli import main

if TYPE_CHECKING:
    from pathlib import Path

COMMANDS = ["preprocess", "train", "translate", "evaluate"]


def run_cli(*argv: str) -> tuple[int, str]:
    """Exit code and stdout of `seq2seq argv...` run in this process."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main([str(a) for a in argv])
    return code, out.getvalue()


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(corpus folder, run folder) after `seq2seq preprocess` and `seq2seq train`."""
    root = tmp_path_factory.mktemp("cli")
    data, run = write_corpus(root / "data", n_test=12), root / "run"
    corpus = ["--data", data, "--src", "xx", "--tgt", "yy", "--out", run]
    code, out = run_cli("preprocess", *corpus, "--vocab-size", "40")
    assert code == 0
    assert f"prepared {run}" in out
    assert json.loads((run / "preprocess.json").read_text())["splits"] == {"train": 200, "val": 20, "test": 12}

    code, out = run_cli(
        "train", *corpus,
        "--max-steps", "20", "--emb-size", "16", "--enc-hidden", "16", "--dec-hidden", "32",
        "--valid-every", "10", "--valid-bleu-sentences", "10", "--max-tokens", "600", "--lr", "0.01",
        "--dropout", "0", "--threads", "1", "--log-every", "5",
    )  # fmt: skip
    assert code == 0
    assert "trained 20 updates" in out
    return data, run


def test_train_writes_a_run_folder(trained: tuple[Path, Path]) -> None:
    _, run = trained
    for name in ("best.pt", "last.pt", "metrics.jsonl", "config.json"):
        assert (run / name).is_file(), name
    config = json.loads((run / "config.json").read_text())
    assert (config["model"]["emb_size"], config["model"]["enc_hidden"], config["model"]["dec_hidden"]) == (16, 16, 32)
    assert config["train"]["max_steps"] == 20 and config["data"]["vocab_size"] == 40
    valid = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in valid if r["type"] == "valid"] == [10, 20]


def test_translate_from_file_and_from_stdin_agree(trained, tmp_path: Path, monkeypatch, capsys) -> None:
    data, run = trained
    src = data / "test.xx"
    hyp = tmp_path / "hyp.yy"
    checkpoint = ["--checkpoint", run / "best.pt"]
    code, out = run_cli("translate", *checkpoint, "--input", src, "--output", hyp, "--beam-size", "3")
    assert code == 0 and out == ""
    n_lines = len(src.read_text().splitlines())
    assert len(hyp.read_text(encoding="utf-8").splitlines()) == n_lines

    text = src.read_bytes()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(text), encoding="utf-8"))
    assert main(["translate", "--checkpoint", str(run / "best.pt"), "--beam-size", "3"]) == 0
    assert capsys.readouterr().out == hyp.read_text(encoding="utf-8")

    # an empty line in the input stays an empty line in the output, line count kept
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"red cat\n\nsun moon\n"), encoding="utf-8"))
    assert main(["translate", "--checkpoint", str(run / "best.pt"), "--beam-size", "1"]) == 0
    lines = capsys.readouterr().out.split("\n")
    assert len(lines) == 4 and lines[1] == "" and lines[3] == ""


def test_translate_n_best_prints_numbered_scored_lines(trained, monkeypatch, capsys) -> None:
    _, run = trained
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"red cat\nsun moon dog\n"), encoding="utf-8"))
    assert main(["translate", "--checkpoint", str(run / "best.pt"), "--beam-size", "3", "--n-best", "2"]) == 0
    rows = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert [r[0] for r in rows] == ["0", "0", "1", "1"]
    scores = [float(r[1]) for r in rows]
    assert scores[0] >= scores[1] and scores[2] >= scores[3]


def test_evaluate_prints_bleu_and_chrf_with_signatures(trained, tmp_path: Path, capsys) -> None:
    data, _ = trained
    ref = data / "test.yy"
    assert main(["evaluate", "--hyp", str(ref), "--ref", str(ref)]) == 0
    out = capsys.readouterr().out
    assert "BLEU = 100.00" in out and "chrF = 100.00" in out
    assert "nrefs:1" in out and "tok:13a" in out and "version:" in out  # sacreBLEU signatures

    lines = ref.read_text().splitlines()
    worse = tmp_path / "worse.yy"
    worse.write_text("".join(" ".join(s.split()[::-1]) + "\n" for s in lines))  # wrong word order
    assert main(["evaluate", "--hyp", str(worse), "--ref", str(ref)]) == 0
    bleu = float(capsys.readouterr().out.split("BLEU = ")[1].split()[0])
    assert bleu < 100


def test_help_lists_the_subcommands(capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert all(command in out for command in COMMANDS)


def test_python_dash_m_seq2seq_help() -> None:
    proc = subprocess.run([sys.executable, "-m", "seq2seq", "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert all(command in proc.stdout for command in COMMANDS)


def test_evaluate_tokenizer_is_the_users_choice_and_named_in_the_signature(tmp_path: Path, capsys) -> None:
    """Chinese has no spaces: 13a sees one 'word' per sentence (BLEU 0), zh scores the characters."""
    ref, hyp = tmp_path / "ref.zh", tmp_path / "hyp.zh"
    ref.write_text("我们看到一只新鸟。\n两只狗在雪地里玩。\n", encoding="utf-8")
    hyp.write_text("我们看到一只新的鸟。\n两只狗在雪里玩。\n", encoding="utf-8")
    bleu = {}
    for tok in ("13a", "zh", "char"):
        assert main(["evaluate", "--hyp", str(hyp), "--ref", str(ref), "--tokenize", tok]) == 0
        out = capsys.readouterr().out
        assert f"tok:{tok}" in out and "chrF = " in out and "TER = " in out
        bleu[tok] = float(out.split("BLEU = ")[1].split()[0])
    assert bleu["13a"] == 0 and bleu["zh"] > 50 and bleu["char"] > 50
    assert main(["evaluate", "--hyp", str(hyp), "--ref", str(ref), "--tokenize", "zh", "--metrics", "ter"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and out[0].startswith("TER = ") and "asian:yes" in out[0]


def test_evaluate_starts_without_torch(tmp_path: Path) -> None:
    ref = tmp_path / "ref.txt"
    ref.write_text("a small cat sits on the old wall\n", encoding="utf-8")
    code = "import sys; from seq2seq.cli import main; main(sys.argv[1:]); assert 'torch' not in sys.modules"
    args = ["evaluate", "--hyp", str(ref), "--ref", str(ref)]
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "BLEU = 100.00" in proc.stdout


def test_validation_bleu_uses_the_runs_tokenizer_and_records_its_signature(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The signature is written from the config, not from the scoring: validation scored with "13a" whatever
    --bleu-tokenize said passed. A spy on the trainer's `score` sees the tokenizer that scores, and the recorded
    val_bleu is that score."""
    import seq2seq.trainer as trainer_module
    from seq2seq.metrics import score

    calls = []

    def spy(hyps, refs, tokenize="13a", metrics=("bleu", "chrf")):
        calls.append((list(hyps), list(refs), tokenize))
        return score(hyps, refs, tokenize, metrics)

    monkeypatch.setattr(trainer_module, "score", spy)
    data = write_corpus(tmp_path / "data", n_train=40, n_val=8, n_test=4)
    run = tmp_path / "run"
    code = main(["train", "--data", str(data), "--src", "xx", "--tgt", "yy", "--out", str(run), "--vocab-size", "30",
                 "--emb-size", "8", "--enc-hidden", "8", "--dec-hidden", "16", "--max-steps", "2", "--valid-every", "2",
                 "--bleu-tokenize", "char", "--max-tokens", "200"])  # fmt: skip
    assert code == 0
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    selection = next(r for r in records if r["type"] == "selection")
    assert selection["best_metric"] == "bleu" and "tok:char" in selection["val_bleu_signature"]
    assert json.loads((run / "config.json").read_text())["train"]["bleu_tokenize"] == "char"
    assert [tokenize for *_, tokenize in calls] == ["char"]  # one validation, at update 2
    (hyps, refs, _), validation = calls[0], next(r for r in records if "val_bleu" in r)
    assert validation["val_bleu"] == round(score(hyps, refs, "char", ("bleu",)).bleu, 3)


def test_config_toml_of_a_run_trains_the_same_run_again(trained, tmp_path: Path) -> None:
    """`train --config RUN/config.toml` reproduces the run: same settings, same weights."""
    import torch

    data, run = trained
    again = tmp_path / "again"
    code, _ = run_cli("train", "--config", run / "config.toml", "--data", data, "--src", "xx", "--tgt", "yy",
                      "--out", again)  # fmt: skip
    assert code == 0
    first, second = (json.loads((r / "config.json").read_text()) for r in (run, again))
    assert {k: first[k] for k in ("data", "model", "train")} == {k: second[k] for k in ("data", "model", "train")}
    a, b = (torch.load(r / "best.pt", weights_only=True)["model"] for r in (run, again))
    assert all(torch.equal(a[name], b[name]) for name in a)
    # a flag still overrides the file
    code, _ = run_cli("train", "--config", run / "config.toml", "--data", data, "--src", "xx", "--tgt", "yy",
                      "--out", tmp_path / "other", "--max-steps", "3")  # fmt: skip
    assert code == 0 and json.loads((tmp_path / "other" / "config.json").read_text())["train"]["max_steps"] == 3


def test_config_json_given_as_config_says_to_use_the_toml(trained, capsys) -> None:
    data, run = trained
    code = main(["train", "--config", str(run / "config.json"), "--data", str(data), "--src", "xx", "--tgt", "yy",
                 "--out", str(run)])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "RUN/config.toml" in err


def test_train_log_has_timestamped_lines_and_quiet_keeps_the_terminal_to_warnings(trained, tmp_path: Path) -> None:
    data, run = trained
    stamp = r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d (INFO|WARNING) "
    text = (run / "train.log").read_text(encoding="utf-8")
    lines = text.splitlines()
    assert lines and all(__import__("re").match(stamp, line) for line in lines)
    assert "update 5: loss" in text and "update 20: val_loss" in text and "stopped after 20 updates" in text

    cmd = [sys.executable, "-m", "seq2seq", "train", "--data", str(data), "--src", "xx", "--tgt", "yy",
           "--out", str(tmp_path / "q"), "--vocab-size", "40", "--emb-size", "8", "--enc-hidden", "8",
           "--dec-hidden", "16", "--max-steps", "4", "--valid-every", "2", "--log-every", "1",
           "--max-tokens", "300"]  # fmt: skip
    loud = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert loud.returncode == 0, loud.stderr
    assert "\r" not in loud.stderr  # not a terminal: no progress-bar frames ...
    assert "INFO update 3: loss" in loud.stderr  # ... but the lines the bar would show
    quiet = subprocess.run([*cmd, "--overwrite", "--quiet"], capture_output=True, text=True, timeout=120)
    assert quiet.returncode == 0 and "INFO" not in quiet.stderr and "\r" not in quiet.stderr
    assert "update 3: loss" in (tmp_path / "q" / "train.log").read_text()  # the file still has everything


def test_tensorboard_events_hold_the_metrics_records(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    data = write_corpus(tmp_path / "data", n_train=40, n_val=8, n_test=4)
    run = tmp_path / "run"
    code, _ = run_cli("train", "--data", data, "--src", "xx", "--tgt", "yy", "--out", run, "--vocab-size", "30",
                      "--emb-size", "8", "--enc-hidden", "8", "--dec-hidden", "16", "--max-steps", "4",
                      "--valid-every", "2", "--log-every", "1", "--max-tokens", "200", "--tensorboard")  # fmt: skip
    assert code == 0
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if r["type"] == "train"]
    assert [round(e.value, 5) for e in events.Scalars("train/loss")] == pytest.approx(losses)
    assert [e.step for e in events.Scalars("valid/val_loss")] == [2, 4]


def test_a_resumed_run_hides_the_tensorboard_events_of_the_steps_it_lost(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from torch.utils.tensorboard import SummaryWriter

    data = write_corpus(tmp_path / "data", n_train=40, n_val=8, n_test=4)
    run = tmp_path / "run"
    flags = ["--data", data, "--src", "xx", "--tgt", "yy", "--out", run, "--vocab-size", "30", "--emb-size", "8",
             "--enc-hidden", "8", "--dec-hidden", "16", "--valid-every", "2", "--log-every", "1", "--max-tokens",
             "200", "--tensorboard"]  # fmt: skip
    assert run_cli("train", *flags, "--max-steps", "4")[0] == 0
    lost = SummaryWriter(str(run / "tensorboard"))  # what a run killed after update 6 had written past last.pt
    for step in (5, 6):
        lost.add_scalar("train/loss", 99.0, step)
    lost.close()
    assert run_cli("train", *flags, "--max-steps", "6", "--resume")[0] == 0
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    losses = events.Scalars("train/loss")
    assert [e.step for e in losses] == [1, 2, 3, 4, 5, 6] and 99.0 not in [e.value for e in losses]


def test_every_flag_explains_itself_and_version_is_printed(capsys) -> None:
    from seq2seq.cli import build_parser

    commands = next(a for a in build_parser()._actions if a.dest == "command").choices
    for name, command in commands.items():
        for action in command._actions:
            text = (action.help or "").strip()
            assert text and not text.startswith("(default"), f"seq2seq {name} {action.option_strings}: no help text"
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    import seq2seq

    assert capsys.readouterr().out.strip() == f"seq2seq {seq2seq.__version__}"
