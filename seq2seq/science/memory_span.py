"""Memory span: over how many steps can a tanh RNN, a GRU and an LSTM carry information?

For each task (span_tasks.py: delayed recall, copy, adding) and cell, the delays are tried in
increasing order, each with a fresh model, the same parameter budget (hidden sizes matched to an
LSTM's parameter count), the same data stream, optimiser and update budget; the sweep of a cell
stops at its first unsolved delay. The result per task and cell is the largest delay solved, with
the set-up that solved it.

The instruments say *why* a cell fails: for the model trained at a cell's longest delay,
||dL/dh_t|| through time (measured at the start, at half the update budget if training gets there,
and at the end of training, on held-out
sequences, by unrolling the cell step by step with its own weights) and the mean activation of the
gate that keeps the state (LSTM forget gate, GRU update gate; 1 keeps everything).

Set-ups (span_settings.py): torch's default initialisation; forget-gate bias +1 (Gers, Schmidhuber
& Cummins 2000; Jozefowicz, Zaremba & Sutskever 2015); chrono initialisation (Tallec & Ollivier
2018): forget-gate biases log(U(1, T_max - 1)) and input-gate biases their negatives, so that the
cell's memory time scales spread up to the sequence length from the start.
"""

from __future__ import annotations

import logging
import os
import time
from bisect import bisect_left
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from ..errors import LOG_FORMAT, TIME_FORMAT
from ..model import RNNS, count_parameters
from ..objective import chunks
from ..tools.figures import new_figure
from .span_cells import run_rnn
from .span_checks import SCORE_CHUNK, check_memory, check_run, check_span_run, make_out
from .span_plots import plot_gradient_flow, plot_memory_span
from .span_report import write_result
from .span_settings import (
    CELLS,
    DEFAULT_DELAYS,
    DEFAULT_TASKS,
    PROBE_SEQUENCES,
    QUICK,
    QUICK_DELAYS,
    MemorySpanResult,  # defined in span_settings.py (span_plots.py reads it), re-exported here
    SpanSettings,
    median_span,
    stream_seeds,
)
from .span_tasks import Task

if TYPE_CHECKING:
    from collections.abc import Collection, Iterator, Sequence

log = logging.getLogger("seq2seq")
PROBES = 3  # gradient-flow measurements per run, at most: before training, at update steps // 2, at the end


class SpanNet(nn.Module):
    """A one-layer unidirectional RNN and a linear read-out at every step (the GRU computed by
    span_cells.py: nn.GRU's weights and equations, a faster backward on one CPU thread)."""

    def __init__(self, cell: str, hidden: int, task: Task, device: str | None = None) -> None:
        super().__init__()
        self.cell = cell
        self.rnn = RNNS[cell](task.n_in, hidden, batch_first=True, device=device)
        self.head = nn.Linear(hidden, task.n_out, device=device)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(run_rnn(self.rnn, x)[0])


def initialise(net: SpanNet, s: SpanSettings, t_max: int, gen: torch.Generator) -> None:
    """Set the gate biases of `s.init` (torch's gate order: LSTM i, f, g, o; GRU r, z, n).

    forget-bias: + s.forget_bias on the LSTM forget gate (GRU update gate z, whose 1 keeps the
    state). chrono: b_f ~ log(U(1, T_max - 1)), b_i = -b_f (LSTM); b_z ~ log(U(1, T_max - 1)) (GRU,
    the update gate playing the forget gate's role); the other biases 0. The tanh RNN has no gates.
    """
    if s.init == "default" or net.cell == "rnn":
        return
    h, rnn = net.rnn.hidden_size, net.rnn
    with torch.no_grad():
        if s.init == "forget-bias":
            rnn.bias_ih_l0[h : 2 * h] += s.forget_bias
            return
        rnn.bias_ih_l0.zero_()
        rnn.bias_hh_l0.zero_()
        keep = torch.log(torch.empty(h).uniform_(1, max(t_max - 1, 2), generator=gen))
        rnn.bias_ih_l0[h : 2 * h] = keep
        if net.cell == "lstm":
            rnn.bias_ih_l0[:h] = -keep


