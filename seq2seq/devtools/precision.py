"""Does bf16 pay on this CPU? The checks and the measurement of `scripts/precision.sh` (docs/hardware.md):
training target tokens/s over the updates after a warm-up of `WARMUP`, from a run's metrics.jsonl.

    python -m seq2seq.devtools.precision check --out OUT --steps STEPS
    python -m seq2seq.devtools.precision result --metrics M --isa ISA --precision P --status S --log LOG
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..errors import ConfigError, OutputError, RunFolderError
from ..machine.process import one_line

WARMUP = 10  # updates before the measured window; also the runs' --log-every, so a train record ends it
OWN_LOGS = ("*-fp32.log", "*-bf16.log")  # what precision.sh writes beside its runs' checkpoints


def check_run(out: Path, steps: str) -> int:
    """The measured updates `steps` (a whole multiple of WARMUP: the window runs from the train record of update
    WARMUP to that of STEPS + WARMUP), after refusing an `out` that holds another run's checkpoints (each
    measurement trains there with --overwrite, which would replace them); a ConfigError or OutputError of one
    line."""
    try:
        n = int(steps)
    except ValueError:
        n = 0
    if n < WARMUP or n % WARMUP:
        raise ConfigError(f"STEPS={steps}: give a whole multiple of {WARMUP} (training logs every {WARMUP} updates; "
                          f"the window runs from update {WARMUP} to STEPS + {WARMUP})")  # fmt: skip
    trained = [name for name in ("last.pt", "best.pt") if (out / name).exists()]
    if trained and not any(any(out.glob(pattern)) for pattern in OWN_LOGS):
        raise OutputError(f"OUT={out} holds {trained[0]} of a run that precision.sh did not write (no *-fp32.log "
                          "or *-bf16.log): its training would replace it; give another OUT")  # fmt: skip
    return n


def tokens_per_second(metrics: Path, warmup: int = WARMUP) -> float:
    """Training target tokens/s from the train record of update `warmup` to the last one (cumulative tokens and
    training seconds); a RunFolderError naming the file where there is no such window."""
    from ..runfiles import read_metrics  # imports torch

    train = read_metrics(metrics).get("train", [])
    start = next((r for r in train if r["step"] == warmup), None)
    if start is None or train[-1]["step"] <= warmup:
        steps = [r["step"] for r in train]
        raise RunFolderError(f"{metrics}: no train records from update {warmup} on to measure (steps logged: {steps})")
    end = train[-1]
    seconds = end["elapsed_s"] - start["elapsed_s"]
    if not seconds > 0:
        raise RunFolderError(f"{metrics}: updates {warmup}-{end['step']} took {seconds} s: nothing to measure")
    return (end["tokens"] - start["tokens"]) / seconds


def result(isa: str, precision: str, status: int, log: Path, metrics: Path) -> dict[str, Any]:
    """One measurement's JSON object: the failed run's last log line, or the CPU and its target tokens/s."""
    out: dict[str, Any] = {"onednn_max_cpu_isa": isa, "precision": precision, "exit": status}
    if status:
        lines = log.read_text(encoding="utf-8", errors="replace").strip().splitlines() if log.is_file() else []
        out["error"] = lines[-1] if lines else f"{log}: no output"
        return out
    from ..runfiles import read_metrics

    hardware = read_metrics(metrics).get("hardware", [])
    out["cpu"] = hardware[0].get("cpu") if hardware else None
    out["tgt_tok_s"] = round(tokens_per_second(metrics))
    return out


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m seq2seq.devtools.precision", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="refuse bad STEPS or another run's OUT before anything is trained")
    check.add_argument("--out", type=Path, required=True)
    check.add_argument("--steps", required=True)
    measure = sub.add_parser("result", help="one run's JSON line")
    measure.add_argument("--metrics", type=Path, required=True)
    measure.add_argument("--isa", required=True)
    measure.add_argument("--precision", required=True)
    measure.add_argument("--status", type=int, required=True)
    measure.add_argument("--log", type=Path, required=True)
    args = p.parse_args()
    if args.command == "check":
        print(one_line(p.prog, lambda: check_run(args.out, args.steps)))  # the steps, as a number
    else:
        found = one_line(p.prog, lambda: result(args.isa, args.precision, args.status, args.log, args.metrics))
        print(json.dumps(found))


if __name__ == "__main__":
    main()
