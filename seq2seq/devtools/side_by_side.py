"""Our training and OpenNMT-py's, side by side on one machine, in alternating slices of time.

    python -m seq2seq.devtools.side_by_side --data DIR [--test-split S] --peers-home PEERS_HOME \\
        --peer-config YAML --out OUT [--rounds 6] [--slice 60] [--peer-warmup 240] [--warmup 60]

A shared 2-core machine changes speed by a fifth within minutes (docs/speed.md), so a ratio of two
runs taken minutes apart measures the machine as much as the code. Here OpenNMT-py (installed by
../shared/peers/run.sh into PEERS_HOME, run with its matched configuration) and `seq2seq train` in bf16
(where the CPU has it natively) and fp32 all start, but only one of them ever runs: the others are
stopped (SIGSTOP) and take turns (SIGCONT) in slices of `--slice` seconds, round after round, with a
2-s fp32 GEMM measured after each round while all are stopped. Each process first runs alone for its
warm-up. A process's rate in a slice is the target tokens between its first and last progress record
inside that slice over the seconds between them (OpenNMT-py's log lines, our metrics.jsonl): its records
are counted while it is stopped, before and after each slice, so no interval that spans a stop is used;
the gaps in its own clock must split its records into the same slices, else it stops with an error
(a slice whose records pause as long as half a slice, `--slice` at least 30 s). Prints one JSON object:
per round, each one's target tokens/s, our ratios to the peer's, and fp32 model FLOP/s against the
round's GEMM; then the mean of each.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import NamedTuple

import torch

from ..config import DataConfig
from ..errors import EXIT_USAGE
from ..machine.hardware import cpu_bf16
from ..machine.process import one_line
from ..preprocess import ensure_prepared
from ..runfiles import read_metrics
from .benchmark import Corpus, gemm_gflop_s, model_flops, train_command
from .peers import this_machine

MIN_SLICE_S = 30  # OpenNMT-py logs every 5-8 s here (report_every 20): a slice holds several of its records
ONMT_STEP = re.compile(
    r"\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d+) INFO\] Step (\d+)/\s*\d+;.*?bsz:\s*\d+/\s*(\d+)/\s*\d+;"
)


class Proc(NamedTuple):
    """One contender: its command and environment, and where its progress records are read from
    (`kind`: "onmt", OpenNMT-py's log; "metrics", a seq2seq run's metrics.jsonl)."""

    name: str
    cmd: list[str]
    env: dict[str, str]
    kind: str
    progress: Path


def onmt_progress(log: Path) -> list[tuple[float, float]]:
    """(seconds, cumulative target tokens) at each OpenNMT-py progress line: its mean target tokens per
    batch since the previous line times the steps since then, as ../shared/peers/throughput.py counts."""
    points, tokens, prev_step = [], 0.0, 0
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        m = ONMT_STEP.search(line)
        if m:
            step = int(m.group(3))
            tokens += int(m.group(4)) * (step - prev_step)
            prev_step = step
            points.append(
                (datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S").timestamp() + int(m.group(2)) / 1000, tokens)
            )
    return points


def metrics_progress(path: Path) -> list[tuple[float, float]]:
    """(elapsed seconds, cumulative target tokens) at each train record of a seq2seq run."""
    return [(r["elapsed_s"], float(r["tokens"])) for r in read_metrics(path)["train"]]


def progress(p: Proc) -> list[tuple[float, float]]:
    """A contender's progress records so far (none before its first)."""
    if not p.progress.is_file():
        return []
    return onmt_progress(p.progress) if p.kind == "onmt" else metrics_progress(p.progress)


def _stretches(points: list[tuple[float, float]], gap: float) -> list[list[tuple[float, float]]]:
    """The points split wherever the clock jumps by more than `gap` (the process was stopped)."""
    stretches: list[list[tuple[float, float]]] = []
    for p in points:
        if not stretches or p[0] - stretches[-1][-1][0] > gap:
            stretches.append([])
        stretches[-1].append(p)
    return stretches


