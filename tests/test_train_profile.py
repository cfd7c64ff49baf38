"""The training profiler of docs/speed.md: real updates, shares of self CPU time that add up."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest
from corpora import write_corpus

from seq2seq.config import TrainConfig
from seq2seq.devtools.train_profile import GROUPS, main, profile_training

if TYPE_CHECKING:
    from pathlib import Path


def test_profile_shares_add_up_and_name_the_lstm_and_the_gemms(tmp_path: Path, capsys) -> None:
    data = write_corpus(tmp_path / "data", n_train=120, n_val=8, n_test=4)
    argv = ["--data", str(data), "--src", "xx", "--tgt", "yy", "--out", str(tmp_path / "run"),
            "--max-tokens", "60", "--threads", "1", "--warmup", "2", "--updates", "3"]  # fmt: skip
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["precision"] == "fp32" and result["updates"] == 3 and result["tgt_tok_s"] > 0
    assert sum(result["groups_pct"].values()) == pytest.approx(100, abs=0.5)
    assert result["groups_pct"]["gemm"] > 0 and result["groups_pct"]["lstm"] > 0
    assert set(GROUPS.values()) <= set(result["groups_pct"])  # every group it names matches operators that ran
    assert list(result["ops_pct"].values()) == sorted(result["ops_pct"].values(), reverse=True)


def test_too_few_batches_for_the_profile_is_refused(tmp_path: Path) -> None:
    data = write_corpus(tmp_path / "data", n_train=20, n_val=4, n_test=4)
    with pytest.raises(ValueError, match="fewer than warmup"):
        profile_training(str(data), "xx", "yy", str(tmp_path / "run"), TrainConfig(max_tokens=4000), 100, 30)
