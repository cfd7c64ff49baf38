"""Pictures of a run: training curves from metrics.jsonl and attention maps of a checkpoint
(`seq2seq plot`, `seq2seq attention`). matplotlib is optional: figures.py imports it on first use.
"""

from __future__ import annotations

import json
import logging
import math
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import PlotError, RunFolderError  # PlotError: defined in errors.py, re-exported here
from .figures import check_figure_output, new_figure, save_figure

if TYPE_CHECKING:
    from collections.abc import Sequence


log = logging.getLogger("seq2seq")


NOT_FINITE, NOT_POSITIVE = "not finite: a diverged run?", "0 or below: no place on a log axis"


def _series(
    records: list[dict[str, Any]], key: str, left_out: dict[str, dict[str, list[int]]] | None = None,
    log_axis: bool = False,
) -> tuple[list[int], list[float]]:  # fmt: skip
    """The (steps, values) of `key` in `records`: finite values only (a diverged run's Infinity or NaN loss,
    which no axis can hold), and on a `log_axis` positive ones only (a gradient norm of 0); the steps of
    those left out added to `left_out[reason][key]`."""
    pairs = [(r["step"], r[key]) for r in records if r.get(key) is not None]
    for reason, bad in ((NOT_FINITE, lambda v: not math.isfinite(v)), (NOT_POSITIVE, lambda v: log_axis and v <= 0)):
        if left_out is not None and (steps := [s for s, v in pairs if bad(v)]):
            left_out.setdefault(reason, {}).setdefault(key, []).extend(steps)
    pairs = [(s, v) for s, v in pairs if math.isfinite(v) and (v > 0 or not log_axis)]
    return [s for s, _ in pairs], [v for _, v in pairs]


def _left_out(left_out: dict[str, dict[str, list[int]]]) -> str:
    """`loss at steps 10, 30; val_loss at step 40 (not finite: ...); grad_norm at step 5 (0 or below: ...)`."""
    return "; ".join(
        "; ".join(f"{key} at step{'s' * (len(s) > 1)} {', '.join(map(str, s[:5]))}{' ...' * (len(s) > 5)}"
                  for key, s in per_key.items()) + f" ({reason})"
        for reason in (NOT_FINITE, NOT_POSITIVE) if (per_key := left_out.get(reason))
    )  # fmt: skip


def flat_limits(values: Sequence[float]) -> tuple[float, float] | None:
    """The y-range of a curve that is constant up to float rounding: from 0 to twice its value (-1
    to 1 for 0); None for a curve that changes (matplotlib's own range then)."""
    low, high = min(values), max(values)
    if high - low > 1e-6 * max(abs(low), abs(high)):
        return None
    twice = 2 * high if math.isfinite(2 * high) else high  # 1e308: its double is no axis limit
    return (min(0.0, twice), max(0.0, twice)) if high else (-1.0, 1.0)


def _curve(
    run: Path, name: str, title: str, ylabel: str, lines: list[tuple[str, list[int], list[float], str]], log_y: bool
) -> Path | None:
    """One PNG of `lines` (label, steps, values, style) over training steps; None when all are empty."""
    lines = [line for line in lines if line[1]]
    if not lines:
        return None
    fig = new_figure(figsize=(7, 4.2), layout="constrained")
    from matplotlib.ticker import MaxNLocator  # after new_figure, which imports matplotlib (optional)

    ax = fig.add_subplot()
    for label, steps, values, style in lines:
        if len(steps) == 1 and "o" not in style:
            style = "o" + style  # a single point: a line alone would draw nothing
        ax.plot(steps, values, style, label=label, markersize=4, linewidth=1.4)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 5, 10]))  # updates: no 11.4, 11.6 ... ticks
    if len(seen := {step for line in lines for step in line[1]}) == 1:
        ax.set_xlim(0, 2 * max(seen.pop(), 1))  # one step logged (a short run): from 0, not zoomed onto it
    if log_y:
        ax.set_yscale("log")
    elif flat := flat_limits([v for line in lines for v in line[2]]):
        ax.set_ylim(*flat)  # a constant (a learning rate): not an axis zoomed onto float rounding (1e-3 + 1e-19)
    ax.set_title(f"{title} — {run.resolve().name}")
    ax.set_xlabel("training step (updates)")
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3, which="both")
    ax.legend()
    return save_figure(fig, run / name)


