"""What every figure of the toolkit shares: a matplotlib Figure that needs no display, its PNG
written whole, one colour per cell type. Used by tools/plots.py and by the science (science/ imports
tools/figures.py; tools/ never imports science/).

matplotlib is optional (`pip install 'seq2seq-nmt[plot]'`): it is imported only when a figure is
made, through `new_figure`, which draws with the file-only Agg canvas and never touches
pyplot's global backend (so a notebook's inline plots keep working).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..atomic import atomic_write, check_output
from ..errors import PlotError

if TYPE_CHECKING:
    from collections.abc import Iterable

    from matplotlib.figure import Figure

INSTALL_HINT = "pip install 'seq2seq-nmt[plot]'"
CELL_COLORS = {"rnn": "C0", "gru": "C1", "lstm": "C2"}  # the same colour for a cell type in every figure


def new_figure(**kwargs: Any) -> Figure:
    """A matplotlib Figure on an Agg canvas; PlotError with the install hint when matplotlib is missing."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as err:
        raise PlotError(f"plots need matplotlib ({err}); install it with: {INSTALL_HINT}") from None
    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig


def check_figure_output(out: str | Path, inputs: Iterable[str | Path | None] = ()) -> Path:
    """Refuse, before any work, a figure file that cannot be written (`check_output`, the folder created)
    or whose suffix names no format matplotlib writes (`--out a.txt`); no suffix: a PNG. matplotlib
    missing is a PlotError with the install hint."""
    out = Path(out)
    check_output(out, inputs, make_folder=True)
    kind = out.suffix.lstrip(".").lower()
    formats = new_figure().canvas.get_supported_filetypes()
    if kind and kind not in formats:
        raise PlotError(f"cannot write {out}: a figure is written as one of {', '.join(sorted(formats))} (its "
                        f"suffix), not {kind}")  # fmt: skip
    return out


def save_figure(fig: Figure, out_png: str | Path) -> Path:
    """Write `fig` as a PNG (creating the folder; whole or not at all: `atomic_write`) and return the path."""
    out = check_figure_output(out_png)
    with atomic_write(out, "wb") as f:  # a file object: the format comes from the name's suffix, as savefig(path)
        fig.savefig(f, dpi=120, format=out.suffix.lstrip(".").lower() or "png")
    return out
