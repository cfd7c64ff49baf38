"""Streaming translation: output appears while input is still open; fast input is batched; the
outputs are those of batch mode."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import threading
import time
from typing import TYPE_CHECKING

import pytest

from seq2seq import text
from seq2seq.config import DecodeConfig
from seq2seq.errors import ConfigError, CorpusError
from seq2seq.text import BOM, byte_lines, decode_lines, iter_lines
from seq2seq.translation import stream as stream_module
from seq2seq.translation.stream import chunks, file_chunks, output_lines, stream_translate
from seq2seq.translation.torch_engine import Translator

if TYPE_CHECKING:
    from pathlib import Path

SENTENCES = ["red cat", "big old dog", "", "new house tree", "small bird", "green blue cat dog"]


def test_first_translation_appears_before_stdin_is_closed(run_dir: Path) -> None:
    """The interface our users' tools rely on: one line in, its translation out, stdin still open."""
    cmd = [sys.executable, "-m", "seq2seq", "translate", "--checkpoint", str(run_dir / "best.pt"), "--beam-size", "2"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        expected = Translator.from_checkpoint(run_dir / "best.pt").translate(SENTENCES[:2], beam_size=2)
        for sentence, want in zip(SENTENCES[:2], expected):
            proc.stdin.write(f"{sentence}\n".encode())
            proc.stdin.flush()
            got: list[bytes] = []
            reader = threading.Thread(target=lambda out=got: out.append(proc.stdout.readline()))
            reader.start()
            reader.join(timeout=60)
            assert got == [f"{want}\n".encode()], "no output while stdin was open"
            assert proc.poll() is None
        proc.stdin.close()
        assert proc.wait(timeout=60) == 0
    finally:
        proc.kill()


class SlowStream(io.RawIOBase):
    """A pipe whose writer pauses `pause` seconds before each line."""

    def __init__(self, lines: list[bytes], pause: float) -> None:
        self.lines, self.pause = list(lines), pause

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # noqa: ANN001
        if not self.lines:
            return 0
        time.sleep(self.pause)
        line = self.lines.pop(0)
        buffer[: len(line)] = line
        return len(line)


class EndlessStream(io.RawIOBase):
    """`yes`: the same line (`width` bytes and a newline) forever, counting the lines read."""

    def __init__(self, width: int = 1) -> None:
        self.read_lines, self.line = 0, b"y" * width + b"\n"

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # noqa: ANN001
        self.read_lines += 1
        buffer[: len(self.line)] = self.line
        return len(self.line)


def test_a_producer_faster_than_translation_waits_instead_of_filling_memory() -> None:
    """The reader thread stays at most two chunks (plus the line in hand) ahead of the chunks taken."""
    stream = EndlessStream()
    got = chunks(io.BufferedReader(stream, buffer_size=2), "<yes>", chunk=50)
    assert len(next(got)) == 50  # the translation is "busy" from here on
    time.sleep(0.5)
    assert 100 <= stream.read_lines - 50 <= 102, stream.read_lines
    assert [len(next(got)) for _ in range(3)] == [50, 50, 50]


def test_long_lines_end_chunks_and_hold_the_reader_by_their_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    """With lines of up to 16 MiB, a queue of 2 x chunk lines could hold gigabytes: it is bounded in bytes too."""
    monkeypatch.setattr(stream_module, "CHUNK_BYTES", 10_000)
    big = EndlessStream(width=1000)
    got = chunks(big, "<big>", chunk=50)
    assert len(next(got)) == 10  # a chunk ends at the line that reaches CHUNK_BYTES
    time.sleep(0.5)
    assert 20 <= big.read_lines - 10 <= 21, big.read_lines  # 2 x CHUNK_BYTES queued (+ the line in hand), not 100
    assert [len(next(got)) for _ in range(3)] == [10, 10, 10]


def test_a_file_is_chunked_by_bytes_too(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(stream_module, "CHUNK_BYTES", 100)
    (tmp_path / "f").write_text("".join(f"{i:059d}\n" for i in range(9)), encoding="utf-8")
    assert [len(c) for c in file_chunks(str(tmp_path / "f"), chunk=1000)] == [2, 2, 2, 2, 1]


def test_a_line_over_the_cap_is_refused_once_that_much_of_it_is_held(monkeypatch: pytest.MonkeyPatch) -> None:
    """A line without an end (a file of CR line ends, `cat /dev/zero | tr`) was read whole into memory."""
    monkeypatch.setattr(text, "MAX_LINE_BYTES", 1000)
    reads = []

    def endless(n: int) -> bytes:
        reads.append(n)
        return b"a\nb\n" if len(reads) == 1 else b"x" * 100

    with pytest.raises(CorpusError, match=r"^<in>:3: a line over .*split it into sentences"):
        list(byte_lines(endless, "<in>"))
    assert len(reads) <= 12
    whole = b"ok\n" + b"z" * 1001 + b"\nafter\n"  # one block holding the whole long line
    with pytest.raises(CorpusError, match=r"^<f>:2: a line over"):
        list(byte_lines(io.BytesIO(whole).read, "<f>"))
    assert list(byte_lines(io.BytesIO(b"z" * 1000 + b"\n").read, "<f>")) == [b"z" * 1000]  # at the cap: fine


def test_the_line_reader_splits_files_alike_whatever_its_block_size(tmp_path: Path) -> None:
    data = BOM + "Grüße\r\n\nzwei  Wörter\n\r\n".encode() + b"x" * 50 + "\nohne Zeilenende é".encode()
    (tmp_path / "f").write_bytes(data)
    want = decode_lines(data, "f")
    assert want[0] == "Grüße" and want[-1] == "ohne Zeilenende é" and len(want) == 6
    for size in (1, 2, 3, 7, 64, 1 << 20):
        assert list(iter_lines(tmp_path / "f", size)) == want, size


def test_the_reader_waits_while_its_bytes_are_held() -> None:
    budget = stream_module._Budget(100)
    budget.take(60)
    second = threading.Thread(target=budget.take, args=(60,), daemon=True)
    second.start()
    second.join(0.3)
    assert second.is_alive()  # 120 > 100: waits for the first to be taken off
    budget.give(60)
    second.join(5)
    assert not second.is_alive() and budget.held == 60
    budget.give(60)
    budget.take(500)  # more than the cap, with nothing held: goes on
    assert budget.held == 500


def test_slow_input_is_translated_line_by_line_and_fast_input_in_chunks() -> None:
    data = [f"line {i}\n".encode() for i in range(6)]
    slow = list(chunks(io.BufferedReader(SlowStream(data, pause=0.05)), "<slow>", gap=0.005))
    assert [len(c) for c in slow] == [1] * 6
    fast = list(chunks(io.BufferedReader(io.BytesIO(b"".join(data * 500))), "<fast>", chunk=1000))
    assert [len(c) for c in fast] == [1000, 1000, 1000]
    assert [line for c in fast for line in c][:7] == [f"line {i}" for i in range(6)] + ["line 0"]


@pytest.mark.parametrize("beam_size,n_best", [(1, 1), (3, 1), (3, 2)])
def test_streamed_output_equals_batch_mode_whatever_the_chunking(run_dir: Path, beam_size: int, n_best: int) -> None:
    translator = Translator.from_checkpoint(run_dir / "best.pt")
    cfg = DecodeConfig(beam_size=beam_size, n_best=n_best, batch_size=4)
    batch = output_lines(translator, SENTENCES * 3, cfg)
    for size in (1, 2, 5, 100):
        pieces = [SENTENCES * 3][0]
        out: list[str] = []
        n = stream_translate(
            translator, iter(pieces[i : i + size] for i in range(0, len(pieces), size)), out.append, lambda: None, cfg
        )
        assert n == len(pieces)
        assert "".join(out).splitlines() == batch


def test_bad_utf8_on_stdin_names_the_line_after_writing_the_lines_before_it(run_dir: Path) -> None:
    cmd = [sys.executable, "-m", "seq2seq", "translate", "--checkpoint", str(run_dir / "best.pt"), "--beam-size", "1"]
    proc = subprocess.run(cmd, input=b"red cat\nbig dog\nbad \xff byte\n", capture_output=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.decode().strip().splitlines()[-1] == (
        "seq2seq translate: error: <stdin>:3: invalid UTF-8 (byte 0xff)"
    )
    assert len(proc.stdout.decode().splitlines()) == 2  # work already done is kept
    with pytest.raises(CorpusError, match="<x>:2: NUL byte"):
        list(chunks(io.BufferedReader(io.BytesIO(b"ok\nno\x00\n")), "<x>"))


@pytest.mark.parametrize("end", ["bad line", "ctrl-c"])
def test_stdin_still_open_ends_cleanly_on_a_bad_line_or_ctrl_c(run_dir: Path, end: str) -> None:
    """The reader thread waits for more input when the translation stops: the process still exits with
    its status (2: the bad line, 130: Ctrl-C), not with Python's fatal error at shutdown (SIGABRT)."""
    cmd = [sys.executable, "-m", "seq2seq", "translate", "--checkpoint", str(run_dir / "best.pt"), "--beam-size", "1"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        proc.stdin.write(b"red cat\n")
        proc.stdin.flush()
        assert proc.stdout.readline()  # translating, stdin open
        if end == "bad line":
            proc.stdin.write(b"bad \xff byte\n")
            proc.stdin.flush()
        else:
            proc.send_signal(signal.SIGINT)
        status = proc.wait(timeout=60)  # stdin is still open
        err = proc.stderr.read().decode()
        assert status == (2 if end == "bad line" else 130), err
        assert "Fatal Python error" not in err and len(err.strip().splitlines()) == 1, err
    finally:
        proc.kill()


def test_lines_of_a_file_descriptor_arrive_whole_whatever_the_reads(tmp_path: Path) -> None:
    data = b"a\n" + b"x" * 200_000 + b"\n\nlast without newline"
    (tmp_path / "in").write_bytes(data)
    fd = os.open(tmp_path / "in", os.O_RDONLY)
    try:
        got = [line for c in chunks(fd, "<fd>") for line in c]
    finally:
        os.close(fd)
    assert got == ["a", "x" * 200_000, "", "last without newline"]


def test_input_from_a_pipe_is_read_like_a_file(run_dir: Path, tmp_path: Path) -> None:
    """`--input <(cmd)` and `--input /dev/stdin` name a FIFO or a character device: it said "no such file"."""
    from seq2seq.cli import main

    fifo, out = tmp_path / "pipe", tmp_path / "out.txt"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_text("red cat\nbig old dog\n"), daemon=True)
    writer.start()
    args = ["translate", "--checkpoint", str(run_dir / "best.pt"), "--beam-size", "1", "-q"]
    assert main([*args, "--input", str(fifo), "--output", str(out)]) == 0
    writer.join(timeout=10)
    assert len(out.read_text().splitlines()) == 2
    assert main([*args, "--input", str(tmp_path / "missing.txt"), "--output", str(out)]) == 2  # still one line


def test_closed_standard_input_is_one_line(run_dir: Path) -> None:
    cmd = [sys.executable, "-m", "seq2seq", "translate", "--checkpoint", str(run_dir / "best.pt"), "--beam-size", "1"]
    proc = subprocess.run(cmd, capture_output=True, timeout=120, preexec_fn=lambda: os.close(0))  # `<&-`
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.decode().strip().splitlines() == [
        "seq2seq translate: error: no standard input (it is closed): pass --input FILE"
    ]


def test_a_file_is_translated_a_chunk_at_a_time_after_a_check_of_the_whole(tmp_path: Path) -> None:
    """`translate --input` held the whole file and every result in memory (about 6 kB a line with alignments);
    a bad line anywhere still stops it before the first translation."""
    from seq2seq.translation.stream import file_chunks

    good = tmp_path / "good.txt"
    good.write_text("".join(f"line {i}\n" for i in range(7)))
    assert [len(c) for c in file_chunks(str(good), chunk=3)] == [3, 3, 1]
    assert [x for c in file_chunks(str(good), chunk=3) for x in c] == [f"line {i}" for i in range(7)]
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"".join(f"line {i}\n".encode() for i in range(6)) + b"bad \xff\n")
    with pytest.raises(CorpusError, match="bad.txt:7: invalid UTF-8"):
        next(file_chunks(str(bad), chunk=3))


def test_a_huge_line_is_cut_to_what_max_src_len_keeps_before_it_is_encoded(run_dir: Path) -> None:
    """A 25 MB line with --max-src-len 10 peaked at 900 MB (encoded whole, then truncated); the pieces kept
    are those of the whole line."""
    tiny = Translator.from_checkpoint(run_dir / "best.pt")
    seen: list[int] = []
    encode = tiny.src_tok.encode

    def recording(texts, alpha=0.0):
        seen.extend(len(t) for t in texts)
        return encode(texts, alpha)

    tiny.src_tok.encode = recording  # type: ignore[method-assign]
    words = "red cat big old dog new house tree small bird ".split()
    huge = " ".join(words[i % len(words)] for i in range(200_000))
    cfg = DecodeConfig(beam_size=1, max_src_len=10)
    assert tiny.translate([huge], cfg) == tiny.translate([" ".join(huge.split()[:40])], cfg)
    assert max(seen) <= 2 * tiny.src_tok.longest_piece * 10 < len(huge) // 1000
    assert encode([huge])[0][:10] == encode([" ".join(huge.split()[:40])])[0][:10]  # the same first pieces


def test_a_bad_line_in_a_pipe_comes_after_the_lines_before_it(tmp_path: Path) -> None:
    """`--input <(...)`: a bad line lost the lines before it in its chunk (standard input kept them)."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_bytes(b"red cat\nbig dog\nbad \xff\nsun\n"), daemon=True)
    writer.start()
    got = file_chunks(str(fifo))
    assert next(got) == ["red cat", "big dog"]
    with pytest.raises(CorpusError, match=r"pipe:3: invalid UTF-8"):
        next(got)
    writer.join(timeout=10)


def test_the_truncation_warning_names_the_input_line(run_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Streamed a line at a time, lines 3 and 4 over max_src_len each warned "(first: sentence 1)"."""
    translator = Translator.from_checkpoint(run_dir / "best.pt")
    lines = [["red cat"], ["big dog"], ["red cat big old dog"], ["new house tree small bird"]]
    cfg = DecodeConfig(beam_size=1, max_src_len=3)
    with caplog.at_level("WARNING", logger="seq2seq"):
        stream_translate(translator, iter(lines), lambda s: None, lambda: None, cfg)
    assert [r.getMessage().rsplit("(", 1)[1] for r in caplog.records] == ["first: sentence 3)", "first: sentence 4)"]


def _budget_between(translator: Translator, fits: str, too_long: str, cfg: DecodeConfig) -> DecodeConfig:
    """`cfg` with a memory budget that a search of `fits` stays within and one of `too_long` does not."""
    from dataclasses import replace

    from seq2seq.search_budget import OverBudget

    for gb in (10.0 ** (-e / 8) for e in range(8, 72)):
        tight = replace(cfg, memory_budget_gb=gb)
        try:
            translator.check_memory([too_long], tight)
        except OverBudget:
            translator.check_memory([fits], tight)
            return tight
    raise AssertionError("no budget between them")


LONG = "red cat big old dog new house tree small bird green blue cat dog"


def test_a_line_too_long_for_the_budget_is_named_after_the_lines_before_it(run_dir: Path) -> None:
    """The memory refusal came per chunk, before any of its lines, naming no line ("about 0.0 GB ... over the
    budget of 0.0 GB"): now the lines before it are translated and written, then `name:line`, in kB/MB."""
    from seq2seq.translation.stream import Stopped

    translator = Translator.from_checkpoint(run_dir / "best.pt")
    cfg = _budget_between(translator, "red cat", LONG, DecodeConfig(beam_size=8, batch_size=1, max_len_a=20.0))
    out: list[str] = []
    with pytest.raises(Stopped) as err:
        stream_translate(translator, iter([["red cat"], ["big dog", LONG, "sun"]]), out.append, lambda: None, cfg,
                         name="in.txt")  # fmt: skip
    assert err.value.done == 2 and "".join(out).splitlines() == translator.translate(["red cat", "big dog"], cfg)
    message = str(err.value)
    assert message.startswith("in.txt:3: this search would need about ") and " 0.0 " not in message
    assert f"over the budget of {cfg.memory_budget_gb * 1e6:.1f} MB" in message or "kB" in message
    with pytest.raises(ConfigError, match=r"^sentence 2: this search would need"):  # the library names it too
        translator.translate_nbest(["red cat", LONG], cfg)


def test_a_file_line_too_long_for_the_budget_is_refused_before_any_work(run_dir: Path, tmp_path: Path, capsys,
                                                                          monkeypatch) -> None:  # fmt: skip
    """A regular file's chunks are checked in its first pass: the refusal comes before the first translation. From
    standard input, the lines before it are translated, and kept in --output."""
    from seq2seq.cli import main

    translator = Translator.from_checkpoint(run_dir / "best.pt")
    cfg = _budget_between(translator, "red cat", LONG, DecodeConfig(beam_size=8, batch_size=1, max_len_a=20.0))
    path, out = tmp_path / "in.txt", tmp_path / "out.txt"
    path.write_text(f"red cat\n{LONG}\nsun\n")
    flags = ["translate", "--checkpoint", str(run_dir / "best.pt"), "--beam-size", "8", "--batch-size", "1",
             "--max-len-a", "20", "--memory-budget-gb", repr(cfg.memory_budget_gb), "--quiet"]  # fmt: skip
    assert main([*flags, "--input", str(path)]) == 2
    printed = capsys.readouterr()
    assert printed.out == "" and printed.err.startswith(f"seq2seq translate: error: {path}:2: this search would need")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(path.read_bytes())))
    assert main([*flags, "--output", str(out)]) == 2
    assert capsys.readouterr().err.strip().endswith(f"; {out} holds the translations of line 1")
    assert out.read_text().splitlines() == translator.translate(["red cat"], cfg)


