"""Whether two independent parts of a training update gain from running side by side, a core each (docs/speed.md).

    python -m seq2seq.devtools.core_overlap [--batch 170] [--src-len 14] [--tgt-len 13] [--vocab 4000] \\
        [--rounds 15] [--repeats 10]

Issue 27's idea "the encoder and decoder overlapped across the two cores", at its upper bound: each pair of
parts of an fp32 update of the default model (`ModelConfig`'s sizes) that need nothing of each other is timed
one after the other on 2 threads (as training runs them) and side by side, in two Python threads of 1 thread
each (torch's kernels let go of the GIL). The pairs:

* `encoder_directions`: the encoder's forward-reading and backward-reading LSTMs (emb -> enc_hidden), the
  forward and backward pass of each;
* `decoder_and_output_weight_grad`: the decoder LSTM's forward and backward pass beside the output layer's
  weight-gradient product, (vocab, N) @ (N, emb) for the batch's N = batch x tgt-len target positions.

Prints one JSON object: per pair, the median over `--rounds` of the mean of `--repeats` runs, in ms, one
after the other, side by side and one after the other on 1 thread, and `side_by_side_saves` (the share of
the one-after-the-other time saved; negative: slower). A real update would also need the backward of each
pair run side by side (torch's CPU autograd runs one node at a time): this is the most it could win.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import torch

from ..config import ModelConfig
from ..machine.hardware import cpu_summary

Part = Callable[[], None]


def lstm_pass(lstm: torch.nn.LSTM, x: torch.Tensor) -> Part:
    """The forward and backward pass of `lstm` over `x` (a fresh leaf each time: its gradient is made too)."""

    def run() -> None:
        out, _ = lstm(x.detach().requires_grad_(True))
        out.sum().backward()

    return run


def product(a: torch.Tensor, b: torch.Tensor) -> Part:
    def run() -> None:
        torch.mm(a, b)

    return run


def one_after_the_other(parts: tuple[Part, Part], threads: int) -> None:
    """`parts` in turn on `threads` threads; the process's thread count as it was after."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for part in parts:
            part()
    finally:
        torch.set_num_threads(before)


def side_by_side(parts: tuple[Part, Part]) -> None:
    """Each part in its own Python thread, on 1 thread of its own; returns when both have finished, with the
    process's thread count as it was (torch's count is the process's, not a thread's). An error in either is
    raised here."""
    errors: list[BaseException] = []
    threads = torch.get_num_threads()

    def work(part: Part) -> None:
        try:
            torch.set_num_threads(1)  # this thread's kernels: one core
            part()
        except BaseException as err:  # noqa: BLE001 - handed to the caller
            errors.append(err)

    workers = [threading.Thread(target=work, args=(part,)) for part in parts]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    torch.set_num_threads(threads)
    if errors:
        raise errors[0]


def pairs(batch: int, src_len: int, tgt_len: int, vocab: int) -> dict[str, tuple[Part, Part]]:
    cfg = ModelConfig()
    torch.manual_seed(0)
    src = torch.randn(batch, src_len, cfg.emb_size)
    forward_rnn, backward_rnn = (torch.nn.LSTM(cfg.emb_size, cfg.enc_hidden, batch_first=True) for _ in range(2))
    decoder = torch.nn.LSTM(cfg.emb_size, cfg.dec_hidden, batch_first=True)
    tgt = torch.randn(batch, tgt_len, cfg.emb_size)
    grad_t, att = torch.randn(vocab, batch * tgt_len), torch.randn(batch * tgt_len, cfg.emb_size)
    return {
        "encoder_directions": (lstm_pass(forward_rnn, src), lstm_pass(backward_rnn, src)),
        "decoder_and_output_weight_grad": (lstm_pass(decoder, tgt), product(grad_t, att)),
    }


def timed(run: Callable[[], None], repeats: int) -> float:
    """The mean time of `repeats` runs, in ms."""
    start = time.perf_counter()
    for _ in range(repeats):
        run()
    return (time.perf_counter() - start) / repeats * 1e3


def measure(parts: tuple[Part, Part], rounds: int, repeats: int) -> dict[str, float]:
    """The three ways of running `parts`, taking turns within each round (a machine's swings hit all three)."""
    ways: dict[str, Callable[[], None]] = {
        "one_after_the_other_ms": lambda: one_after_the_other(parts, 2),
        "side_by_side_ms": lambda: side_by_side(parts),
        "one_thread_ms": lambda: one_after_the_other(parts, 1),
    }
    for run in ways.values():  # warm-up: kernels made, threads started
        for _ in range(3):
            run()
    per_round = [{name: timed(run, repeats) for name, run in ways.items()} for _ in range(rounds)]  # interleaved
    times = {name: round(statistics.median(r[name] for r in per_round), 3) for name in ways}
    saved = 1 - times["side_by_side_ms"] / times["one_after_the_other_ms"]
    return {**times, "side_by_side_saves": round(saved, 4)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m seq2seq.devtools.core_overlap", description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=170, help="sentences a batch (≈ 2,230 target tokens / 13)")
    ap.add_argument("--src-len", type=int, default=14)
    ap.add_argument("--tgt-len", type=int, default=13)
    ap.add_argument("--vocab", type=int, default=4000)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args(argv)
    sizes = (args.batch, args.src_len, args.tgt_len, args.vocab, args.rounds, args.repeats)
    if not all(0 < n <= 100_000 for n in sizes):
        ap.error("--batch, --src-len, --tgt-len, --vocab, --rounds and --repeats must be in [1, 100000]")
    if args.batch * max(args.src_len, args.tgt_len) * max(args.vocab, 256) > 2**28:
        ap.error("--batch x length x --vocab over 2^28 elements (1 GiB a tensor): use smaller sizes")
    torch.set_num_threads(2)  # side by side takes 1 + 1 of these two cores
    out: dict[str, Any] = {"cpu": cpu_summary(), "threads": "2 one after the other; 1 + 1 side by side"}
    out.update(batch=args.batch, src_len=args.src_len, tgt_len=args.tgt_len, vocab=args.vocab)
    for name, parts in pairs(args.batch, args.src_len, args.tgt_len, args.vocab).items():
        out[name] = measure(parts, args.rounds, args.repeats)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
