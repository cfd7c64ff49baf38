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


def translate_in_a_fresh_process(model: Path, folder: Path, lines: list[str], beam_size: int) -> tuple[list[str], bool]:
    """`seq2seq translate --checkpoint model` over `lines` in a new Python process: its output lines, and
    whether that process imported torch (an exported model must translate without it)."""
    import subprocess
    import sys

    (folder / "in.txt").write_text("".join(s + "\n" for s in lines), encoding="utf-8")
    code = (
        "import sys; from seq2seq.cli import main; "
        f"sys.argv = ['seq2seq', 'translate', '--checkpoint', {str(model)!r}, '--input', "
        f"{str(folder / 'in.txt')!r}, '--output', {str(folder / 'out.txt')!r}, '--beam-size', '{beam_size}']\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "print('torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return (folder / "out.txt").read_text(encoding="utf-8").splitlines(), done.stdout.strip() == "True"
