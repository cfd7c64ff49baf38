"""The side-by-side measurement: progress records parsed, stopped time left out, real processes taking turns."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING

import pytest

from seq2seq.devtools import side_by_side as sbs

if TYPE_CHECKING:
    from pathlib import Path

ONMT_LINE = (
    "[2026-12-05 22:21:{s:02d},{ms:03d} INFO] Step {step}/1000000; acc: 9.3; ppl: 760.3; xent: 6.6; lr: 0.00100; "
    "sents:    2996; bsz: 1972/{tgt}/150; 3640/3898 tok/s;     11 sec;"
)


def test_onmt_progress_counts_target_tokens_per_step_since_the_previous_line(tmp_path: Path) -> None:
    log = tmp_path / "onmt.log"
    log.write_text(
        "[2026-12-05 22:21:30,000 INFO] Starting training on CPU\n"
        + ONMT_LINE.format(s=31, ms=0, step=20, tgt=2000) + "\n"
        + ONMT_LINE.format(s=39, ms=500, step=40, tgt=2100) + "\n"
    )  # fmt: skip
    (t0, n0), (t1, n1) = sbs.onmt_progress(log)
    assert (n0, n1) == (20 * 2000, 20 * 2000 + 20 * 2100)
    assert t1 - t0 == pytest.approx(8.5)


def test_slice_rates_use_each_slice_s_own_records_and_refuse_a_split_slice() -> None:
    points = [(0.0, 0.0), (1.0, 50.0),  # warm-up
              (10.0, 60.0), (11.0, 160.0), (12.0, 260.0),  # round 1: 100 tok/s, then stopped for 50 s
              (62.0, 270.0), (63.0, 570.0), (65.0, 1170.0),  # round 2: 300 tok/s
              (120.0, 1200.0)]  # fmt: skip  # written while it was terminated: left out
    assert sbs.slice_rates(points, [2, 5, 8], gap=10.0) == [100.0, 300.0]
    assert sbs.slice_rates(points, [0, 5, 8], gap=10.0) == [260 / 12, 300.0]  # no warm-up records: as well
    assert sbs.slice_rates(points, [2, 5, 6], gap=10.0) == [100.0, None]  # one record: no rate
    with pytest.raises(ValueError, match="2 rounds fall into 3 stretches"):  # round 2 paused 20 s: split
        sbs.slice_rates([*points[:5], (62.0, 270.0), (82.0, 570.0), (83.0, 870.0)], [2, 5, 8], gap=10.0)
    with pytest.raises(ValueError, match="2 rounds fall into 1 stretches"):  # no stop between the rounds
        sbs.slice_rates([(0.0, 0.0), (1.0, 10.0), (2.0, 20.0), (3.0, 30.0)], [0, 2, 4], gap=10.0)


FAKE_ONMT = """
import sys, time
from datetime import datetime
step = 0
while True:
    time.sleep(0.01)
    step += 1
    now = datetime.now()
    stamp = f"{now:%Y-%m-%d %H:%M:%S},{now.microsecond // 1000:03d}"
    print(f"[{stamp} INFO] Step {step}/1000000; bsz: 1/100/1; 1/1 tok/s;", flush=True)
"""
FAKE_PAUSING = """
import signal, sys, time
from datetime import datetime
continued, step = [False], 0
signal.signal(signal.SIGCONT, lambda *_: continued.__setitem__(0, True))
def log():
    global step
    step += 1
    now = datetime.now()
    print(f"[{now:%Y-%m-%d %H:%M:%S},{now.microsecond // 1000:03d} INFO] Step {step}/1; bsz: 1/100/1; 1/1 tok/s;",
          flush=True)
while True:  # after each continue: records 50 ms apart for 0.25 s, a 0.6-s pause, then records again
    continued[0] = False
    for _ in range(5):
        log(); time.sleep(0.05)
    time.sleep(0.6)
    while not continued[0]:
        log(); time.sleep(0.05)
"""
FAKE_OURS = """
import json, sys, time
start, tokens, step = time.monotonic(), 0, 0
with open(sys.argv[1], "a") as f:
    while True:
        time.sleep(0.01)
        step, tokens = step + 1, tokens + 300
        f.write(json.dumps({"type": "train", "step": step, "tokens": tokens, "elapsed_s": time.monotonic() - start,
                            "wall": time.time()}) + "\\n")
        f.flush()
