"""Process-level memory settings applied before training (process.py)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from corpora import write_corpus

import seq2seq.train as train_module
import seq2seq.updater as updater_module
from seq2seq.config import DECODING_ONEDNN_CACHE, TRAINING_ONEDNN_CACHE, DataConfig, ModelConfig, TrainConfig
from seq2seq.errors import ConfigError
from seq2seq.machine import process
from seq2seq.machine.process import limit_onednn_cache, pin_mmap_threshold
from seq2seq.train import RunOptions, RunSpec, train

TESTS = str(Path(__file__).resolve().parent)  # for corpora.py in subprocesses, whatever the working directory


def test_onednn_cache_limit_sets_the_variable_and_negative_leaves_the_default(monkeypatch) -> None:
    for name in ("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "LRU_CACHE_CAPACITY"):
        monkeypatch.delenv(name, raising=False)
    limit_onednn_cache(-1)
    assert "ONEDNN_PRIMITIVE_CACHE_CAPACITY" not in os.environ and "LRU_CACHE_CAPACITY" not in os.environ
    limit_onednn_cache(16)
    assert os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == os.environ["LRU_CACHE_CAPACITY"] == "16"
    limit_onednn_cache(0)
    assert (os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"], os.environ["LRU_CACHE_CAPACITY"]) == ("0", "1")


_SHAPES_CODE = """
import sys
from seq2seq.machine.process import limit_onednn_cache
limit_onednn_cache(int(sys.argv[1]))  # before the process's first oneDNN op, as train() does
import torch, torch.nn.functional as F
torch.set_num_threads(1)
def rss():
    return int(open("/proc/self/status").read().split("VmRSS:")[1].split()[0]) / 1024
w = torch.randn(1000, 256, requires_grad=True)
start = rss()
for rows in range(50, 250):  # a new shape for every call, as every training batch has
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = F.linear(torch.randn(rows, 256), w)
    y.float().sum().backward()
print(rss() - start)
"""


def test_a_capped_cache_keeps_bf16_matmuls_of_new_shapes_from_growing_the_process() -> None:
    # oneDNN's primitive cache and torch's own (ideep's LRU_CACHE_CAPACITY) each keep ~1 MiB per
    # bf16 matmul shape, 1,024 entries by default: capped, 200 new shapes leave RSS about flat
    env = {k: v for k, v in os.environ.items() if k not in ("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "LRU_CACHE_CAPACITY")}

    def growth(entries: int) -> float:
        out = subprocess.run(
            [sys.executable, "-c", _SHAPES_CODE, str(entries)], capture_output=True, text=True, env=env, timeout=120
        )
        assert out.returncode == 0, out.stderr[-1500:]
        return float(out.stdout.strip().splitlines()[-1])

    assert growth(0) < 60  # no cache at all: runs (torch's own cache is kept at 1 entry: 0 crashes it)
    uncapped = growth(-1)
    if uncapped < 100:
        pytest.skip(f"bf16 matmuls of new shapes grew this process by {uncapped:.0f} MiB only: no cache to bound here")
    capped = growth(2)
    assert capped < 60, f"capped at 2 entries the process still grew {capped:.0f} MiB (uncapped: {uncapped:.0f} MiB)"


def test_train_applies_the_configured_cache_before_its_first_op(tmp_path) -> None:
    # a fresh process: train() must set the capacity from the config (here 3), not leave it unset
    code = (
        f"import os, sys; sys.path.insert(0, {TESTS!r}); from corpora import write_corpus;"
        "from seq2seq.config import TrainConfig, ModelConfig; from seq2seq.train import RunOptions, RunSpec, train;"
        f"d = write_corpus(__import__('pathlib').Path({str(tmp_path)!r}) / 'd');"
        f"train(RunSpec(d, 'xx', 'yy', {str(tmp_path / 'run')!r}), model_cfg=ModelConfig(emb_size=8, enc_hidden=4,"
        " dec_hidden=8), cfg=TrainConfig(max_steps=1, onednn_cache=3, valid_bleu_sentences=0, threads=1),"
        " options=RunOptions(progress=False)); print(os.environ['ONEDNN_PRIMITIVE_CACHE_CAPACITY'])"
    )
    env = {k: v for k, v in os.environ.items() if k != "ONEDNN_PRIMITIVE_CACHE_CAPACITY"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-1500:]
    assert out.stdout.strip().splitlines()[-1] == "3"


def test_train_applies_the_settings_before_the_probe_the_model_and_the_first_rnn(tmp_path, monkeypatch) -> None:
    # the order inside train(): process.apply first, and the cache capacity already set when the
    # precision probe, the model construction and the first RNN forward (oneDNN's first primitive) run
    monkeypatch.delenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", raising=False)
    events: list[tuple[str, str | None]] = []

    def spy(name, real):
        def call(*args, **kwargs):
            events.append((name, os.environ.get("ONEDNN_PRIMITIVE_CACHE_CAPACITY")))
            return real(*args, **kwargs)

        return call

    monkeypatch.setattr(process, "apply", spy("apply", process.apply))
    monkeypatch.setattr(train_module, "resolve_precision", spy("probe", train_module.resolve_precision))
    monkeypatch.setattr(updater_module, "Seq2Seq", spy("model", updater_module.Seq2Seq))
    monkeypatch.setattr(torch.nn.LSTM, "forward", spy("lstm", torch.nn.LSTM.forward))
    data = write_corpus(tmp_path / "d", n_train=60)
    model_cfg = ModelConfig(emb_size=8, enc_hidden=4, dec_hidden=8)
    cfg = TrainConfig(max_steps=1, onednn_cache=3, valid_bleu_sentences=0, threads=1)
    train(
        RunSpec(data, "xx", "yy", tmp_path / "run"),
        DataConfig(vocab_size=40),
        model_cfg,
        cfg,
        RunOptions(progress=False),
    )
    names = [name for name, _ in events]
    assert names[0] == "apply" and events[0][1] is None
    assert {"probe", "model", "lstm"} <= set(names)
    assert all(value == "3" for _, value in events[1:]), events


# Without a pin glibc raises its mmap threshold when an mmapped block is freed, so a 2 MiB block
# after a freed 4 MiB one comes from the heap; pinned at 64 KiB, 2 MiB blocks come from mmap (hblks:
# blocks served by mmap, from mallinfo2, glibc >= 2.33). The first pinned block may still fit the
# heap top; its free trims the top (trim threshold pinned too), so the next one must be mmapped.
MMAP_PROBE = """
import ctypes, ctypes.util
from seq2seq.machine.process import pin_mmap_threshold
libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
names = "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()
libc.mallinfo2.restype = type("M", (ctypes.Structure,), {"_fields_": [(n, ctypes.c_size_t) for n in names]})
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
def mmapped(size):
    before = libc.mallinfo2().hblks
    ptr = libc.malloc(size)
    now = libc.mallinfo2().hblks
    libc.free(ptr)
    return now - before
