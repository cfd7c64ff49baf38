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


def save_figure(fig: Figure, out_png: str | Path) -> Path:
    """Write `fig` as a PNG (creating the folder; whole or not at all: `atomic_write`) and return the path."""
    out = Path(out_png)
    check_output(out, make_folder=True)
    with atomic_write(out, "wb") as f:  # a file object: the format comes from the name's suffix, as savefig(path)
        fig.savefig(f, dpi=120, format=out.suffix.lstrip(".").lower() or "png")
    return out
