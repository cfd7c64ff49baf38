"""Corpora that do not fit in memory: chunked encoding into on-disk arrays, a cache keyed by the tokenizer."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np
import pytest
from corpora import write_corpus
from test_resume import DATA, MODEL

import seq2seq.corpus as corpus_module
from seq2seq.config import DataConfig, TrainConfig
from seq2seq.errors import CorpusError
from seq2seq.prepared import EncodedSplit, Prepared, SplitWriter
from seq2seq.preprocess import preprocess
from seq2seq.train import RunOptions, RunSpec, train

if TYPE_CHECKING:
    from pathlib import Path


def test_split_writer_equals_the_in_memory_split(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    src = [list(rng.integers(4, 100, rng.integers(1, 9))) for _ in range(50)]
    tgt = [list(rng.integers(4, 100, rng.integers(1, 9))) for _ in range(50)]
    writer = SplitWriter(tmp_path / "train")
    for start in range(0, 50, 7):  # uneven chunks
        writer.add(src[start : start + 7], tgt[start : start + 7])
    written, expected = writer.close(), EncodedSplit.from_lists(src, tgt)
    for name in ("src_ids", "src_offsets", "tgt_ids", "tgt_offsets"):
        assert isinstance(getattr(written, name), np.memmap)  # read from disk on demand
        np.testing.assert_array_equal(getattr(written, name), getattr(expected, name))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        f"train.{n}.npy" for n in ("src_ids", "src_offsets", "tgt_ids", "tgt_offsets")
    )
    empty = SplitWriter(tmp_path / "empty").close()
    assert len(empty) == 0 and len(empty.src_ids) == 0


def test_chunked_preprocessing_equals_one_chunk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    corpus = write_corpus(tmp_path / "corpus", n_train=150)
    for lang in ("xx", "yy"):  # duplicates across chunk boundaries, for the dedup filter
        lines = (corpus / f"train.{lang}").read_text().splitlines()
        (corpus / f"train.{lang}").write_text("\n".join(lines + lines[:40]) + "\n")
    cfg = DataConfig(vocab_size=60, dedup=True)
    whole = preprocess(corpus, "xx", "yy", tmp_path / "whole", cfg)
    monkeypatch.setattr(corpus_module, "CHUNK", 7)
    chunked = preprocess(corpus, "xx", "yy", tmp_path / "chunked", cfg)
    assert whole == {**chunked, "data_dir": whole["data_dir"]}
    assert whole["removed"]["duplicate"] >= 40 and whole["splits"]["train"] <= 150
    a, b = Prepared.load(tmp_path / "whole"), Prepared.load(tmp_path / "chunked")
    for split in ("train", "val", "test"):
        for name in ("src_ids", "src_offsets", "tgt_ids", "tgt_offsets"):
            np.testing.assert_array_equal(getattr(a.split(split), name), getattr(b.split(split), name))
        assert a.text(split) == b.text(split)
    assert a.text("val", limit=3) == tuple(lines[:3] for lines in a.text("val"))


def test_cache_is_keyed_by_the_tokenizer(tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "corpus", n_train=120)
    manifest = preprocess(corpus, "xx", "yy", tmp_path / "run", DataConfig(vocab_size=60))
    preprocess(corpus, "xx", "yy", tmp_path / "other", DataConfig(vocab_size=60, sp_model_type="bpe"))
    prepared = Prepared.load(tmp_path / "run")
    assert prepared.cache == tmp_path / "run" / "cache" / manifest["tokenizer"]
    assert [p.name for p in (tmp_path / "run" / "cache").iterdir()] == [manifest["tokenizer"]]
    # Another tokenizer in the run folder: the cache is refused, never decoded with the wrong pieces.
    (tmp_path / "run" / "spm.tgt.model").write_bytes((tmp_path / "other" / "spm.tgt.model").read_bytes())
    with pytest.raises(CorpusError, match="not the tokenizer that encoded cache/.*preprocess` again"):
        Prepared.load(tmp_path / "run")
    with pytest.raises(CorpusError, match="preprocess` again"):
        train(
            RunSpec(corpus, "xx", "yy", tmp_path / "run"),
            DATA,
            MODEL,
            TrainConfig(max_steps=1),
            RunOptions(progress=False),
        )
    # Preprocessing again rebuilds it (and drops the stale cache folder).
    again = preprocess(corpus, "xx", "yy", tmp_path / "run", DataConfig(vocab_size=60))
    assert again["tokenizer"] == manifest["tokenizer"]  # same data and settings: the same tokenizer
    assert [p.name for p in (tmp_path / "run" / "cache").iterdir()] == [manifest["tokenizer"]]
    assert not list(tmp_path.glob(".*preprocess*"))  # the work folder is gone


def test_folders_prepared_before_keyed_caches_are_a_clear_error(tmp_path: Path) -> None:
    """No compatibility shim for the unkeyed cache of early versions: one line saying what to do."""
    corpus = write_corpus(tmp_path / "corpus", n_train=60)
    manifest = preprocess(corpus, "xx", "yy", tmp_path / "run", DataConfig(vocab_size=60))
    cache = tmp_path / "run" / "cache"
    for f in (cache / manifest["tokenizer"]).iterdir():
        f.rename(cache / f.name)
    del manifest["tokenizer"]
    (tmp_path / "run" / "preprocess.json").write_text(json.dumps(manifest))
    with pytest.raises(CorpusError, match=r"prepared by an older seq2seq .*run `seq2seq preprocess` again"):
        Prepared.load(tmp_path / "run")


def test_training_never_reads_the_training_text(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Training maps the encoded arrays; only validation reads text (its first sentences)."""
    corpus = write_corpus(tmp_path / "corpus", n_train=120)
    preprocess(corpus, "xx", "yy", tmp_path / "run", DATA)
    real, asked = Prepared.text, []

    def spy(self: Prepared, name: str, limit: int | None = None) -> tuple[list[str], list[str]]:
        asked.append((name, limit))
        return real(self, name, limit)

    monkeypatch.setattr(Prepared, "text", spy)
    cfg = TrainConfig(max_tokens=120, max_steps=4, valid_every=2, valid_bleu_sentences=5)
    train(RunSpec(corpus, "xx", "yy", tmp_path / "run"), DATA, MODEL, cfg, RunOptions(progress=False))
    assert asked == [("val", 5), ("val", 5)]
