"""The prepared run folder's format: `Prepared` reads it, `install` and `SplitWriter` write it.

A prepared run folder holds `preprocess.json` (what was done, with counts), `spm.src.model` and
`spm.tgt.model` (the same bytes when the vocabulary is joint) and `cache/KEY/`: every split
encoded once into flat on-disk arrays (memory-mapped by training and shared by all its
processes) beside its cleaned text (BLEU references; re-sampled segmentations). KEY is a hash of
the two SentencePiece models, so a cache is never read with another tokenizer than its own.
`preprocess.py` makes one (cleaning, filtering, SentencePiece) through the writers here.
"""

from __future__ import annotations

import errno
import hashlib
import itertools
import json
import os
import shutil
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import sentencepiece as spm

from .atomic import write_text_atomic
from .config import DataConfig
from .config_dict import from_dict
from .corpus import read_pairs
from .errors import CorpusError
from .text import iter_lines
from .tokenizer import Tokenizer

MANIFEST = "preprocess.json"


@dataclass
class EncodedSplit:
    """Piece ids of one split, flat arrays plus offsets (cheap to store and to memory-map)."""

    src_ids: np.ndarray  # (total src pieces,) int32
    src_offsets: np.ndarray  # (n + 1,) int64
    tgt_ids: np.ndarray
    tgt_offsets: np.ndarray

    @classmethod
    def from_lists(cls, src: list[list[int]], tgt: list[list[int]]) -> EncodedSplit:
        def flat(seqs: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
            offsets = np.zeros(len(seqs) + 1, dtype=np.int64)
            np.cumsum([len(s) for s in seqs], out=offsets[1:])
            ids = np.fromiter((i for s in seqs for i in s), dtype=np.int32, count=int(offsets[-1]))
            return ids, offsets

        return cls(*flat(src), *flat(tgt))

    def __len__(self) -> int:
        return len(self.src_offsets) - 1

    @property
    def src_lens(self) -> np.ndarray:
        return np.diff(self.src_offsets)

    @property
    def tgt_lens(self) -> np.ndarray:
        return np.diff(self.tgt_offsets)

    def save(self, prefix: Path) -> None:
        for name in ("src_ids", "src_offsets", "tgt_ids", "tgt_offsets"):
            np.save(f"{prefix}.{name}.npy", getattr(self, name))

    @classmethod
    def load(cls, prefix: Path) -> EncodedSplit:
        """Memory-map a saved split: pages are read on demand and shared by every process that maps them.
        A missing, cut or inconsistent file is a CorpusError naming it and the way back."""
        arrays = []
        for name in ("src_ids", "src_offsets", "tgt_ids", "tgt_offsets"):
            path = Path(f"{prefix}.{name}.npy")
            try:
                arrays.append(np.load(path, mmap_mode="r"))
            except (OSError, ValueError) as err:  # missing, a header cut short, data shorter than the header says
                raise CorpusError(f"{path}: a damaged prepared split ({' '.join(str(err).split())[:120]}): prepare "
                                  f"the run folder again (seq2seq preprocess --overwrite)") from None  # fmt: skip
        split = cls(*arrays)
        for side in ("src", "tgt"):
            ids, offsets = getattr(split, f"{side}_ids"), getattr(split, f"{side}_offsets")
            if (len(offsets) != len(split.src_offsets) or not len(offsets) or offsets[0] != 0 or offsets[-1] != len(ids)
                    or bool((np.diff(offsets) < 0).any())):  # fmt: skip
                raise CorpusError(f"{prefix}.{side}_offsets.npy: a damaged prepared split (its offsets do not match "
                                  f"{side}_ids or the other side): prepare the run folder again (seq2seq preprocess "
                                  "--overwrite)")  # fmt: skip
        return split


class SplitWriter:
    """Writes an `EncodedSplit` to `{prefix}.*.npy` a chunk of pairs at a time, so a split of any size
    never sits in memory as Python lists: ids go straight to disk, only the lengths are kept."""

    def __init__(self, prefix: Path) -> None:
        self.prefix = prefix
        self._ids = {side: open(f"{prefix}.{side}_ids.part", "wb") for side in ("src", "tgt")}
        self._lens: dict[str, list[np.ndarray]] = {"src": [], "tgt": []}

    def add(self, src: list[list[int]], tgt: list[list[int]]) -> None:
        for side, seqs in (("src", src), ("tgt", tgt)):
            lens = np.fromiter(map(len, seqs), dtype=np.int64, count=len(seqs))
            ids = np.fromiter(itertools.chain.from_iterable(seqs), dtype=np.int32, count=int(lens.sum()))
            ids.tofile(self._ids[side])
            self._lens[side].append(lens)

    def close(self) -> EncodedSplit:
        """Finish the .npy files (header, then the ids streamed from the part file) and map them."""
        for side, f in self._ids.items():
            f.close()
            lens = np.concatenate(self._lens[side]) if self._lens[side] else np.zeros(0, dtype=np.int64)
            offsets = np.zeros(len(lens) + 1, dtype=np.int64)
            np.cumsum(lens, out=offsets[1:])
            np.save(f"{self.prefix}.{side}_offsets.npy", offsets)
            part = Path(f.name)
            header = {"descr": np.dtype(np.int32).str, "fortran_order": False, "shape": (int(offsets[-1]),)}
            with open(f"{self.prefix}.{side}_ids.npy", "wb") as out, open(part, "rb") as ids:
                np.lib.format.write_array_header_1_0(out, header)
                shutil.copyfileobj(ids, out, 1 << 20)
            part.unlink()
        return EncodedSplit.load(self.prefix)


def tokenizer_key(src_model: bytes, tgt_model: bytes) -> str:
    """Names the cache folder: a hash of both SentencePiece models."""
    return hashlib.sha256(hashlib.sha256(src_model).digest() + hashlib.sha256(tgt_model).digest()).hexdigest()[:16]


def install(work: Path, out: Path, src_model: bytes, tgt_model: bytes, manifest: dict) -> None:
    """Move a finished preparation into `out`. What can fail (moving the cache in, a copy where `out` is
    on another file system; writing files) happens first, into `out/.install-PID/`, with the old
    preparation untouched; then renames inside `out` swap it in, and the manifest, which marks a complete
    one, comes last, written whole (atomic.py)."""
    out.mkdir(parents=True, exist_ok=True)
    stage = out / f".install-{os.getpid()}"
    try:
        stage.mkdir()
        try:
            os.replace(work / "cache", stage / "cache")
        except OSError as err:
            if err.errno != errno.EXDEV:
                raise
            _copy(work / "cache", stage / "cache")  # `out` is a mount point: across file systems
        (stage / "spm.src.model").write_bytes(src_model)
        (stage / "spm.tgt.model").write_bytes(tgt_model)
        (out / MANIFEST).unlink(missing_ok=True)  # the old preparation is replaced from here on
        for name in ("spm.src.model", "spm.tgt.model"):
            os.replace(stage / name, out / name)
        if (out / "cache").exists():  # caches of earlier tokenizers
            os.replace(out / "cache", stage / "old")
        os.replace(stage / "cache", out / "cache")
        write_text_atomic(out / MANIFEST, json.dumps(manifest, indent=2) + "\n")
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _copy(src: Path, dst: Path) -> None:
    """Copy folder `src` to `dst`, stopping at the first error (a full disk), which names the file written."""
    dst.mkdir()
    for path in src.iterdir():
        if path.is_dir():
            _copy(path, dst / path.name)
            continue
        try:
            shutil.copyfile(path, dst / path.name)
        except OSError as err:
            raise OSError(err.errno, err.strerror, str(dst / path.name)) from None


@dataclass
class Prepared:
    """A prepared run folder, loaded."""

    run: Path
    manifest: dict[str, Any]
    cfg: DataConfig
    src_tok: Tokenizer
    tgt_tok: Tokenizer

    @classmethod
    def load(cls, run: str | Path) -> Prepared:
        run = Path(run)
        if not (run / MANIFEST).is_file():
            raise CorpusError(f"{run} is not a prepared run folder (no {MANIFEST}); run `seq2seq preprocess` first")
        try:
            manifest = json.loads((run / MANIFEST).read_text(encoding="utf-8"))
            cfg = from_dict(DataConfig, manifest["data"])
        except (OSError, ValueError, KeyError, TypeError) as err:  # an empty or cut file (a full disk), a bad field
            why = f"{type(err).__name__}: {err}".replace("\n", " ")
            raise CorpusError(f"{run / MANIFEST} cannot be read ({why}): prepare {run} again with "
                              "`seq2seq preprocess --overwrite`") from None  # fmt: skip
        again = (
            f"prepare it again with `seq2seq preprocess --overwrite` and the data settings {MANIFEST} records "
            "(checkpoints are kept; the same corpus and settings give the same tokenizer, so a run resumes)"
        )
        if missing := [name for name in ("spm.src.model", "spm.tgt.model") if not (run / name).is_file()]:
            raise CorpusError(f"{run}: {' and '.join(missing)} missing: {again}")
        src_model, tgt_model = (run / "spm.src.model").read_bytes(), (run / "spm.tgt.model").read_bytes()
        if "tokenizer" in manifest and not (run / "cache" / manifest["tokenizer"]).is_dir():
            raise CorpusError(f"{run}: its encoded splits (cache/{manifest['tokenizer']}) are missing: {again}")
        if "tokenizer" not in manifest:
            raise CorpusError(f"{run}: prepared by an older seq2seq (no tokenizer key in {MANIFEST}); "
                              "run `seq2seq preprocess` again")  # fmt: skip
        if manifest["tokenizer"] != tokenizer_key(src_model, tgt_model):
            raise CorpusError(
                f"{run}: spm.src.model/spm.tgt.model are not the tokenizer that encoded cache/{manifest['tokenizer']}; "
                "run `seq2seq preprocess` again"
            )
        return cls(run, manifest, cfg, Tokenizer(src_model), Tokenizer(tgt_model))

    @property
    def cache(self) -> Path:
        """Where the encoded splits live: `cache/KEY`, KEY a hash of the two SentencePiece models."""
        return self.run / "cache" / self.manifest["tokenizer"]

    @property
    def vocab(self) -> tuple[int, int]:
        """Source and target vocabulary sizes (the model's embedding and output sizes)."""
        return len(self.src_tok), len(self.tgt_tok)

    def split(self, name: str) -> EncodedSplit:
        if name not in self.manifest["splits"]:
            raise CorpusError(f"{self.run}: split {name!r} was not prepared (have {sorted(self.manifest['splits'])})")
        return EncodedSplit.load(self.cache / name)

    def text(self, name: str, limit: int | None = None) -> tuple[list[str], list[str]]:
        """Cleaned source and reference lines of a prepared split (the first `limit` of them)."""
        n = len(self.split(name))
        src, tgt = (iter_lines(self.cache / f"{name}.{side}.txt") for side in ("src", "tgt"))
        lines = list(itertools.islice(src, limit)), list(itertools.islice(tgt, limit))
        for side, got in zip(("src", "tgt"), lines):
            if len(got) != min(n, limit if limit is not None else n):
                raise CorpusError(f"{self.cache / f'{name}.{side}.txt'}: {len(got)} lines where the prepared split "
                                  f"has {n} pairs (a damaged file): prepare the run folder again (seq2seq preprocess "
                                  "--overwrite)")  # fmt: skip
        return lines

    def write_sampled_train(self, epoch: int, alpha: float, seed: int, keep: int | None = None) -> Path:
        """Encode the training text with sampled segmentations (subword regularisation) into on-disk
        arrays, a chunk at a time, for epoch `epoch` of the run of training seed `seed`; returns the prefix
        to load. SentencePiece's samples follow its seed within a process but differ between processes, so
        two runs sample differently; a resumed run reuses its epoch's arrays, recorded as complete in
        `{prefix}.json`, and so goes on with the very segmentation it was interrupted in. Other epochs'
        arrays are deleted, except epoch `keep`'s: the epoch of the run's last checkpoint, which a resume
        after a kill goes on with."""
        prefix, key = self.cache / f"train.sampled{epoch}", {"epoch": epoch, "alpha": alpha, "seed": seed}
        try:
            if json.loads(Path(f"{prefix}.json").read_text(encoding="utf-8")) == key:
                return prefix
        except (OSError, ValueError):  # none yet, or cut short: sampled again
            pass
        kept = {f"train.sampled{keep}"} if keep is not None and keep != epoch else set()
        for old in self.cache.glob("train.sampled*"):  # other epochs' (mapped files stay readable)
            if ".".join(old.name.split(".")[:2]) not in kept:
                old.unlink()
        writer = SplitWriter(prefix)
        for chunk, (src, tgt) in enumerate(read_pairs(self.cache / "train")):  # the seed varies the samples by
            spm.set_random_generator_seed(zlib.crc32(f"{seed}/{epoch}/{chunk}/src".encode()))  # epoch and chunk
            src_ids = self.src_tok.encode(src, alpha)  # (without it each call samples alike within a process)
            spm.set_random_generator_seed(zlib.crc32(f"{seed}/{epoch}/{chunk}/tgt".encode()))
            writer.add(src_ids, self.tgt_tok.encode(tgt, alpha))
        writer.close()
        write_text_atomic(Path(f"{prefix}.json"), json.dumps(key) + "\n")  # last: the arrays are whole
        return prefix
