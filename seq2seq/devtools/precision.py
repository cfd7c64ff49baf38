"""Does bf16 pay on this CPU? The checks and the measurement of `scripts/precision.sh` (docs/hardware.md):
training target tokens/s over the updates after a warm-up of `WARMUP`, from a run's metrics.jsonl.

    python -m seq2seq.devtools.precision check --out OUT --steps STEPS --isas "DEFAULT AVX512_CORE AVX2"
    python -m seq2seq.devtools.precision result --metrics M --isa ISA --precision P --status S --log LOG
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..config import TRAIN_BOUNDS
from ..errors import ConfigError, OutputError, RunFolderError
from ..machine.process import one_line

WARMUP = 10  # updates before the measured window; also the runs' --log-every, so a train record ends it
OWN_LOGS = ("*-fp32.log", "*-bf16.log")  # what precision.sh writes beside its runs' checkpoints
# the most STEPS: each run trains --max-steps STEPS + WARMUP, within seq2seq train's bound (TRAIN_BOUNDS)
MAX_STEPS = int(TRAIN_BOUNDS["max_steps"][1]) - WARMUP
# The values oneDNN takes for ONEDNN_MAX_CPU_ISA on x86-64 (its "CPU Dispatcher Control" guide, and dnnl_cpu_isa_t:
# AVX512_CORE_FP16, _AMX and _AMX_FP16 are the AVX10_1_512 names' aliases). oneDNN ignores any other value, and the
# run would be reported as capped at an ISA that it never was.
ONEDNN_ISAS = (
    "DEFAULT", "SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI",
    "AVX512_CORE_BF16", "AVX512_CORE_FP16", "AVX512_CORE_AMX", "AVX512_CORE_AMX_FP16", "AVX10_1_512",
    "AVX10_1_512_AMX", "AVX10_1_512_AMX_FP16",
)  # fmt: skip


def check_run(out: Path, steps: str, isas: str = "DEFAULT") -> int:
    """The measured updates `steps` (a whole multiple of WARMUP up to MAX_STEPS: the window runs from the train
    record of update WARMUP to that of STEPS + WARMUP), after refusing an `isas` (ISAS: names separated by spaces)
    with a name oneDNN does not take (ONEDNN_ISAS), and an `out` that holds another run's checkpoints (each
    measurement trains there with --overwrite, which would replace them); a ConfigError or OutputError of one
    line."""
    try:
        n = int(steps)
    except ValueError:
        n = 0
    if not WARMUP <= n <= MAX_STEPS or n % WARMUP:
        raise ConfigError(f"STEPS={steps}: give a whole multiple of {WARMUP} from {WARMUP} to {MAX_STEPS:,} (training "
                          f"logs every {WARMUP} updates; the window runs from update {WARMUP} to STEPS + {WARMUP}, "
                          f"within seq2seq train's --max-steps bound)")  # fmt: skip
    names = isas.split()
    unknown = [name for name in names if name.upper() not in ONEDNN_ISAS]  # oneDNN reads the names in any case
    if unknown or not names:
        raise ConfigError(f"ISAS={isas!r}: {unknown[0] + ' is not' if unknown else 'name at least'} one of oneDNN's "
                          f"ONEDNN_MAX_CPU_ISA values: {' '.join(ONEDNN_ISAS)}")  # fmt: skip
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
    check = sub.add_parser("check", help="refuse bad STEPS, ISAS or another run's OUT before anything is trained")
    check.add_argument("--out", type=Path, required=True)
    check.add_argument("--steps", required=True)
    check.add_argument("--isas", default="DEFAULT", help="ONEDNN_MAX_CPU_ISA values separated by spaces")
    measure = sub.add_parser("result", help="one run's JSON line")
    measure.add_argument("--metrics", type=Path, required=True)
    measure.add_argument("--isa", required=True)
    measure.add_argument("--precision", required=True)
    measure.add_argument("--status", type=int, required=True)
    measure.add_argument("--log", type=Path, required=True)
    args = p.parse_args()
    if args.command == "check":
        print(one_line(p.prog, lambda: check_run(args.out, args.steps, args.isas)))  # the steps, as a number
    else:
        found = one_line(p.prog, lambda: result(args.isa, args.precision, args.status, args.log, args.metrics))
        print(json.dumps(found))


if __name__ == "__main__":
    main()