def _train_config(path: Path) -> dict[str, Any]:
    """The [train] settings of a run's config.json that the plots label ({} without the file); a file that
    is not JSON, or a setting of the wrong type, is a RunFolderError naming the file and the field."""
    if not path.is_file():
        return {}
    try:
        cfg = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        raise RunFolderError(f"{path}: not UTF-8 text") from None
    except json.JSONDecodeError as err:
        raise RunFolderError(f"{path}:{err.lineno}: not JSON ({err.msg})") from None
    if not isinstance(cfg, dict):
        raise RunFolderError(f"{path}: a JSON {type(cfg).__name__}, not an object of settings")
    train = cfg.get("train", {})
    if not isinstance(train, dict):
        raise RunFolderError(f"{path}: train is {train!r}, not an object of settings")
    for key in ("label_smoothing", "clip_norm"):
        value = train.get(key, 0.0)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise RunFolderError(f"{path}: train.{key} is {value!r}, not a number")
    return train


def plot_run(run_dir: str | Path) -> list[Path]:
    """Training-curve PNGs in RUN from RUN/metrics.jsonl: loss, BLEU, learning rate, gradient norm."""
    run = Path(run_dir)
    from ..runfiles import read_metrics  # imports torch (checkpoints): not for `seq2seq --help`

    if not (run / "metrics.jsonl").is_file():
        raise PlotError(f"{run / 'metrics.jsonl'}: no such file (is this a run folder written by `seq2seq train`?)")
    recs = read_metrics(run / "metrics.jsonl")
    train, valid = recs.get("train", []), recs.get("valid", [])
    if not train and not valid:
        raise PlotError(f"{run / 'metrics.jsonl'}: no train or valid records to plot yet")
    train_cfg = _train_config(run / "config.json")
    smoothing = train_cfg.get("label_smoothing", 0.0)
    train_label = "train (mean since last log" + (f", label smoothing {smoothing})" if smoothing else ")")
    val_label = "validation (no label smoothing)" if smoothing else "validation"
    clip = train_cfg.get("clip_norm", 0.0)
    left_out: dict[str, dict[str, list[int]]] = {}  # values no axis holds: drawn without them, and said so
    grad_steps, grad_norms = _series(train, "grad_norm", left_out, log_axis=True)
    grad_lines = [("pre-clip global norm", grad_steps, grad_norms, "-")]
    if clip and grad_steps:
        grad_lines.append((f"clip_norm = {clip:g}", [grad_steps[0], grad_steps[-1]], [clip, clip], "k--"))
    made = [
        _curve(
            run, "loss.png", "Cross-entropy per target token", "loss (nats / token)",
            [(train_label, *_series(train, "loss", left_out), "-"),
             (val_label, *_series(valid, "val_loss", left_out), "o-")],
            log_y=False,
        ),
        _curve(run, "bleu.png", "Validation BLEU (greedy)", "BLEU",
               [("validation", *_series(valid, "val_bleu", left_out), "o-")], log_y=False),
        _curve(run, "lr.png", "Learning rate", "learning rate", [("lr", *_series(train or valid, "lr", left_out), "-")],
               log_y=False),
        _curve(run, "grad_norm.png", "Gradient norm before clipping", "global L2 norm (log scale)", grad_lines,
               log_y=True),
    ]  # fmt: skip
    if left_out:
        log.warning("%s: values left out of the plots: %s", run / "metrics.jsonl", _left_out(left_out))
    return [p for p in made if p is not None]


WORD_START, JOINS = "\u2581", "\u00b7"  # SentencePiece's word-start mark; the label of a piece inside a word


def piece_labels(pieces: Sequence[str]) -> tuple[list[str], list[int]]:
    """Axis labels for SentencePiece `pieces`, and the positions where a new word starts (after the
    first): the word-start mark is dropped (fonts draw it as a bar or a box), a piece that continues
    a word gets a leading middle dot (`Spiel`, `\u00b7haus`); a special piece (`</s>`) stands alone."""
    labels, starts = [], []
    for i, piece in enumerate(pieces):
        special = len(piece) > 2 and piece[0] == "<" and piece[-1] == ">"
        if piece.startswith(WORD_START) or special:
            labels.append(piece.lstrip(WORD_START) or JOINS)  # a bare word-start piece: the dot
            starts += [i] if i else []
        else:
            labels.append(JOINS + piece if i else piece)
    return labels, starts


