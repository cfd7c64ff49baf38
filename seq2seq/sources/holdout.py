"""A val split held out of a dataset's train split by `seq2seq download --val-size N [--val-seed S]`: the
settings (`HoldOut`), the refusals before anything is written (`check_hold_out`), and the split itself
once the train files are written whole (`split_off`).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, NamedTuple

from ..errors import CorpusError

if TYPE_CHECKING:
    from pathlib import Path


class HoldOut(NamedTuple):
    """A val split held out of the train split: `size` pairs picked by `random.Random(seed).sample`."""

    size: int = 0  # 0: none
    seed: int | None = None  # None: 1234; given without a size, a ConfigError (it would pick nothing)

    @property
    def picks(self) -> int:
        """The seed of the pick (1234 where none was given)."""
        return 1234 if self.seed is None else self.seed


def check_hold_out(dataset: str, splits: dict, names: dict[str, str], size: int) -> None:
    """Refuse a --val-size that cannot be held out, before anything is written (the line count of a
    streamed split is known only once it is read: `split_off` checks it then)."""
    train = next((name for name, split in names.items() if split == "train"), None)
    if size < 0:
        raise CorpusError(f"--val-size must be >= 0 (0: hold nothing out), got {size}")
    if "val" in names.values():
        given = next(name for name, split in names.items() if split == "val")
        raise CorpusError(f"--val-size {size}: {dataset} has a val split already ({given!r}); --val-size holds "
                          "one out of the train split of a dataset that has none")  # fmt: skip
    if train is None:
        raise CorpusError(f"--val-size {size}: {dataset} has no train split to hold pairs out of "
                          f"(splits: {', '.join(sorted(splits))})")  # fmt: skip
    rows = getattr(splits[train], "num_rows", None)
    if rows is not None and size >= rows:
        raise CorpusError(_too_many(size, rows))


def _too_many(size: int, lines: int) -> str:
    return f"--val-size {size}: the train split has {lines} lines; hold out fewer, so that training keeps some"


def split_off(whole: tuple[Path, ...], out: Path, langs: tuple[str, str], hold_out: HoldOut, lines: int) -> None:
    """Split the `whole` train files (then deleted) into train.{lang} and val.{lang}: the lines
    numbered by `random.Random(seed).sample(range(lines), size)` go to val, in their order."""
    import random

    try:
        if hold_out.size >= lines:
            raise CorpusError(_too_many(hold_out.size, lines))
        picked = set(random.Random(hold_out.picks).sample(range(lines), hold_out.size))
        for path, lang in zip(whole, langs):
            parts = [out / f"{split}.{lang}.part" for split in ("train", "val")]
            with (
                open(path, encoding="utf-8", newline="\n") as f,
                open(parts[0], "w", encoding="utf-8", newline="\n") as train,
                open(parts[1], "w", encoding="utf-8", newline="\n") as val,
            ):
                for i, line in enumerate(f):
                    (val if i in picked else train).write(line)
            for part, split in zip(parts, ("train", "val")):
                os.replace(part, out / f"{split}.{lang}")
    finally:
        for path in whole:
            path.unlink(missing_ok=True)
        for part in out.glob("*.part"):
            part.unlink(missing_ok=True)
