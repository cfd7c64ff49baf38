"""Parallel text: the `{split}.{lang}` files of a corpus folder read as line pairs, cleaned, and the
filters that decide which training pairs are kept. Streamed: nothing holds a whole split in memory."""

from __future__ import annotations

import hashlib
import itertools
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import CorpusError
from .text import clean, iter_lines

if TYPE_CHECKING:
    from collections.abc import Iterator

    from .config import DataConfig

CHUNK = 50_000  # pairs handled at a time


def split_paths(data_dir: str | Path, split: str, src: str, tgt: str) -> tuple[Path, Path]:
    """The `{split}.{lang}` files of a corpus folder."""
    return Path(data_dir) / f"{split}.{src}", Path(data_dir) / f"{split}.{tgt}"


def iter_parallel(src_path: str | Path, tgt_path: str | Path) -> Iterator[tuple[str, str]]:
    """Line pairs of two aligned files, streamed; different line counts or empty files are errors."""
    src_lines, tgt_lines = iter_lines(src_path), iter_lines(tgt_path)
    n = 0
    for n, (s, t) in enumerate(itertools.zip_longest(src_lines, tgt_lines), 1):
        if s is None or t is None:
            n_src = n - 1 + (s is not None) + sum(1 for _ in src_lines)
            n_tgt = n - 1 + (t is not None) + sum(1 for _ in tgt_lines)
            raise CorpusError(f"misaligned corpus: {src_path} has {n_src} lines but {tgt_path} has {n_tgt}")
        yield s, t
    if n == 0:
        raise CorpusError(f"{src_path} and {tgt_path} are empty")


class TrainFilter:
    """The length, ratio and duplicate filters of training pairs, applied a chunk at a time, with counts."""

    def __init__(self, cfg: DataConfig) -> None:
        self.cfg = cfg
        self.removed = {"too_short": 0, "too_long": 0, "length_ratio": 0, "duplicate": 0}
        self.seen: set[bytes] = set()  # 8-byte hashes of kept pairs (only with cfg.dedup)

    def keep(self, src: list[list[int]], tgt: list[list[int]], src_text: list[str], tgt_text: list[str]) -> list[int]:
        cfg, removed, keep = self.cfg, self.removed, []
        for i, (s, t) in enumerate(zip(src, tgt)):
            ls, lt = len(s), len(t)
            if min(ls, lt) < cfg.min_len:
                removed["too_short"] += 1
            elif max(ls, lt) > cfg.max_len:
                removed["too_long"] += 1
            elif max(ls, lt) / max(1, min(ls, lt)) > cfg.max_len_ratio:
                removed["length_ratio"] += 1
            elif cfg.dedup and (key := pair_hash(src_text[i], tgt_text[i])) in self.seen:
                removed["duplicate"] += 1
            else:
                if cfg.dedup:
                    self.seen.add(key)
                keep.append(i)
        return keep


def pair_hash(src: str, tgt: str) -> bytes:
    return hashlib.blake2b(f"{src}\n{tgt}".encode(), digest_size=8).digest()  # cleaned text has no "\n"


def clean_split(data_dir: Path, split: str, src: str, tgt: str, dest: Path) -> tuple[int, int]:
    """Stream a split through `clean` into `dest.{src,tgt}.txt`; returns (pairs kept, empty pairs dropped)."""
    kept = empty = 0
    with (
        open(f"{dest}.src.txt", "w", encoding="utf-8", newline="\n") as fs,
        open(f"{dest}.tgt.txt", "w", encoding="utf-8", newline="\n") as ft,
    ):
        for s, t in iter_parallel(*split_paths(data_dir, split, src, tgt)):
            s, t = clean(s), clean(t)
            if s and t:
                fs.write(s + "\n")
                ft.write(t + "\n")
                kept += 1
            else:
                empty += 1
    return kept, empty


def read_pairs(prefix: Path, chunk: int | None = None) -> Iterator[tuple[list[str], list[str]]]:
    """The cleaned text `prefix.{src,tgt}.txt` in chunks of `chunk` (default CHUNK) pairs."""
    chunk = chunk or CHUNK
    src, tgt = iter_lines(f"{prefix}.src.txt"), iter_lines(f"{prefix}.tgt.txt")
    while s := list(itertools.islice(src, chunk)):
        yield s, list(itertools.islice(tgt, chunk))


def write_text(prefix: Path, src: list[str], tgt: list[str], mode: str = "a") -> None:
    for side, lines in (("src", src), ("tgt", tgt)):
        with open(f"{prefix}.{side}.txt", mode, encoding="utf-8", newline="\n") as f:
            f.write("".join(x + "\n" for x in lines))
