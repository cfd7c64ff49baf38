"""Streaming translation for `seq2seq translate`: each line's translation is written as soon as it
is done when input arrives slowly (a person typing, a producer process), and lines are batched
for speed when they arrive fast (a pipe full of lines).

A reader thread turns the byte stream into lines on a queue; the translating thread takes the
first waiting line, then whatever follows within `gap` seconds (up to `chunk` lines), translates
that chunk in one call (sorted and batched by the search) and flushes its output lines. Outputs do
not depend on how lines were chunked: the search's result for a sentence does not depend on its
batch (the equivalence tests), so streaming writes what batch mode writes.
"""

from __future__ import annotations

import functools
import os
import queue
import sys
import threading
from pathlib import Path
from typing import IO, TYPE_CHECKING

from ..errors import ConfigError, CorpusError
from ..search_budget import OverBudget, split_parts
from ..text import byte_lines, decode_line, iter_lines

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

    from ..config import DecodeConfig
    from .base import Translating

NBEST_FORMATS = ("tsv", "moses")  # translate --nbest-format: index<TAB>score<TAB>text, or Moses' `|||` lines
CHUNK = 4096  # lines per translate call at most (a pipe full of lines still sorts and batches well)
GAP = 0.005  # seconds to wait for a further line before translating what has arrived
CHUNK_BYTES = 32 << 20  # ... and bytes: a chunk ends at the line that reaches this (lines can be 16 MiB each)
_END = object()


class _Budget:
    """The bytes of lines read but not yet taken: the reader waits while they are `cap` (a line bigger than
    what is left waits for none to be held), so that lines of up to 16 MiB cannot fill memory."""

    def __init__(self, cap: int) -> None:
        self.cap, self.held, self.changed = cap, 0, threading.Condition()

    def take(self, n: int) -> None:
        with self.changed:
            self.changed.wait_for(lambda: self.held == 0 or self.held + n <= self.cap)
            self.held += n

    def give(self, n: int) -> None:
        with self.changed:
            self.held -= n
            self.changed.notify()


def _read(stream: IO[bytes] | int, name: str, lines: queue.Queue, budget: _Budget) -> None:
    """Put each raw line of `stream` on `lines` as it arrives, then _END (or the exception that ended it).
    A file descriptor is read by os.read: no buffered stream, whose lock a reader still waiting for input
    would hold while the interpreter shuts down (a bad line or Ctrl-C then ended in "Fatal Python error:
    _enter_buffered_busy" and SIGABRT instead of exit 2 or 130). A line over text.MAX_LINE_BYTES is an
    error as soon as that much of it has arrived (`byte_lines`)."""
    if isinstance(stream, int):
        read = functools.partial(os.read, stream)
    else:  # a binary stream: read1 returns what has arrived, read would wait for a whole block
        read = getattr(stream, "read1", stream.read)
    try:
        for raw in byte_lines(read, name, 1 << 16):
            budget.take(len(raw))
            lines.put(raw)
        lines.put(_END)
    except BaseException as err:  # noqa: BLE001 -- handed to the translating thread, which raises it
        lines.put(err)


class Stopped(CorpusError):
    """A line refused (bad UTF-8, too long for the memory budget) after the `done` lines before it were translated
    and written."""

    def __init__(self, message: str, done: int) -> None:
        super().__init__(message)
        self.done = done


def file_chunks(
    path: str, chunk: int = 4 * CHUNK, check: Callable[[list[str]], object] | None = None
) -> Iterator[list[str]]:
    """The lines of file `path` in lists of `chunk` or of CHUNK_BYTES (memory bounded by a chunk's lines and
    results, not the file's). A regular file is checked whole first, before any translation: bad UTF-8 or a
    NUL named by line, and with `check(part)` each chunk cut as `in_parts` will cut it (a line too long for the
    memory budget even alone: `Translating.check_memory`). A pipe is read once, a chunk at a time; a bad line ends
    it after the chunk of the lines before it."""
    if Path(path).is_file():
        first = 0
        for lines in _chunked(iter_lines(path), chunk):
            if check is not None:
                in_parts(check, lines, first, path)
            first += len(lines)
    yield from _chunked(iter_lines(path), chunk)


def _chunked(lines: Iterable[str], chunk: int) -> Iterator[list[str]]:
    """`lines` in lists of `chunk` or of CHUNK_BYTES; an error reading them comes after the lines before it."""
    batch: list[str] = []
    size = 0
    try:
        for line in lines:
            batch.append(line)
            size += len(line)
            if len(batch) == chunk or size >= CHUNK_BYTES:
                yield batch
                batch, size = [], 0
    except Exception:
        if batch:
            yield batch
        raise
    if batch:
        yield batch


def in_parts(
    check: Callable[[list[str]], object],
    lines: list[str],
    first: int,
    name: str,
    run: Callable[[list[str], int], object] | None = None,
) -> None:
    """`lines` (the input's lines from index `first`) cut into the parts the memory budget allows (`split_parts`
    with `check(part)`, `Translating.check_memory`: a part whose n-best lists would not fit is halved), and with
    `run` each part run in order, `run(part, its first line's index)`; a line whose search cannot fit even alone
    ends it, once the parts before it have run, as a ConfigError naming `name:line`."""
    try:
        for start, end in split_parts(lambda a, b: check(lines[a:b]), len(lines)):
            if run is not None:
                run(lines[start:end], first + start)
    except OverBudget as err:
        raise ConfigError(f"{name}:{first + (err.index or 0) + 1}: {err.reason}") from None


