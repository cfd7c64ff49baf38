"""The training-memory breakdown of docs/speed.md: phases' resident set and what autograd keeps."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest
from corpora import write_corpus

from seq2seq.batches import bucket_shape
from seq2seq.config import ModelConfig, TrainConfig
from seq2seq.devtools.train_memory import _rss_mib, main, resident_by_kind, training_memory
from seq2seq.devtools.train_profile import epoch_batches
from seq2seq.machine.process import malloc_trim
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
    c = ModelConfig()  # the training memory check's lower bound of the rest holds for what autograd keeps
    widths = c.emb_size + 4 * c.dec_hidden * c.dec_layers + 2 * c.enc_hidden + 2 * c.dec_hidden
    floor = saved["tgt_tokens"] * 4 * widths
    assert (saved["mib"] - scores[0]["mib"]) * 2**20 >= floor
    # parameters are not activations: the (tied) output weight the output layer saves is left out
    weight = [vocab, ModelConfig().emb_size]
    assert not [r for r in saved["by_shape"] if r["shape"] in (weight, weight[::-1])]  # as saved: transposed
    # where the resident set is, before and after glibc gives back the free heap it keeps
    end, trimmed = result["resident_by_kind"]["end"], result["resident_by_kind"]["after_malloc_trim"]
    assert list(end["by_kind"]) == ["heap", "anonymous", "jit code", "files"]
    assert abs(sum(end["by_kind"].values()) - end["rss"]) < 8  # smaps' mappings add up to VmRSS
    assert trimmed["rss"] <= end["rss"] + 1 and trimmed["by_kind"]["heap"] <= end["by_kind"]["heap"] + 1


def test_resident_memory_is_sorted_into_heap_jit_code_anonymous_and_files(tmp_path: Path) -> None:
    smaps = tmp_path / "smaps"
    smaps.write_text(
        "55d0c000-55d0d000 rw-p 00000000 00:00 0          [heap]\nSize:  4096 kB\nRss:  2048 kB\nVmFlags: rd wr\n"
        "7f000000-7f001000 rwxp 00000000 00:00 0 \nRss:  1024 kB\n"  # a JIT kernel: anonymous, executable
        "7f002000-7f003000 rw-p 00000000 00:00 0 \nRss:   512 kB\n"
        "7f004000-7f005000 r-xp 00000000 08:01 1234       /usr/lib/libc.so.6\nRss:  3072 kB\n"
        "7ffc0000-7ffc1000 rw-p 00000000 00:00 0          [stack]\nRss:   512 kB\n"
        "7ffc2000-7ffc3000 r-xp 00000000 00:00 0          [vdso]\nRss:  1024 kB\n"  # the kernel's code: not JIT
    )
    assert resident_by_kind(str(smaps)) == {"heap": 2.0, "anonymous": 2.0, "jit code": 1.0, "files": 3.0}


def test_malloc_trim_gives_freed_heap_blocks_back() -> None:
    blocks = [bytearray(100 * 1024) for _ in range(1500)]  # ~146 MiB of the C heap (blocks below mmap's threshold)
    top = blocks.pop()  # still in use: the freed blocks below it are a hole, which free() does not trim
    del blocks
    before = _rss_mib()
    assert malloc_trim()
    assert before - _rss_mib() > 100, "malloc_trim gave less than 100 of ~146 freed MiB back"
    assert len(top) == 100 * 1024


def test_a_bad_setting_is_one_line_and_exit_status_2(tmp_path: Path, capsys) -> None:
    argv = ["--data", str(tmp_path), "--src", "xx", "--tgt", "yy", "--out", str(tmp_path / "run"),
            "--onednn-cache", "5000"]  # fmt: skip
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    assert "onednn_cache must be <= 1024" in capsys.readouterr().err.strip().splitlines()[-1]


def test_more_updates_than_batches_is_refused(tmp_path: Path) -> None:
    data = write_corpus(tmp_path / "data", n_train=20, n_val=4, n_test=4)
    with pytest.raises(ValueError, match="--updates must be between 1"):
        training_memory(str(data), "xx", "yy", str(tmp_path / "run"), TrainConfig(max_tokens=4000), 500)


def test_the_largest_batch_is_the_one_with_most_padded_positions_as_trained(tmp_path: Path) -> None:
    """With shape buckets on, a batch is padded to its bucket's shape: the largest is chosen by that."""
    data = write_corpus(tmp_path / "data", n_train=120, n_val=8, n_test=4, seed=3)
    cfg = TrainConfig(max_tokens=100, threads=1, shape_buckets="on")
    saved = training_memory(str(data), "xx", "yy", str(tmp_path / "run"), cfg, updates=5)["saved_for_backward"]
    split = Prepared.load(tmp_path / "run").split("train")
    shapes = [bucket_shape(int(max(split.src_lens[i].max(), split.tgt_lens[i].max())) + 1, 100)
              for i in epoch_batches(split, cfg)[:5]]  # fmt: skip
    assert saved["padded_shape"] == list(max(shapes, key=lambda s: s[0] * s[1]))
    assert len(set(shapes)) > 1  # a choice to make


def test_batches_whose_decoder_activations_cannot_fit_are_refused_before_training(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`--emb-size 8192 --max-tokens 1000000` with tiny hidden sizes passed the check (weights and scores: 0.18 GB
    of a 12.6 GB budget) and grew past 7 GB in the first update: the decoder's per-token activations count too."""
    from seq2seq import updater
    from seq2seq.config import ConfigError

    monkeypatch.setattr(updater, "training_memory", lambda device: (12 * 10**9, "half this machine's memory"))
    model = ModelConfig(emb_size=8192, enc_hidden=1, dec_hidden=1)
    acts = 1_000_000 * 4 * (8192 + 4 * 1 + 2 * 1 + 2 * 1)  # embedding, LSTM gates, context, output and attentional
    assert f"{acts / 1e9:.1f}" == "32.8"
    with pytest.raises(ConfigError, match=r"the decoder's activations at least 32\.8 GB\), over half this machine"):
        updater.check_model_memory(model, (40, 40), TrainConfig(max_tokens=1_000_000, precision="fp32"))
    updater.check_model_memory(model, (40, 40), TrainConfig(max_tokens=100_000, precision="fp32"))  # 3.3 GB: fits