"""


def _stretches(times: list[float]) -> list[tuple[float, float]]:
    """(first, last) of each run of times less than 0.2 s apart."""
    runs = [[times[0]]]
    for a, b in zip(times, times[1:]):
        (runs[-1].append(b) if b - a < 0.2 else runs.append([b]))
    return [(r[0], r[-1]) for r in runs]


def test_contenders_take_turns_and_are_measured_only_while_they_run(tmp_path: Path) -> None:
    """Two fake trainers, 100 and 300 tokens per 10 ms of their own running time: stopped and continued in
    turn, each is measured at its own rate (had a stopped process kept running, or its stops been counted,
    the ratio would not be 3), and both are terminated at the end."""
    (tmp_path / "peer").mkdir()
    (tmp_path / "ours").mkdir()
    procs = [
        sbs.Proc("peer", [sys.executable, "-c", FAKE_ONMT], {}, "onmt", tmp_path / "peer" / "peer.log"),
        sbs.Proc("ours", [sys.executable, "-c", FAKE_OURS, str(tmp_path / "ours" / "m.jsonl")], {}, "metrics",
                 tmp_path / "ours" / "m.jsonl"),
    ]  # fmt: skip
    measured = sbs.run_rounds(procs, rounds=2, slice_s=1.0, warmups=[0.5, 0.5], gemm_s=0.1)
    rates = measured["tgt_tok_s"]
    assert len(rates["peer"]) == len(rates["ours"]) == 2 and len(measured["gemm_gflop_s"]) == 2
    for p, o in zip(rates["peer"], rates["ours"]):
        assert 2.5 < o / p < 3.5, rates
        assert p < 100 / 0.01  # no more than its own pace
    summary = sbs.summary(measured, "peer", flops=1.0)
    assert 2.5 < summary["ratio_ours"]["mean"] < 3.5
    shares = sbs.summary(
        measured | {"tgt_tok_s": {"peer": [1.0, 1.0], "fp32": [2e9, 4e9]}, "gemm_gflop_s": [4.0, 2.0]}, "peer", 1.0
    )
    assert shares["fp32_gemm_share"] == {"rounds": [0.5, 2.0], "of_means": 1.0}  # GFLOP/s over the round's GEMM
    # while one ran, the other did not: their stretches of progress overlap by no more than a signal's latency
    peer = _stretches([t for t, _ in sbs.onmt_progress(procs[0].progress)])
    ours = _stretches([json.loads(line)["wall"] for line in (tmp_path / "ours" / "m.jsonl").read_text().splitlines()])
    assert len(peer) == len(ours) == 3  # warm-up and two rounds each
    assert max(min(b, d) - max(a, c) for a, b in peer for c, d in ours) < 0.02
    assert set(measured["peak_rss_mb"]) == {"peer", "ours"}  # both reaped


def test_records_that_pause_within_a_slice_are_an_error_not_another_round(tmp_path: Path) -> None:
    """A contender whose records pause for over half a slice inside each slice: the pause looks like a stop,
    which would split a slice in two and give one round's tokens to the next."""
    procs = [sbs.Proc(name, [sys.executable, "-c", FAKE_PAUSING], {}, "onmt", tmp_path / f"{name}.log")
             for name in ("peer", "other")]  # fmt: skip
    with pytest.raises(RuntimeError, match="peer: its records of the 2 rounds fall into 4 stretches"):
        sbs.run_rounds(procs, rounds=2, slice_s=1.0, warmups=[0.5, 0.5], gemm_s=0)


def test_a_contender_that_dies_is_an_error_naming_it(tmp_path: Path) -> None:
    proc = sbs.Proc("peer", [sys.executable, "-c", "import sys; sys.exit(3)"], {}, "onmt", tmp_path / "peer.log")
    with pytest.raises(RuntimeError, match="peer exited"):
        sbs.run_rounds([proc], rounds=1, slice_s=0.5, warmups=[0.5], gemm_s=0)


def test_the_cli_refuses_bad_input_with_one_line_and_status_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    base = ["--data", str(tmp_path), "--peers-home", str(tmp_path), "--out", str(tmp_path / "out")]
    with pytest.raises(SystemExit) as stop:
        sbs.main([*base, "--peer-config", str(tmp_path / "c.yaml")])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "onmt_train not found: run ../shared/peers/run.sh first" in err
    for path in ("venvs/onmt/bin/onmt_train", "data/vocab.en.counts", "c.yaml"):  # the peer installed
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("")
    for flags in (["--slice", "20"], ["--rounds", "1000"], ["--warmup", "-1"]):
        with pytest.raises(SystemExit) as stop:
            sbs.main([*base, "--peer-config", str(tmp_path / "c.yaml"), *flags])
        assert stop.value.code == 2 and "--slice 30 to 600 s" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:  # no corpus in --data
        sbs.main([*base, "--peer-config", str(tmp_path / "c.yaml")])
    assert stop.value.code == 2 and str(tmp_path) in capsys.readouterr().err