def _least_budget(translator: Translator, line: str, cfg: DecodeConfig) -> DecodeConfig:
    """`cfg` with the smallest memory budget (to the byte) that a search of `line` alone stays within."""
    from dataclasses import replace

    from seq2seq.search_budget import OverBudget

    low, high = 1, 10**9
    while high - low > 1:
        middle = (low + high) // 2
        try:
            translator.check_memory([line], replace(cfg, memory_budget_gb=middle / 1e9))
            high = middle
        except OverBudget:
            low = middle
    return replace(cfg, memory_budget_gb=high / 1e9)


def test_a_line_that_fits_alone_is_translated_however_many_lines_share_its_chunk(
    run_dir: Path, tmp_path: Path, capsys
) -> None:
    """The longest line was refused whenever its search plus the n-best lists of every line of the chunk were over
    the budget (the lists themselves under half of it): `translate` stopped at it ("in.txt:21: this search would need
    ...") though it fits alone, where it translated before the lists counted. Now the chunk is halved instead."""
    from seq2seq.cli import main
    from seq2seq.search_budget import OverBudget

    translator = Translator.from_checkpoint(run_dir / "best.pt")
    lines = ["red cat"] * 20 + [LONG]
    cfg = _least_budget(translator, LONG, DecodeConfig(beam_size=8, max_len_a=20.0))
    with pytest.raises(OverBudget, match="^the search of 21 sentences and their n-best lists") as err:
        translator.check_memory(lines, cfg)
    assert err.value.index is None
    expected = translator.translate(lines, DecodeConfig(beam_size=8, max_len_a=20.0))
    out: list[str] = []
    assert stream_translate(translator, iter([lines]), out.append, lambda: None, cfg, name="in.txt") == len(lines)
    assert "".join(out).splitlines() == expected
    path, written = tmp_path / "in.txt", tmp_path / "out.txt"
    path.write_text("".join(line + "\n" for line in lines))
    assert main(["translate", "--checkpoint", str(run_dir / "best.pt"), "--beam-size", "8", "--max-len-a", "20",
                 "--memory-budget-gb", repr(cfg.memory_budget_gb), "--input", str(path), "--output", str(written),
                 "--quiet"]) == 0  # fmt: skip
    assert capsys.readouterr().err == "" and written.read_text().splitlines() == expected


