"""Process-level memory settings applied before training (process.py)."""

from __future__ import annotations

import os
import subprocess
import sys

from seq2seq.machine.process import limit_onednn_cache, pin_mmap_threshold


def test_onednn_cache_limit_sets_the_variable_and_negative_leaves_the_default(monkeypatch) -> None:
    monkeypatch.delenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", raising=False)
    limit_onednn_cache(-1)
    assert "ONEDNN_PRIMITIVE_CACHE_CAPACITY" not in os.environ
    limit_onednn_cache(16)
    assert os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == "16"


def test_train_applies_the_configured_cache_before_its_first_op(tmp_path) -> None:
    # a fresh process: train() must set the capacity from the config (here 3), not leave it unset
    code = (
        "import os, sys; sys.path.insert(0, 'tests'); from corpora import write_corpus;"
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


def test_mmap_threshold_is_off_for_zero() -> None:
    assert pin_mmap_threshold(0) is False
