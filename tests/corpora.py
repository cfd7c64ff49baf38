"""Tiny generated corpora for tests: a word-reversal task in `{train,val,test}.{xx,yy}` files."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

WORDS = "red green blue small big old new cat dog bird tree house".split()


def write_corpus(folder: Path, n_train: int = 200, n_val: int = 20, n_test: int = 20, seed: int = 0) -> Path:
    """Write the corpus into `folder`: each yy line is its xx line with the words reversed, upper-cased."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for split, size in (("train", n_train), ("val", n_val), ("test", n_test)):
        src = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 5))) for _ in range(size)]
        (folder / f"{split}.xx").write_text("".join(s + "\n" for s in src), encoding="utf-8")
        tgt = [" ".join(reversed(s.split())).upper() for s in src]
        (folder / f"{split}.yy").write_text("".join(t + "\n" for t in tgt), encoding="utf-8")
    return folder