print(pin_mmap_threshold(0), pin_mmap_threshold(-8), mmapped(4 << 20), mmapped(2 << 20))
print(pin_mmap_threshold(64), mmapped(2 << 20), mmapped(2 << 20))
"""


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's"
)
def test_mmap_threshold_pins_glibc_malloc_for_positive_kib_only() -> None:
    # a fresh process, so that the pinned threshold does not stay in this one
    out = subprocess.run([sys.executable, "-c", MMAP_PROBE], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-1500:]
    off, on = (line.split() for line in out.stdout.splitlines()[:2])
    # kib <= 0: False, and glibc's dynamic threshold left alone (2 MiB from the heap after a freed 4 MiB)
    assert off[:2] == ["False", "False"] and off[3] == "0", off
    # kib = 64: True, and 2 MiB blocks now come from mmap
    assert on[0] == "True" and on[2] == "1", on


def test_mmap_threshold_is_off_for_zero_and_negative() -> None:
    assert pin_mmap_threshold(0) is False and pin_mmap_threshold(-1) is False


# 30 allocations of 48 MiB, each written and freed, as an update's output-layer scores are: with
# glibc's defaults each is a fresh mapping, page-faulted in again (12,288 faults of 4 KiB each); with
# the training default (256 MiB) the freed block is reused from the heap.
FAULT_PROBE = """
import resource, sys, torch
from seq2seq.config import TrainConfig
from seq2seq.machine.process import pin_mmap_threshold
if sys.argv[1] == "pinned":
    assert pin_mmap_threshold(TrainConfig().malloc_mmap_kib)
torch.ones(12 << 20).sum()  # warm up
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(30):
    torch.ones(12 << 20).sum()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's"
)
def test_the_training_default_keeps_large_freed_blocks_instead_of_faulting_them_in_again() -> None:
    faults = {}
    for mode in ("default", "pinned"):
        cmd = [sys.executable, "-c", FAULT_PROBE, mode]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr[-1500:]
        faults[mode] = int(out.stdout.split()[-1])
    assert faults["default"] > 30 * 10_000, faults  # every 48 MiB block faulted in again
    # reused: a few blocks' faults, not 30 (measured: 24,576 and once 49,152, 2 and 4 blocks, against 368,670)
    assert faults["pinned"] * 5 < faults["default"], faults


@pytest.mark.parametrize("command", ["translate", "serve"])
def test_translate_and_serve_cap_the_caches_before_loading_a_model(tmp_path, command) -> None:
    # a fresh process with neither variable set: the command caps both caches (bf16 decoding's RSS
    # halves, docs/speed.md) before it touches the model, which here fails to load (exit 2)
    code = (
        "import os, sys; from seq2seq.cli import main\n"
        f"try: print(main([{command!r}, '--checkpoint', {str(tmp_path / 'missing.pt')!r}]))\n"
        "except SystemExit as e: print(e.code)\n"
        "print(os.environ.get('ONEDNN_PRIMITIVE_CACHE_CAPACITY'), os.environ.get('LRU_CACHE_CAPACITY'))"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "LRU_CACHE_CAPACITY")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-1500:]
    # 16 entries, not training's 4: a decoder's steps repeat their shapes (beam 5 is 13 % slower at 4, docs/speed.md)
    assert DECODING_ONEDNN_CACHE > TRAINING_ONEDNN_CACHE
    assert out.stdout.split() == ["2", str(DECODING_ONEDNN_CACHE), str(DECODING_ONEDNN_CACHE)], (
        out.stdout,
        out.stderr,
    )


def test_a_cache_larger_than_the_libraries_default_is_refused_in_one_line(tmp_path) -> None:
    with pytest.raises(ConfigError, match="onednn_cache must be <= 1024"):
        TrainConfig(onednn_cache=1025)
    assert TrainConfig(onednn_cache=1024).onednn_cache == 1024 and TrainConfig(onednn_cache=-1).onednn_cache == -1
    out = subprocess.run(
        [sys.executable, "-m", "seq2seq", "train", "--data", str(tmp_path), "--src", "xx", "--tgt", "yy",
         "--out", str(tmp_path / "run"), "--onednn-cache", "99999999999"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 2 and "onednn_cache must be <= 1024" in out.stderr, out.stderr[-800:]
    assert len(out.stderr.strip().splitlines()) == 1 and not (tmp_path / "run").exists()