def standard_input() -> IO[bytes] | int:
    """What `chunks` reads standard input from: its file descriptor (read by os.read: `_read`), or, where sys.stdin
    has none (replaced by a program or a test harness), its binary stream."""
    if sys.stdin is None:  # started with standard input closed (`<&-`)
        raise CorpusError("no standard input (it is closed): pass --input FILE")
    try:
        return sys.stdin.fileno()
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation: no file descriptor
        return sys.stdin.buffer


def chunks(stream: IO[bytes] | int, name: str, chunk: int = CHUNK, gap: float = GAP) -> Iterator[list[str]]:
    """Lists of decoded lines of `stream` (a binary stream, or a file descriptor such as standard input's,
    read without a buffered stream: `_read`): waits for the first, takes what follows within `gap`
    seconds, up to `chunk` lines or CHUNK_BYTES. The reader stays at most two chunks ahead of the translation
    (a queue bounded in lines and bytes: a producer faster than translation, `yes | seq2seq translate ...`,
    waits instead of filling memory)."""
    lines: queue.Queue = queue.Queue(maxsize=2 * chunk)
    budget = _Budget(2 * CHUNK_BYTES)
    threading.Thread(target=_read, args=(stream, name, lines, budget), daemon=True, name="stdin-reader").start()
    number, error = 0, None
    while error is None:
        batch: list[str] = []
        size = 0
        item = lines.get()
        while True:
            if item is _END:
                error = StopIteration()
                break
            try:
                if isinstance(item, BaseException):
                    raise item
                budget.give(len(item))
                size += len(item)
                batch.append(decode_line(item, name, number + 1))  # bad UTF-8: an error naming the line
            except Exception as err:  # noqa: BLE001 -- raised once the lines before it are translated
                error = err
                break
            number += 1
            if len(batch) >= chunk or size >= CHUNK_BYTES:
                break
            try:
                item = lines.get(timeout=gap)
            except queue.Empty:
                break
        if batch:
            yield batch
    if not isinstance(error, StopIteration):
        raise error


def output_lines(
    translator: Translating,
    sentences: list[str],
    cfg: DecodeConfig,
    progress: bool = False,
    first_index: int = 0,
    nbest_format: str = "tsv",
    alignments: bool = False,
) -> list[str]:
    """Output lines as `seq2seq translate` writes them: one per sentence, or with n_best > 1
    `index<TAB>score<TAB>text` per hypothesis (index counted from `first_index`, from 0). With
    nbest_format "moses", every hypothesis (n_best 1 too) as a Moses n-best line:
    `index ||| text ||| LogProb= log-prob ||| score` (an empty input has no hypothesis, so no line).
    With `alignments`, each text is followed by ` ||| ` and its word alignment (`0-0 2-1 1-2`,
    alignment.py); a Moses line ends with it, as a fifth field."""
    if nbest_format not in NBEST_FORMATS:
        raise ConfigError(f"unknown n-best format {nbest_format!r}; choose from {', '.join(NBEST_FORMATS)}")
    if alignments:
        found = translator.translate_aligned(sentences, cfg, progress=progress, first=first_index)
        if nbest_format == "moses":
            return [f"{i} ||| {a.text} ||| LogProb= {a.hypothesis.log_prob:.4f} ||| {a.hypothesis.score:.4f} "
                    f"||| {a.alignment}" for i, hyps in enumerate(found, first_index) for a in hyps]  # fmt: skip
        nbest = [[(f"{a.text} ||| {a.alignment}", a.hypothesis) for a in hyps] for hyps in found]
    else:
        nbest = translator.translate_nbest(sentences, cfg, progress=progress, first=first_index)
    if nbest_format == "moses":
        return [f"{i} ||| {text} ||| LogProb= {h.log_prob:.4f} ||| {h.score:.4f}"
                for i, hyps in enumerate(nbest, first_index) for text, h in hyps]  # fmt: skip
    if cfg.n_best == 1:
        return [hyps[0][0] if hyps else (" ||| " if alignments else "") for hyps in nbest]
    return [f"{i}\t{h.score:.4f}\t{text}" for i, hyps in enumerate(nbest, first_index) for text, h in hyps]


def stream_translate(
    translator: Translating,
    chunks_: Iterator[list[str]],
    write: Callable[[str], object],
    flush: Callable[[], object],
    cfg: DecodeConfig,
    progress: bool = True,
    nbest_format: str = "tsv",
    alignments: bool = False,
    name: str = "<stdin>",
) -> int:
    """Translate each chunk as it comes, in parts its results fit the memory budget in (`in_parts`), and write
    its output lines (`output_lines`: n-best lines keep the input's global line index; `alignments`: ` ||| 0-0 1-1`
    after each text); returns the number of input lines. A line refused (bad UTF-8, a search too large for the
    memory budget; `name:line`) once lines are written is `Stopped`. A progress bar (on a terminal) for parts of
    256 lines and more."""
    done = 0

    def run(lines: list[str], first: int) -> None:
        nonlocal done
        out = output_lines(translator, lines, cfg, progress and len(lines) >= 256, first, nbest_format, alignments)
        write("".join(line + "\n" for line in out))
        flush()
        done = first + len(lines)

    def check(lines: list[str]) -> None:
        translator.check_memory(lines, cfg, alignments)

    try:
        for batch in chunks_:
            in_parts(check, batch, done, name, run)
    except (CorpusError, ConfigError) as err:
        if done:
            raise Stopped(str(err), done) from None
        raise
    return done