def unroll(net: SpanNet, x: Tensor) -> tuple[list[Tensor], Tensor]:
    """The RNN run one step at a time with its own weights: the states h_t (each a graph node, for
    dL/dh_t) and the mean activation of the gate that keeps the state (LSTM f, GRU z; nan: RNN)."""
    rnn = net.rnn
    w_ih, w_hh, b = rnn.weight_ih_l0, rnn.weight_hh_l0, rnn.bias_ih_l0
    b_hh, hid = rnn.bias_hh_l0, rnn.hidden_size
    h = x.new_zeros(x.size(0), hid)
    c, states, keep = h, [], []
    for t in range(x.size(1)):
        gi, gh = x[:, t] @ w_ih.T + b, h @ w_hh.T + b_hh
        if net.cell == "lstm":
            i, f, g, o = (gi + gh).chunk(4, dim=1)
            f = torch.sigmoid(f)
            c = f * c + torch.sigmoid(i) * torch.tanh(g)
            h, gate = torch.sigmoid(o) * torch.tanh(c), f
        elif net.cell == "gru":
            (ri, zi, ni), (rh, zh, nh) = gi.chunk(3, dim=1), gh.chunk(3, dim=1)
            r, gate = torch.sigmoid(ri + rh), torch.sigmoid(zi + zh)
            h = (1 - gate) * torch.tanh(ni + r * nh) + gate * h
        else:
            h, gate = torch.tanh(gi + gh), torch.full_like(h, float("nan"))
        states.append(h)
        keep.append(gate.detach().mean())
    return states, torch.stack(keep).mean()


def probe(net: SpanNet, task: Task, x: Tensor, y: Tensor) -> dict[str, Any]:
    """For every step t the mean over the n sequences of x of ||dL/dh_t||, L the task's loss of the batch:
    their mean loss, so that a sequence's gradient carries a factor 1/n (a scale set by n; the runs probe
    min(PROBE_SEQUENCES, val_size) sequences). And the mean keep-gate activation."""
    with torch.enable_grad():
        states, keep = unroll(net, x)
        out = net.head(torch.stack(states, dim=1))
        loss = task.loss(task.outputs(out), y)
        grads = torch.autograd.grad(loss, states)
    norms = [g.norm(dim=1).mean().item() for g in grads]
    keep_gate = None if net.cell == "rnn" else round(keep.item(), 4)  # JSON has no nan
    return {"grad_norm": [float(f"{v:.4g}") for v in norms], "keep_gate": keep_gate}


def backward(net: SpanNet, task: Task, x: Tensor, y: Tensor, tbptt: int = 0) -> None:
    """Accumulate the gradient of one batch's loss into the parameters' `.grad`.

    tbptt 0: back-propagation through all steps. tbptt K > 0: truncated BPTT, chunks of K steps by the
    rule training uses (objective.chunks: from the first step, the last chunk the remainder); the
    state is carried from chunk to chunk, its gradient cut, and each chunk's loss terms are
    back-propagated through that chunk alone. A chunk holding no loss term (recall, adding: all but
    the last) runs without a graph. K >= the sequence length is one chunk: full BPTT, the same ops.
    """
    state, length = None, x.size(1)
    for t0, t1 in chunks(length, tbptt):
        has_loss = task.name == "copy" or t1 == length
        with torch.set_grad_enabled(has_loss):
            h, state = run_rnn(net.rnn, x[:, t0:t1], state)
        if has_loss:
            task.chunk_loss(net.head(h), y, t0, t1, length).backward()  # type: ignore[union-attr]
        state = tuple(v.detach() for v in state) if isinstance(state, tuple) else state.detach()


def count_for(cell: str, hidden: int, task: Task) -> int:
    return count_parameters(SpanNet(cell, hidden, task, device="meta"))


def matched_hidden(cells: Sequence[str], task: Task) -> dict[str, int]:
    """Per cell, the hidden size in [1, 8 * hidden) whose parameter count is closest to the budget LSTM's
    (the smaller on a tie). The count grows with the size: a bisection, not a count of every size."""
    budget, sizes = count_for("lstm", task.s.hidden, task), range(1, 8 * task.s.hidden)
    found = {}
    for c in cells:
        above = bisect_left(sizes, budget, key=lambda h: count_for(c, h, task))  # the first size >= budget
        near = sizes[max(above - 1, 0) : above + 1]
        found[c] = min(near, key=lambda h: abs(count_for(c, h, task) - budget))
    return found


@torch.no_grad()
def _score(net: SpanNet, task: Task, x: Tensor, y: Tensor, chunk: int = SCORE_CHUNK) -> float:
    """The task's score of the network's predictions for sequences x, run `chunk` sequences at a time."""
    return task.score(torch.cat([task.outputs(net(x[i : i + chunk])) for i in range(0, len(x), chunk)]), y)


