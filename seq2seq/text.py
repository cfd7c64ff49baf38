"""Text: the one strict UTF-8 line reader (files and streams, with one-line errors naming the line) and
the cleaning of a line (Unicode NFC, single spaces). The bottom floor: it imports nothing of seq2seq
but its error types, and never torch.
"""

from __future__ import annotations

import unicodedata
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import CorpusError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

BOM = b"\xef\xbb\xbf"  # UTF-8 byte order mark, dropped from the start of a file or stream (decode_line)
MAX_LINE_BYTES = 16 << 20  # a longer line is refused as it is read: no sentence is that long (a CR-only file is)


def read_lines(path: str | Path) -> list[str]:
    """Lines of a UTF-8 text file (\\n or \\r\\n endings); bad bytes are errors naming the line."""
    return list(iter_lines(path))


def iter_lines(path: str | Path, block_bytes: int = 1 << 20) -> Iterator[str]:
    """The lines of a UTF-8 file, read a block at a time (any file size); a missing file is a CorpusError.
    A pipe (`--input <(...)`, /dev/stdin) is read like a file."""
    path = Path(path)
    if path.is_dir():
        raise CorpusError(f"{path}: is a folder, not a text file")
    if not path.exists():
        raise CorpusError(f"{path}: no such file")
    with open(path, "rb") as f:
        for number, raw in enumerate(byte_lines(f.read, str(path), block_bytes), 1):
            yield decode_line(raw, str(path), number)


def read_capped(path: str | Path, limit: int, error: type[Exception], kind: str, flag: str = "") -> bytes:
    """The bytes of a file that is small by nature (a settings file, a scores file): at most limit + 1 bytes are
    read, so a large file, /dev/zero or an endless pipe is one `error` naming it (`flag PATH: ...`), never a
    MemoryError. An unreadable file is the OSError of `open` (the caller names it)."""
    with open(path, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise error(f"{flag + ' ' if flag else ''}{path}: larger than {limit >> 10:,} KiB: not a {kind}")
    return data


def byte_lines(read: Callable[[int], bytes], name: str, size: int = 1 << 20) -> Iterator[bytes]:
    """The raw lines (without "\\n") that calls of `read(size)` return, each yielded as soon as its end has
    been read (`read` may return fewer bytes: os.read on a pipe gives what has arrived; b"" ends). A line
    over `MAX_LINE_BYTES` is a CorpusError naming it as soon as that many bytes of it are held: memory stays
    bounded by the cap, not by the input (a file without a line end is not read whole)."""
    pending, number = bytearray(), 0  # the start of a line whose end has not been read yet
    while data := read(size):
        if b"\n" not in data:
            pending += data
            if len(pending) > MAX_LINE_BYTES:
                raise _too_long(name, number + 1)
            continue
        *lines, rest = (bytes(pending) + data if pending else data).split(b"\n")
        for line in lines:
            number += 1
            if len(line) > MAX_LINE_BYTES:
                raise _too_long(name, number)
            yield line
        pending = bytearray(rest)
    if pending:
        yield bytes(pending)


def _too_long(name: str, number: int) -> CorpusError:
    return CorpusError(f"{name}:{number}: a line over {MAX_LINE_BYTES >> 20} MiB (no sentence is that long: "
                       f"a file whose lines end in CR alone?); split it into sentences")  # fmt: skip


def decode_lines(data: bytes, name: str) -> list[str]:
    """Split UTF-8 bytes (e.g. standard input) into lines, with the rules of `iter_lines`."""
    raw = data.split(b"\n")
    if raw[-1] == b"":
        raw.pop()
    return [decode_line(line, name, number) for number, line in enumerate(raw, 1)]


def decode_line(raw: bytes, name: str, number: int) -> str:
    """One line without its line ending (\n or \r\n); a NUL byte, invalid UTF-8 or a carriage return inside
    the first line (a file with CR-only line endings) is an error naming `name:number`.
    Line 1 loses a leading UTF-8 byte order mark (U+FEFF, as Windows editors write): it is no text."""
    if number == 1 and raw.startswith(BOM):
        raw = raw[len(BOM) :]
    if b"\x00" in raw:
        raise CorpusError(f"{name}:{number}: NUL byte (is this a binary file?)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise CorpusError(f"{name}:{number}: invalid UTF-8 (byte 0x{raw[err.start]:02x})") from None
    text = text.removesuffix("\n").removesuffix("\r")
    # clean() would make a CR-only file one sentence; a stray CR further on (web-crawled corpora hold some)
    # is whitespace to clean(), as it always was
    if number == 1 and "\r" in text.rstrip("\r"):  # \r\r\n (CRLF converted twice) ends a line, as before
        raise CorpusError(f"{name}:{number}: carriage return inside a line: CR-only line endings? (convert them "
                          "to \\n, e.g. `tr '\\r' '\\n'`)")  # fmt: skip
    return text


def clean(text: str) -> str:
    """Unicode NFC and single spaces between words."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def has_content(text: str) -> bool:
    """Whether `text` holds a character other than control, format and separator ones (NUL, a soft hyphen,
    a zero-width space, a BOM, a word joiner: a line of only those is blank to a translator)."""
    return any(unicodedata.category(c)[0] not in "CZ" for c in text)
