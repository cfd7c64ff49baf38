"""The picture of `seq2seq gradflow` (science/gradflow.py measures): ||dL/dx_t|| and ||dL/dh_t|| over time, one line
per model, on log axes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np

from ..tools.figures import CELL_COLORS, new_figure, save_figure

if TYPE_CHECKING:
    from pathlib import Path

Loss = Literal["last", "all"]  # which outputs' loss L is (science/gradflow.py)


def plot_gradient_flow(
    results_per_cell: dict[str, dict[str, list[float]]], out_png: str | Path, title: str = "", loss: Loss = "last"
) -> Path:
    """Two log-scale panels, encoder outputs and decoder states: ||dL/dh_t|| over t, one line per cell.
    With `loss="last"` the decoder's x axis is the distance d to each sentence's EOS (`gradient_flow`),
    drawn decreasing to the right so that the EOS, where L is read, is at the right as in time."""
    fig = new_figure(figsize=(12, 4.6), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    for ax, part, what in zip(
        axes,
        ("encoder", "decoder"),
        ("encoder inputs x_t (source embeddings; attention links each to L)", "decoder hidden states h_t (top layer)"),
    ):
        to_end = part == "decoder" and loss == "last"
        for name, result in results_per_cell.items():
            values = np.asarray(result[part], dtype=float)
            ax.plot(
                np.arange(len(values))[::-1] if to_end else np.arange(len(values)),
                np.where(values > 0, values, np.nan),
                label=name,
                linewidth=1.6,
                color=CELL_COLORS.get(name),
            )
        ax.set_yscale("log")
        ax.set_title(what)
        if to_end:
            ax.invert_xaxis()
            ax.set_xlabel("steps d before each sentence's EOS (where L is read)")
        else:
            ax.set_xlabel("time step t (source position)" if part == "encoder" else "time step t (target position)")
        ax.grid(True, alpha=0.3, which="both")
        ax.legend(title="model")
    axes[0].set_ylabel("mean ||∂L/∂x_t||, ||∂L/∂h_t||  (log scale)")
    fig.suptitle(title or "Gradient flow through time")
    return save_figure(fig, out_png)