def test_the_truncation_warning_comes_before_a_memory_refusal(run_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The "longer than max_src_len" warning came after the search, so a search the memory check refused lost it."""
    from seq2seq.search_budget import OverBudget

    translator = Translator.from_checkpoint(run_dir / "best.pt")
    tight = DecodeConfig(beam_size=32, max_len_b=900, max_src_len=3, memory_budget_gb=1e-6)
    with caplog.at_level("WARNING", logger="seq2seq"), pytest.raises(OverBudget, match="^sentence 2: "):
        translator.translate_nbest(["", LONG], tight)
    assert [r.getMessage() for r in caplog.records] == [
        "1 of 2 sentences are longer than max_src_len=3 pieces: translated truncated (first: sentence 2)"
    ]


def test_characters_that_make_no_piece_do_not_fill_the_cut_of_a_long_line(run_dir: Path) -> None:
    """3,000 zero-width spaces before the words filled the cut that max_src_len sets (it counted them as
    characters), and the line translated to ''."""
    tiny = Translator.from_checkpoint(run_dir / "best.pt")
    cfg = DecodeConfig(beam_size=1, max_src_len=3)
    assert 3000 > 2 * tiny.src_tok.longest_piece * cfg.max_src_len
    for blank in ("\u200b" * 3000, "\ufeff\x01" * 1500, "\u200b " * 1500):
        assert tiny.translate([blank + "red cat big old dog"], cfg) == tiny.translate(["red cat big old dog"], cfg)
        roomy = DecodeConfig(beam_size=1, max_src_len=30)  # the words within the cut: none of them cut off
        assert tiny.translate([blank + "red cat big old dog"], roomy) == tiny.translate(["red cat big old dog"], roomy)