def slice_rates(points: list[tuple[float, float]], ends: list[int], gap: float) -> list[float | None]:
    """Tokens/s in each round's slice of running time; None for a slice with fewer than two records.

    `ends`: how many records there were when the warm-up and then each round's slice ended (counted while the
    process was stopped), so round k's records are points[ends[k-1]:ends[k]]; records after the last slice
    (written while the process was being terminated) are left out. The rounds' records split at clock gaps
    of more than `gap` must give exactly these slices, else ValueError: a slice split (a pause in its records
    as long as a stop) or slices run together would otherwise assign one round's tokens to another."""
    slices = [points[a:b] for a, b in zip(ends, ends[1:])]
    stretches = _stretches(points[ends[0] : ends[-1]], gap)
    if [len(s) for s in stretches] != [len(s) for s in slices if s]:
        raise ValueError(
            f"its records of the {len(slices)} rounds fall into {len(stretches)} stretches between clock gaps over "
            f"{gap:g} s, not one per slice: its progress records are too sparse for --slice {2 * gap:g}"
        )
    return [(s[-1][1] - s[0][1]) / (s[-1][0] - s[0][0]) if len(s) > 1 and s[-1][0] > s[0][0] else None for s in slices]


def _signal(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def _reap(proc: subprocess.Popen, patience: float = 120.0) -> float | None:
    """Wait for a terminated contender (killed after `patience` s); its peak RSS in MiB, if still ours to reap."""
    deadline = time.monotonic() + patience
    while proc.returncode is None:
        try:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        except ChildProcessError:
            return None
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return round(usage.ru_maxrss / 1024, 1)
        if time.monotonic() > deadline:
            _signal(proc, signal.SIGKILL)
        time.sleep(0.2)
    return None


def _run_alone(proc: subprocess.Popen, name: str, seconds: float) -> None:
    _signal(proc, signal.SIGCONT)
    time.sleep(seconds)
    if proc.poll() is not None:
        raise RuntimeError(f"{name} exited (status {proc.returncode}) while it was measured; see its log")
    _signal(proc, signal.SIGSTOP)


def run_rounds(
    procs: list[Proc], rounds: int, slice_s: float, warmups: list[float], gemm_s: float = 2.0
) -> dict[str, object]:
    """Start every contender, warm each up alone, then `rounds` rounds of one slice each (a GEMM after
    each round when `gemm_s`); returns per-round tokens/s by name, GEMM GFLOP/s and peak RSS (MiB)."""
    running: list[subprocess.Popen] = []
    gemm: list[float] = []
    ends: dict[str, list[int]] = {p.name: [] for p in procs}  # records when its warm-up and each slice ended
    try:
        for p, warm in zip(procs, warmups):
            with open(p.progress.parent / f"{p.name}.log", "w") as log:
                running.append(
                    subprocess.Popen(p.cmd, env=p.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
                )
            _run_alone(running[-1], p.name, warm)
        for _ in range(rounds):
            for p, proc in zip(procs, running):
                ends[p.name].append(len(progress(p)))  # stopped since its last slice (the others' ran since)
                _run_alone(proc, p.name, slice_s)
            if gemm_s:
                gemm.append(round(gemm_gflop_s(torch.float32, seconds=gemm_s), 1))
        for p in procs:
            ends[p.name].append(len(progress(p)))
    finally:
        for proc in running:  # the SIGTERM first: it waits for the SIGCONT, so no more steps run before it
            _signal(proc, signal.SIGTERM)
            _signal(proc, signal.SIGCONT)
        rss = {p.name: _reap(proc) for p, proc in zip(procs, running)}
    rates = {}
    for p in procs:
        try:
            found = slice_rates(progress(p), ends[p.name], gap=slice_s / 2)
        except ValueError as err:
            raise RuntimeError(f"{p.name}: {err} ({p.progress})") from None
        if None in found:
            raise RuntimeError(f"{p.name}: a slice with fewer than 2 progress records in {p.progress}: use a longer "
                               "--slice")  # fmt: skip
        rates[p.name] = [round(r, 1) for r in found]  # type: ignore[arg-type]
    return {"tgt_tok_s": rates, "gemm_gflop_s": gemm, "peak_rss_mb": rss}


def summary(measured: dict[str, object], peer: str, flops: float) -> dict[str, object]:
    """Per-round ratios of each of ours to the peer's slice of the same round; fp32 FLOP/s share of the
    round's GEMM; means."""
    rates: dict[str, list[float]] = measured["tgt_tok_s"]  # type: ignore[assignment]
    out: dict[str, object] = {"mean_tgt_tok_s": {k: round(sum(v) / len(v), 1) for k, v in rates.items()}}
    for name, r in rates.items():
        if name != peer:
            ratios = [a / b for a, b in zip(r, rates[peer])]
            out[f"ratio_{name}"] = {
                "rounds": [round(x, 2) for x in ratios],
                "mean": round(sum(ratios) / len(ratios), 2),
                "min": round(min(ratios), 2),
                "max": round(max(ratios), 2),
            }
    gemm: list[float] = measured["gemm_gflop_s"]  # type: ignore[assignment]
    if "fp32" in rates and gemm:
        shares = [flops * t / 1e9 / g for t, g in zip(rates["fp32"], gemm)]
        of_means = (
            flops * sum(rates["fp32"]) / 1e9 / sum(gemm)
        )  # a dip in one short GEMM weighs less than in a mean of shares
        out["fp32_gemm_share"] = {"rounds": [round(x, 2) for x in shares], "of_means": round(of_means, 2)}
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m seq2seq.devtools.side_by_side", description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="folder of {split}.{lang} files (Multi30k)")
    ap.add_argument("--src", default="de")
    ap.add_argument("--tgt", default="en")
    ap.add_argument("--test-split", default="test", help="as the benchmark's (only recorded in the prepared folders)")
    ap.add_argument(
        "--peers-home", required=True, help="where ../shared/peers/run.sh installed OpenNMT-py and its data"
    )
    ap.add_argument(
        "--peer-config", required=True, help="its matched configuration (../shared/peers/configs/onmt_lstm.yaml)"
    )
    ap.add_argument("--out", required=True)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--slice", type=float, default=60.0, help=f"seconds each one runs per round (>= {MIN_SLICE_S})")
    ap.add_argument("--peer-warmup", type=float, default=240.0, help="seconds OpenNMT-py runs alone first")
    ap.add_argument("--warmup", type=float, default=60.0, help="seconds each of ours runs alone first")
    a = ap.parse_args(argv)
    home, out = Path(a.peers_home).resolve(), Path(a.out).resolve()
    onmt_train = home / "venvs/onmt/bin/onmt_train"
    missing = next(
        (n for n in (onmt_train, home / "data/vocab.en.counts", Path(a.peer_config)) if not n.exists()), None
    )
    problem = (f"{missing} not found: run ../shared/peers/run.sh first (it installs the peer there)" if missing else
               f"--rounds must be 1 to 100, --slice {MIN_SLICE_S} to 600 s, the warm-ups 0 to 3600 s"
               if not (1 <= a.rounds <= 100 and MIN_SLICE_S <= a.slice <= 600 and 0 <= min(a.warmup, a.peer_warmup)
                       and max(a.warmup, a.peer_warmup) <= 3600) else None)  # fmt: skip
    if problem:
        print(f"side_by_side: error: {problem}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    out.mkdir(parents=True, exist_ok=True)
    peer_dir = out / "onmt"
    peer_dir.mkdir(exist_ok=True)
    config = (
        Path(a.peer_config).read_text().replace("${PEERS_HOME}/onmt", str(peer_dir)).replace("${PEERS_HOME}", str(home))
    )
    (peer_dir / "config.yaml").write_text(config)
    threads = {"OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"}
    env = dict(os.environ) | threads | {"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"}
    peer_cmd = [str(onmt_train), "-config", str(peer_dir / "config.yaml")]
    procs = [Proc("opennmt-py", peer_cmd, env, "onmt", peer_dir / "opennmt-py.log")]  # its output is its log
    data_cfg = DataConfig(vocab_size=4000, test_split=a.test_split)
    corpus = Corpus(Path(a.data), a.src, a.tgt)
    precisions = ["bf16", "fp32"] if cpu_bf16().native else ["fp32"]
    for precision in precisions:
        run = out / precision
        prepared = one_line("side_by_side", lambda run=run: ensure_prepared(corpus.data, a.src, a.tgt, run, data_cfg))
        cmd = train_command(corpus, run, precision, 600, ["--max-tokens", "2700", "--threads", "2"])
        procs.append(Proc(precision, cmd, dict(os.environ), "metrics", run / "metrics.jsonl"))
    torch.set_num_threads(2)
    flops = model_flops(prepared)
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    try:
        measured = run_rounds(procs, a.rounds, a.slice, [a.peer_warmup] + [a.warmup] * len(precisions))
    except RuntimeError as err:  # a contender died, or its records do not fit the slices
        print(f"side_by_side: error: {err}", file=sys.stderr)
        sys.exit(1)
    result = {"machine": this_machine()._asdict(), "started": started, "rounds": a.rounds, "slice_s": a.slice,
              "model_mflop_per_tgt_token": round(flops / 1e6, 2), **measured,
              **summary(measured, "opennmt-py", flops)}  # fmt: skip
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
