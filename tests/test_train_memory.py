"""The training-memory breakdown of docs/speed.md: phases' resident set and what autograd keeps."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest
from corpora import write_corpus

from seq2seq.config import ModelConfig, TrainConfig
from seq2seq.devtools.train_memory import main, training_memory
from seq2seq.prepared import Prepared

if TYPE_CHECKING:
    from pathlib import Path


def test_phases_and_the_saved_output_scores_are_reported(tmp_path: Path, capsys) -> None:
    data = write_corpus(tmp_path / "data", n_train=120, n_val=8, n_test=4)
    argv = ["--data", str(data), "--src", "xx", "--tgt", "yy", "--out", str(tmp_path / "run"),
            "--max-tokens", "60", "--threads", "1", "--updates", "5"]  # fmt: skip
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    rss = result["rss_mib"]
    assert list(rss) == ["start", "prepared", "model_and_optimiser", "after_update_1", "after_update_5"]
    assert result["peak_rss_mib"] >= max(rss.values()) - 1 > 0  # two kernel counters: ~0.1 MiB apart
    saved = result["saved_for_backward"]
    mib = [row["mib"] for row in saved["by_shape"]]
    assert mib == sorted(mib, reverse=True) and 0 < sum(mib) <= saved["mib"] + 0.1 * len(mib)
    # the loss keeps the output layer's scores: one float32 row of V scores per real target token
    vocab = Prepared.load(tmp_path / "run").vocab[1]
    scores = [r for r in saved["by_shape"] if r["shape"] == [saved["tgt_tokens"], vocab] and r["dtype"] == "float32"]
    assert scores and scores[0]["mib"] == round(saved["tgt_tokens"] * vocab * 4 / 2**20, 1)
    # parameters are not activations: the (tied) output weight the output layer saves is left out
    weight = [vocab, ModelConfig().emb_size]
    assert not [r for r in saved["by_shape"] if r["shape"] in (weight, weight[::-1])]  # as saved: transposed


def test_more_updates_than_batches_is_refused(tmp_path: Path) -> None:
    data = write_corpus(tmp_path / "data", n_train=20, n_val=4, n_test=4)
    with pytest.raises(ValueError, match="--updates must be between 1"):
        training_memory(str(data), "xx", "yy", str(tmp_path / "run"), TrainConfig(max_tokens=4000), 500)
