"""The memory-span study's settings and its result (torch-free, so that building the command line stays
fast; the result lives here so that span_plots.py and memory_span.py both read it without importing each other).

Every field is a `seq2seq memory-span` flag; its comment is the flag's help and names the source
of the set-up it controls.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

from ..config import ConfigError, half_memory

if TYPE_CHECKING:
    from collections.abc import Collection, Sequence
    from pathlib import Path

TASKS = ("recall", "copy", "adding")
INITS = ("default", "forget-bias", "chrono")
CELLS = ("rnn", "gru", "lstm")
DEFAULT_TASKS = ("recall", "adding")
DEFAULT_DELAYS = (10, 20, 50, 100, 200, 500)
QUICK_DELAYS = (2, 8)
Init = Literal["default", "forget-bias", "chrono"]
# The bounds of the settings, far beyond any real experiment (the defaults are far below), so that a
# typo (--steps 1000000000000, --hidden 10000000) is refused at once instead of allocating or looping
# for hours; run_memory_span also checks the memory a run of the largest delay needs (span_checks.span_memory).
LOWEST = {"hidden": 1, "steps": 1, "batch_size": 1, "eval_every": 1, "n_symbols": 1, "alphabet": 2, "copy_length": 1,
          "val_size": 1, "test_size": 1, "seeds": 1, "tbptt": 0, "chrono_tmax": 0}  # fmt: skip
LIMITS = {"hidden": 4096, "steps": 1_000_000, "batch_size": 65_536, "eval_every": 1_000_000, "n_symbols": 1000,
          "alphabet": 1000, "copy_length": 10_000, "val_size": 1_000_000, "test_size": 1_000_000, "seeds": 100,
          "tbptt": 1_000_000, "chrono_tmax": 1_000_000}  # fmt: skip
MAX_DELAY, MAX_WORKERS, MAX_SEED = 100_000, 256, 2**32 - 1
# Adam's first step moves a weight by up to 10 x lr (its bias correction): past float32's 3.4e38 torch stops
# mid-run ("cannot be converted to type float without overflow"); 1,000 is far beyond any rate that trains.
MAX_LR = 1000.0
PROBE_SEQUENCES = 64  # held-out sequences of the gradient-flow probe (fewer with a smaller val_size)


def stream_seeds(seed: int, delay: int) -> dict[str, int]:
    """The generator seeds of a run's data at `seed` and `delay`: its training batches (a stream per delay, the
    same for every cell) and its held-out sets (validation, test, and the probe's sequences of the gradient
    flow). The held-out seeds follow one another, so seed s's test set is seed s + 1's validation set: each
    seed's scores are of its own model, not of independent sets. At seed 0 the training stream of delay 2 is
    the test set's and that of delay 3 the probe's: `check_run` refuses those (`stream_clash`)."""
    return {"training": seed * 100_003 + delay, "validation": seed + 1, "test": seed + 2, "probe": seed + 3}


def stream_clash(seed: int, delay: int) -> str | None:
    """The held-out set whose stream is the training stream of `seed` at `delay` (None: none is)."""
    streams = stream_seeds(seed, delay)
    return next((name for name, value in streams.items() if name != "training" and value == streams["training"]), None)


memory_budget = half_memory  # what one experiment may hold (a name of its own: tests lower it)


def flag(name: str) -> str:
    """The command-line flag of a setting: `--batch-size` for batch_size."""
    return "--" + name.replace("_", "-")


@dataclass(frozen=True)
class SpanSettings:
    """One training set-up, the same for every cell, task and delay of a run."""

    hidden: int = 64  # the parameter budget: an LSTM of this size; GRU and RNN get the closest parameter count
    init: Init = "chrono"  # gate biases: torch's; +forget_bias (Gers et al. 2000); chrono (Tallec & Ollivier 2018)
    forget_bias: float = 1.0  # init forget-bias: added to LSTM forget / GRU update gate biases (Jozefowicz 2015)
    chrono_tmax: int = 0  # init chrono: T_max of the gate bias log(U(1, T_max - 1)); 0: the task's sequence length
    steps: int = 2000  # training budget per cell, task and delay: updates (stops early once solved)
    batch_size: int = 64  # sequences per update (fresh random ones every update)
    lr: float = 1e-2  # Adam learning rate
    retry_lrs: str = "3e-3 1e-3"  # a delay not solved at lr is trained again at these, in turn ("": no retry)
    clip_norm: float = 1.0  # gradient-norm clipping, 0: off (Pascanu, Mikolov & Bengio 2013)
    tbptt: int = 0  # truncated BPTT: chunks of this many steps (training's rule), state carried, gradient cut; 0: full
    seeds: int = 3  # independent runs (seeds --seed, --seed + 1, ...) of every sweep; a cell's span: their median
    eval_every: int = 100  # updates between validations (a solved validation set stops training)
    n_symbols: int = 3  # recall: symbols to remember
    alphabet: int = 8  # recall and copy: distinct symbols (chance accuracy 1/alphabet)
    copy_length: int = 10  # copy: symbols to reproduce (Arjovsky, Shah & Bengio 2016)
    val_size: int = 1000  # held-out sequences for the stopping check
    test_size: int = 4000  # held-out sequences of the reported score

    @property
    def lrs(self) -> list[float]:
        """The learning rates a delay is tried with, in turn."""
        return list(dict.fromkeys([self.lr, *map(float, self.retry_lrs.split())]))

    def __post_init__(self) -> None:
        for name, low in LOWEST.items():
            value, high = getattr(self, name), LIMITS[name]
            if not low <= value <= high:
                raise ConfigError(f"{flag(name)} must be in [{low}, {high:,}], got {value:,}")
        for name in ("lr", "clip_norm", "forget_bias"):
            if not math.isfinite(getattr(self, name)):
                raise ConfigError(f"{flag(name)} must be a finite number, got {getattr(self, name)}")
        if not 0 < self.lr <= MAX_LR or self.clip_norm < 0:
            raise ConfigError(f"need --lr in (0, {MAX_LR:,g}] and --clip-norm >= 0, got {self.lr:g} and "
                              f"{self.clip_norm:g}")  # fmt: skip
        try:
            ok = all(0 < float(lr) <= MAX_LR for lr in self.retry_lrs.split())
        except ValueError:
            ok = False
        if not ok:
            raise ConfigError(f"--retry-lrs must be learning rates in (0, {MAX_LR:,g}] separated by spaces, got "
                              f"{self.retry_lrs!r}")  # fmt: skip


QUICK = SpanSettings(hidden=12, steps=60, batch_size=32, eval_every=20, val_size=128, test_size=256, seeds=1)


@dataclass
class MemorySpanResult:
    """Every run's row; per task and cell the largest delay solved by each seed (`spans`, None: not even
    the first) and their median (`largest`: the lower median for an even count, a span some seed reached)."""

    rows: list[dict[str, Any]]
    largest: dict[str, dict[str, int | None]]
    settings: SpanSettings
    seconds: float
    files: list[Path] = field(default_factory=list)
    spans: dict[str, dict[str, list[int | None]]] = field(default_factory=dict)
    cpu_seconds: float = 0.0  # the training's CPU time, all processes together (wall time: `seconds`)


def median_span(spans: list[int | None]) -> int | None:
    """The (lower) median of spans, None (nothing solved) counting as below every delay."""
    ordered = sorted(spans, key=lambda v: -1 if v is None else v)
    return ordered[(len(ordered) - 1) // 2] if ordered else None


def settings_with(base: SpanSettings, **changes: Any) -> SpanSettings:
    """`base` with the given fields changed (None values ignored), for command-line overrides."""
    return replace(base, **{k: v for k, v in changes.items() if v is not None})


def check_settings(
    tasks: Sequence[str], cells: Sequence[str], delays: Sequence[int], s: SpanSettings,
    given: Collection[str] | None = None,
) -> None:  # fmt: skip
    """Known tasks and cells, delays in [2, MAX_DELAY], and no setting that this run would ignore (`given`:
    the fields set by flags; None: those off their defaults). Else a ConfigError."""
    for name, asked, valid in (("task", tasks, TASKS), ("cell", cells, CELLS)):
        bad = [g for g in asked if g not in valid]
        if bad or not asked:
            raise ConfigError(f"unknown or no {name}(s) {bad or list(asked)}; choose from {', '.join(valid)}")
    if not delays or min(delays) < 2 or max(delays) > MAX_DELAY:
        raise ConfigError(f"--delays must be in [2, {MAX_DELAY:,}], got {' '.join(map(str, delays)) or 'none'}")
    default, gated = SpanSettings(), set(cells) != {"rnn"}
    ignored = [  # (setting, changed from its default, when it applies)
        ("forget_bias", s.init == "forget-bias" and gated, "with --init forget-bias and a gated cell (gru, lstm)"),
        ("chrono_tmax", s.init == "chrono" and gated, "with --init chrono and a gated cell (gru, lstm)"),
        ("init", gated, "to the gated cells (gru, lstm): the tanh RNN has no gates"),
        ("n_symbols", "recall" in tasks, "to the recall task"),
        ("alphabet", "recall" in tasks or "copy" in tasks, "to the recall and copy tasks"),
        ("copy_length", "copy" in tasks, "to the copy task"),
    ]
    for name, applies, where in ignored:
        set_ = name in given if given is not None else getattr(s, name) != getattr(default, name)
        if set_ and not applies:
            raise ConfigError(f"{flag(name)} {getattr(s, name)} would be ignored: it applies only {where}; "
                              f"leave it out")  # fmt: skip