def train_one(task: Task, cell: str, hidden: int, seed: int, threads: int = 1) -> dict[str, Any]:
    """Train one cell on one task at one delay within the update budget; its row of the results."""
    torch.set_num_threads(threads)
    s, start, cpu_start = task.s, time.monotonic(), time.process_time()
    torch.manual_seed(seed)
    net = SpanNet(cell, hidden, task)
    initialise(net, s, s.chrono_tmax or task.length, torch.Generator().manual_seed(seed))
    opt = torch.optim.Adam(net.parameters(), lr=s.lr)
    streams = stream_seeds(seed, task.delay)  # the training stream: the same for every cell
    data = torch.Generator().manual_seed(streams["training"])
    val_x, val_y = task.batch(torch.Generator().manual_seed(streams["validation"]), s.val_size)
    probe_x, probe_y = task.batch(torch.Generator().manual_seed(streams["probe"]), min(PROBE_SEQUENCES, s.val_size))
    probes, step, val = [{"step": 0, **probe(net, task, probe_x, probe_y)}], 0, task.baseline()
    curve = []  # (update, validation score): the learning curve
    while step < s.steps and not task.solved(val):
        x, y = task.batch(data, s.batch_size)
        opt.zero_grad(set_to_none=True)
        backward(net, task, x, y, s.tbptt)
        if s.clip_norm:
            nn.utils.clip_grad_norm_(net.parameters(), s.clip_norm)
        opt.step()
        step += 1
        if step % s.eval_every == 0 or step == s.steps:
            val = _score(net, task, val_x, val_y)
            curve.append([step, round(val, 5)])
        if step == s.steps // 2:
            probes.append({"step": step, **probe(net, task, probe_x, probe_y)})
    if probes[-1]["step"] != step:
        probes.append({"step": step, **probe(net, task, probe_x, probe_y)})
    test_x, test_y = task.batch(torch.Generator().manual_seed(streams["test"]), s.test_size)
    score = _score(net, task, test_x, test_y)
    return {
        "task": task.name, "cell": cell, "delay": task.delay, "score": round(score, 5),
        "metric": "mse" if task.name == "adding" else "accuracy", "solved": task.solved(score),
        "params": count_parameters(net), "hidden": hidden, "steps": step, "lr": s.lr,
        "init": s.init if cell != "rnn" else "default", "tbptt": s.tbptt, "seed": seed,
        "seconds": round(time.monotonic() - start, 1), "cpu_seconds": round(time.process_time() - cpu_start, 1),
        "probes": probes, "curve": curve,
    }  # fmt: skip


def sweep(task_name: str, cell: str, delays: Sequence[int], s: SpanSettings, seed: int, threads: int = 1) -> list:
    """Rows of one cell on one task, delays in increasing order until the first unsolved one. A
    delay not solved at `s.lr` is trained again at each of `s.retry_lrs` until one solves it; the
    row kept is the solved one (or the best score), with every attempt's lr, score and time."""
    rows = []
    for delay in sorted(set(delays)):  # a delay given twice is trained once
        task = Task(task_name, delay, s)
        hidden = matched_hidden([cell], task)[cell]
        tries: list[dict[str, Any]] = []
        for lr in s.lrs:
            if tries and tries[-1]["solved"]:
                break
            tries.append(_logged(train_one(Task(task_name, delay, replace(s, lr=lr)), cell, hidden, seed, threads)))
        sign = -1 if task_name == "adding" else 1
        best = max(tries, key=lambda r: (r["solved"], sign * r["score"]))
        keys = ("lr", "score", "seconds", "cpu_seconds")
        attempts = [{k: r[k] for k in keys if k in r} for r in tries]
        rows.append({**best, "attempts": attempts})
        if not best["solved"]:
            break
    return rows


def _largest(rows: list[dict[str, Any]]) -> int | None:
    solved = [r["delay"] for r in rows if r["solved"]]
    return max(solved) if solved else None


