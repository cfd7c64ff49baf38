"""Hardware-aware precision and devices: both branches of every probe, on any machine.

The "bf16 cannot run" branch is exercised twice: by patching the probe (in-process), and for real
in a subprocess whose oneDNN is capped at AVX2 (ONEDNN_MAX_CPU_ISA), where torch's bf16 LSTM
kernel does not exist, as on an AVX2-only CPU.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest
import torch
from corpora import write_corpus
from test_cli import run_cli

from seq2seq.config import ConfigError, DecodeConfig, TrainConfig
from seq2seq.machine import hardware
from seq2seq.machine.hardware import HardwareError, cpu_bf16, resolve_device, resolve_precision

if TYPE_CHECKING:
    from pathlib import Path

AVX2 = {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}  # oneDNN and ATen as on an AVX2 CPU


def _clear() -> None:
    hardware.cpu_bf16.cache_clear()
    hardware.choose_precision.cache_clear()
    hardware._LOGGED.clear()


@pytest.fixture
def cpu(monkeypatch: pytest.MonkeyPatch):
    """Set what the probe finds: `cpu(runs=..., native=...)`; the real probe is restored afterwards."""

    def set_cpu(runs: bool, native: bool) -> None:
        _clear()
        error = None if runs else "could not create a primitive descriptor for the LSTM forward propagation primitive"
        monkeypatch.setattr(hardware, "_probe_bf16_lstm", lambda: error)
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: native)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
        monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
        monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)

    yield set_cpu
    monkeypatch.undo()
    _clear()


def tree(folder: Path) -> dict[str, tuple[str, int]]:
    """Every file below `folder` with its content hash and modification time."""
    return {
        str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


# --- the policy ---------------------------------------------------------------------------------


def test_auto_is_bf16_only_where_the_cpu_runs_it_natively(cpu) -> None:
    cpu(runs=True, native=True)
    assert resolve_precision("auto").name == "bf16"
    assert "native bf16" in resolve_precision("auto").reason
    cpu(runs=True, native=False)  # plain AVX-512: oneDNN emulates bf16, slower than fp32 (README)
    chosen = resolve_precision("auto")
    assert chosen.name == "fp32" and "no native bf16" in chosen.reason and "emulate" in chosen.reason
    cpu(runs=False, native=False)  # AVX2
    chosen = resolve_precision("auto")
    assert chosen.name == "fp32" and "no native bf16" in chosen.reason


def test_explicit_bf16_on_a_cpu_without_bf16_kernels_is_a_clear_error(cpu) -> None:
    cpu(runs=False, native=False)
    expected = r"precision bf16: this CPU \(.*\) cannot run .*use --precision fp32 or auto"
    with pytest.raises(HardwareError, match=expected):
        resolve_precision("bf16")
    assert resolve_precision("fp32").name == "fp32"


def test_the_precision_is_logged_once_even_when_asked_again_by_name(cpu, caplog: pytest.LogCaptureFixture) -> None:
    cpu(runs=False, native=False)  # an AVX2 CPU: auto -> fp32, then validation asks for "fp32" itself
    with caplog.at_level(logging.INFO, logger="seq2seq"):
        assert resolve_precision("auto").name == resolve_precision("fp32").name == "fp32"
        resolve_precision("auto")
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("precision:")]
    assert len(lines) == 1 and "no native bf16" in lines[0]


def test_explicit_bf16_where_it_is_emulated_runs_with_a_warning(cpu, caplog: pytest.LogCaptureFixture) -> None:
    cpu(runs=True, native=False)
    with caplog.at_level(logging.INFO, logger="seq2seq"):
        assert resolve_precision("bf16").name == "bf16"
        resolve_precision("bf16")
    lines = [r for r in caplog.records if r.getMessage().startswith("precision:")]
    assert len(lines) == 1 and lines[0].levelno == logging.WARNING and "slower than fp32" in lines[0].getMessage()


@pytest.mark.parametrize("native", [True, False])
def test_fp16_on_a_cpu_is_a_clear_error_suggesting_what_runs(cpu, native: bool) -> None:
    cpu(runs=True, native=native)
    with pytest.raises(HardwareError, match="fp16 needs a CUDA GPU.*use --precision auto") as err:
        resolve_precision("fp16")
    assert ("bf16 here" in str(err.value)) == native


def test_the_probe_leaves_the_random_stream_alone() -> None:
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    hardware._probe_bf16_lstm()
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize("mode", ["grad", "no_grad", "inference_mode"])
def test_the_real_probe_agrees_with_running_a_bf16_lstm(mode: str) -> None:
    """Whatever this CPU is, and wherever the first call comes from (translation runs in inference
    mode): the probe says bf16 runs exactly when a bf16 LSTM forward and backward run."""
    lstm = torch.nn.LSTM(4, 4)
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out, _ = lstm(torch.randn(3, 2, 4))
        out.float().sum().backward()
        runs = True
    except RuntimeError:
        runs = False
    _clear()
    context = {"grad": torch.enable_grad, "no_grad": torch.no_grad, "inference_mode": torch.inference_mode}[mode]
    with context():
        assert cpu_bf16().runs == runs
    _clear()


def test_unknown_or_missing_devices_are_clear_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(HardwareError, match="unknown device 'gpu0'"):
        resolve_device("gpu0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(HardwareError, match="--device cuda: no CUDA GPU is available here"):
        resolve_device("cuda")
    assert resolve_device("auto") == torch.device("cpu")
    for name in ("mps", "xpu", "meta"):  # torch parses them; nothing of this toolkit runs there
        with pytest.raises(HardwareError, match=f"--device {name}: this toolkit runs on cpu or cuda"):
            resolve_device(name)
    with pytest.raises(HardwareError, match="--device cpu:1: a CPU takes no index"):  # torch ignored the index
        resolve_device("cpu:1")


def test_hardware_exits_2_for_a_precision_this_machine_cannot_run(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    from seq2seq.cli import main

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["hardware", "--precision", "fp16", "--get", "precision"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "fp16" in captured.err  # a script reading the value gets no error text
    assert main(["hardware", "--device", "mps", "--get", "device"]) == 2


def test_config_takes_auto_and_refuses_unknown_precisions() -> None:
    assert TrainConfig().precision == "auto" and DecodeConfig().precision == "auto"
    with pytest.raises(ConfigError):
        resolve_precision("fp8")
    with pytest.raises(ConfigError, match="threads must be >= 0"):
        TrainConfig(threads=-1)


# --- end to end: nothing written, one line, exit 2 ----------------------------------------------


def test_train_with_a_precision_the_cpu_cannot_run_writes_nothing(cpu, tmp_path: Path, capsys) -> None:
    cpu(runs=False, native=False)
    data = write_corpus(tmp_path / "data", n_train=40)
    corpus = ["--data", data, "--src", "xx", "--tgt", "yy"]
    prepared = tmp_path / "prepared"
    assert run_cli("preprocess", *corpus, "--out", prepared, "--vocab-size", "40")[0] == 0
    before = tree(prepared)
    capsys.readouterr()
    code, out = run_cli("train", *corpus, "--out", prepared, "--precision", "bf16", "--max-steps", "2")
    err = capsys.readouterr().err
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("seq2seq train: error: precision bf16: this CPU")
    assert tree(prepared) == before  # the prepared run folder is exactly as it was
    fresh = tmp_path / "fresh"  # a run folder train would have prepared is not even made
    assert run_cli("train", *corpus, "--out", fresh, "--precision", "fp16", "--max-steps", "2")[0] == 2
    assert not fresh.exists()


def test_translate_with_a_precision_the_cpu_cannot_run_is_one_line(cpu, run_dir: Path, tmp_path: Path, capsys) -> None:
    cpu(runs=False, native=False)
    (tmp_path / "in.txt").write_text("red cat\n", encoding="utf-8")
    args = ["translate", "--checkpoint", run_dir / "best.pt", "--input", tmp_path / "in.txt"]
    capsys.readouterr()
    assert run_cli(*args, "--output", tmp_path / "out.txt", "--precision", "bf16")[0] == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "precision bf16: this CPU" in err and not (tmp_path / "out.txt").exists()
    assert run_cli(*args, "--output", tmp_path / "out.txt")[0] == 0  # auto: fp32 on this CPU
    assert (tmp_path / "out.txt").read_text(encoding="utf-8").count("\n") == 1


def _seq2seq(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "seq2seq", *args], env=dict(os.environ, **env), capture_output=True,
                          text=True, timeout=300)  # fmt: skip


def test_on_an_avx2_cpu_auto_trains_in_fp32_and_bf16_is_refused(tmp_path: Path) -> None:
    """For real, without patching: oneDNN capped at AVX2 has no bf16 LSTM, as on an AVX2-only CPU."""
    data, run = write_corpus(tmp_path / "data", n_train=40), tmp_path / "run"
    corpus = ["--data", str(data), "--src", "xx", "--tgt", "yy", "--out", str(run)]
    tiny = ["--vocab-size", "40", "--emb-size", "8", "--enc-hidden", "8", "--dec-hidden", "16", "--max-tokens", "60",
            "--valid-every", "2", "--valid-bleu-sentences", "4", "--threads", "1"]  # fmt: skip
    refused = _seq2seq(["train", *corpus, *tiny, "--precision", "bf16", "--max-steps", "2"], AVX2)
    assert refused.returncode == 2, refused.stderr[-2000:]
    assert refused.stderr.count("\n") == 1 and "precision bf16: this CPU (AVX2" in refused.stderr
    assert not run.exists()
    done = _seq2seq(["train", *corpus, *tiny, "--max-steps", "2"], AVX2)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "precision: fp32 (CPU has no native bf16 (AVX2" in done.stderr
    records = map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
    record = next(r for r in records if r["type"] == "hardware")
    assert record["precision"] == "fp32" and record["requested"] == "auto" and record["cpu"].startswith("AVX2")
    assert json.loads((run / "config.json").read_text())["precision"]["name"] == "fp32"
    report = _seq2seq(["hardware", "--device", "cpu"], AVX2)
    assert report.returncode == 0 and "precision: fp32 (CPU has no native bf16" in report.stdout


def test_hardware_command_reports_what_it_would_choose() -> None:
    done = _seq2seq(["hardware", "--device", "cpu", "--get", "device"], {})
    assert done.returncode == 0 and done.stdout == "cpu\n"
    report = _seq2seq(["hardware", "--device", "cpu"], {})
    fields = dict(line.split(": ", 1) for line in report.stdout.splitlines())
    assert {"device", "torch", "cpu", "cpu_capability", "cpu_bf16", "gpu", "precision"} <= set(fields)
    # what training with --precision auto would run here (bf16 only where this CPU has it natively)
    chosen = hardware.choose_precision("auto", "cpu").name
    assert fields["precision"].split()[0] == chosen
    assert _seq2seq(["hardware", "--device", "cpu", "--get", "precision"], {}).stdout.split()[0] == chosen


def test_more_threads_than_usable_cores_is_said_counting_affinity_and_processes(monkeypatch, caplog) -> None:
    """The warning counted the machine's cores (os.cpu_count), not those this process may use (taskset, a
    container's cpuset), and one process's threads, not those of torchrun's processes on the machine."""
    from seq2seq.machine import hardware

    before = torch.get_num_threads()
    monkeypatch.setattr(hardware.os, "cpu_count", lambda: 64)
    monkeypatch.setattr(hardware.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    try:
        for threads, processes, warned in ((2, "1", False), (3, "1", True), (1, "2", False), (2, "2", True)):
            monkeypatch.setenv("LOCAL_WORLD_SIZE", processes)
            caplog.clear()
            hardware.set_threads(threads)
            assert ("on 2 usable CPU cores" in caplog.text) is warned, (threads, processes, caplog.text)
    finally:
        torch.set_num_threads(before)