MAX_INCHES = 30.0  # an attention figure's largest side (3,600 px at 120 dpi), however long the sentence
MAX_LABELS = 90  # piece labels per axis that fit those inches; a longer axis labels every k-th piece


def _axis(n: int, per: float, base: float) -> tuple[float, int]:
    """Inches for an axis of `n` pieces (`per` each beside `base`, at most MAX_INCHES) and its label stride."""
    return min(MAX_INCHES, base + per * n), -(-n // MAX_LABELS)


def plot_attention(
    weights: Any, src_pieces: Sequence[str], tgt_pieces: Sequence[str], out_png: str | Path, title: str = ""
) -> Path:
    """Heatmap of attention `weights` (T, S): output pieces down, source pieces across. A long sentence
    keeps the figure within MAX_INCHES a side: every k-th piece labelled, the word lines left out."""
    w = np.asarray(weights.detach().cpu().float() if hasattr(weights, "detach") else weights, dtype=float)
    if w.ndim != 2 or w.shape != (len(tgt_pieces), len(src_pieces)):
        raise PlotError(
            f"attention weights of shape {w.shape} do not match "
            f"{len(tgt_pieces)} output x {len(src_pieces)} source pieces"
        )
    (width, x_every), (height, y_every) = _axis(len(src_pieces), 0.32, 2.5), _axis(len(tgt_pieces), 0.3, 2.2)
    width = max(6.0, width)
    title_lines = textwrap.wrap(title or "attention weights", width=int(width * 11))
    fig = new_figure(figsize=(width, min(MAX_INCHES, height + 0.2 * len(title_lines))), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(w, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto", interpolation="nearest")
    (src_labels, src_words), (tgt_labels, tgt_words) = piece_labels(src_pieces), piece_labels(tgt_pieces)
    ax.set_xticks(range(0, len(src_pieces), x_every), src_labels[::x_every], rotation=90)
    ax.set_yticks(range(0, len(tgt_pieces), y_every), tgt_labels[::y_every])
    for x in src_words if x_every == 1 else ():  # a thin line before each word: its pieces sit between two
        ax.axvline(x - 0.5, color="white", linewidth=0.8, alpha=0.7)
    for y in tgt_words if y_every == 1 else ():
        ax.axhline(y - 0.5, color="white", linewidth=0.8, alpha=0.7)
    ax.set_xlabel(f"source words (SentencePiece pieces; {JOINS} joins the pieces of a word)")
    ax.set_ylabel("output words (pieces)")
    ax.set_title("\n".join(title_lines), fontsize=10)
    fig.colorbar(image, ax=ax, label="attention weight", shrink=0.8)
    return save_figure(fig, out_png)


def attention_map(
    checkpoint: str | Path, sentence: str, out_png: str | Path, beam_size: int | None = None, device: str = "cpu"
) -> tuple[str, Path]:
    """Translate one sentence and plot where each output piece attended; returns (translation, png).
    `beam_size`: None, DecodeConfig's default (the beam `seq2seq translate` searches with); 1: greedy."""
    from ..config import DecodeConfig
    from ..text import clean
    from ..translation.hub import model_file
    from ..translation.torch_engine import Translator

    # before loading the model: matplotlib missing, a path that cannot be written, a suffix no figure format has
    check_figure_output(out_png, inputs=[checkpoint])
    translator = Translator.from_checkpoint(model_file(checkpoint), device=device)  # hf://: downloaded
    cfg = DecodeConfig() if beam_size is None else DecodeConfig(beam_size=beam_size)
    nbest = translator.translate_nbest([sentence], cfg, keep_attention=True)[0]
    if not nbest:
        raise PlotError("the sentence is empty: nothing to translate")
    text, hyp = nbest[0]
    src_ids = translator.src_tok.encode([clean(sentence)])[0][: cfg.max_src_len]
    src_pieces = [*translator.src_tok.pieces(src_ids), "</s>"]
    tgt_pieces = [*translator.tgt_tok.pieces(hyp.ids), "</s>"]
    search = "greedy" if cfg.beam_size == 1 else f"beam {cfg.beam_size}"
    title = f"Attention of {Path(checkpoint).name} ({search}): {text}"
    return text, plot_attention(hyp.attention, src_pieces, tgt_pieces, out_png, title=title)