def run_memory_span(  # noqa: PLR0913 -- the command's settings, each its own flag
    out_dir: str | Path,
    tasks: Sequence[str] = DEFAULT_TASKS,
    cells: Sequence[str] = CELLS,
    delays: Sequence[int] | None = None,
    quick: bool = False,
    seed: int = 1234,
    settings: SpanSettings | None = None,
    workers: int | None = None,
    given: Collection[str] | None = None,
    overwrite: bool = False,
) -> MemorySpanResult:
    """Sweep every task and cell, `s.seeds` times (seeds `seed`, `seed` + 1, ...); write
    memory_span.{json,csv}, memory_span.png and gradient_flow.png.

    `quick` is a < 1 minute smoke run (tiny model, delays 2 and 8, one seed). `workers` parallel
    processes (default: one per CPU core, at most 2; 1 in quick mode), each running whole sweeps on
    one thread. `given`: the settings fields set by flags, so that one given at its default is refused
    where the run would ignore it too (None: the fields off their defaults). An `out_dir` that holds a
    result already is refused before any training, unless `overwrite`.
    """
    start, tasks, cells = time.monotonic(), list(dict.fromkeys(tasks)), list(dict.fromkeys(cells))
    delays = sorted(set(delays or (QUICK_DELAYS if quick else DEFAULT_DELAYS)))
    s, out = settings or (QUICK if quick else SpanSettings()), Path(out_dir)
    check_span_run(tasks, cells, delays, s, given)
    check_run(seed, s, workers, out, overwrite, delays)
    new_figure()  # fail now, not after training, when matplotlib is missing
    seeds = [seed + i for i in range(s.seeds)]
    jobs = [(t, c, sd) for sd in seeds for t in tasks for c in sorted(cells, key=CELLS.index, reverse=True)]
    workers = workers or (1 if quick else max(1, min(2, os.cpu_count() or 1)))
    check_memory(tasks, lambda task: matched_hidden(cells, task), max(delays), s, min(workers, len(jobs)))
    make_out(out)
    log.info("memory span: tasks %s, cells %s, delays %s, init %s, tbptt %s, seeds %s, %d workers",
             tasks, cells, delays, s.init, s.tbptt or "off", seeds, workers)  # fmt: skip
    if workers == 1:
        threads = torch.get_num_threads()
        try:
            rows = [row for t, c, sd in jobs for row in sweep(t, c, delays, s, sd)]
        finally:
            torch.set_num_threads(threads)
    else:
        level = logging.INFO if log.isEnabledFor(logging.INFO) else logging.WARNING
        with _huge_pages(), ProcessPoolExecutor(workers, mp_context=get_context("spawn"),
                                                initializer=_log_to_stderr, initargs=(level,)) as pool:  # fmt: skip
            futures = [pool.submit(sweep, t, c, delays, s, sd) for t, c, sd in jobs]
            rows = [row for f in futures for row in f.result()]
    rows.sort(key=lambda r: (tasks.index(r["task"]), cells.index(r["cell"]), r["seed"], r["delay"]))
    spans = {t: {c: [_largest([r for r in rows if (r["task"], r["cell"], r["seed"]) == (t, c, sd)]) for sd in seeds]
                 for c in cells} for t in tasks}  # fmt: skip
    largest = {t: {c: median_span(spans[t][c]) for c in cells} for t in tasks}
    cpu = round(sum(a.get("cpu_seconds", 0.0) for r in rows for a in r.get("attempts", [r])), 1)
    result = MemorySpanResult(rows, largest, s, round(time.monotonic() - start, 1), spans=spans, cpu_seconds=cpu)
    result.files = [*write_result(out, result, seed), plot_memory_span(result, out / "memory_span.png"),
                    plot_gradient_flow(result, out / "gradient_flow.png")]  # fmt: skip
    return result


@contextmanager
def _huge_pages() -> Iterator[None]:
    """Processes started inside get torch's transparent-huge-page allocation (THP_MEM_ALLOC_ENABLE=1,
    read when a process first allocates; a value the user set is kept). Long sequences need buffers of
    tens of MiB per update (the oneDNN LSTM's workspace above all); faulted in 4 KiB at a time they
    made an LSTM update at T = 1,000 1.8 times as slow on the 2-core AMD EPYC (docs/science.md)."""
    before = os.environ.get("THP_MEM_ALLOC_ENABLE")
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
    try:
        yield
    finally:
        if before is None:
            del os.environ["THP_MEM_ALLOC_ENABLE"]


def _log_to_stderr(level: int) -> None:
    """A worker process's log lines go to stderr as the parent's do (spawned workers start bare)."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(LOG_FORMAT, TIME_FORMAT))
    log.addHandler(handler)
    log.setLevel(level)


def _logged(row: dict[str, Any]) -> dict[str, Any]:
    keep = row["probes"][-1]["keep_gate"]
    log.info(
        "%-6s %-4s D=%-4d %s %.4f%s after %d updates, %.0f s%s",
        row["task"], row["cell"], row["delay"], row["metric"], row["score"], " solved" * row["solved"],
        row["steps"], row["seconds"], "" if keep is None else f"; keep gate {keep:.3f}",
    )  # fmt: skip
    return row
