"""The memory tasks of the literature, each a random-sequence generator with its loss and score.

* **recall**: K random symbols, D blanks, a GO token; at GO name the K symbols. Only the
  recurrent state can carry them across the D blanks. Solved: >= 99 % of held-out symbols right
  (chance 1 / alphabet).
* **copy** (Arjovsky, Shah & Bengio 2016): 10 symbols from 1..8, D - 1 blanks, a delimiter, 10
  more blanks; the output is blank everywhere except the last 10 steps, which repeat the symbols.
  The loss covers every step, so a memoryless model that outputs blanks and then guesses reaches
  the baseline 10 ln(8) / (D + 20) nats per step. Solved: >= 99 % of the copied symbols right.
* **adding** (Hochreiter & Schmidhuber 1997; Le, Jaitly & Hinton 2015): D steps of (value in
  U(0, 1), marker); exactly two markers, one in each half; the target is the sum of the two marked
  values, read at the last step (regression). Always answering 1 gives MSE 1/6 = 0.167 (the
  variance of a sum of two uniforms). Solved: held-out MSE <= 0.01 (6 % of that baseline).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

if TYPE_CHECKING:
    from .span_settings import SpanSettings

SOLVED_ACCURACY = 0.99
SOLVED_MSE = 0.01
ADDING_BASELINE = 1 / 6


@dataclass(frozen=True)
class Task:
    """A task at one delay: makes batches, and scores a model's outputs."""

    name: str
    delay: int
    s: SpanSettings

    @property
    def n_in(self) -> int:
        return {"recall": self.s.alphabet + 2, "copy": self.s.alphabet + 2, "adding": 2}[self.name]

    @property
    def n_out(self) -> int:
        return {"recall": self.s.n_symbols * self.s.alphabet, "copy": self.s.alphabet + 1, "adding": 1}[self.name]

    @property
    def length(self) -> int:
        """Sequence length (what chrono initialisation takes as T_max by default)."""
        return {"recall": self.s.n_symbols + self.delay + 1, "copy": self.delay + 2 * self.s.copy_length,
                "adding": self.delay}[self.name]  # fmt: skip

    @property
    def higher_is_better(self) -> bool:
        return self.name != "adding"

    def batch(self, gen: torch.Generator, n: int) -> tuple[Tensor, Tensor]:
        """Inputs (n, length, n_in) and targets: recall (n, K) symbols, copy (n, length) symbols
        (0 = blank), adding (n,) sums."""
        return {"recall": self._recall, "copy": self._copy, "adding": self._adding}[self.name](gen, n)

    def _recall(self, gen: torch.Generator, n: int) -> tuple[Tensor, Tensor]:
        a = self.s.alphabet
        symbols = torch.randint(a, (n, self.s.n_symbols), generator=gen)
        tokens = torch.cat([symbols, torch.full((n, self.delay), a), torch.full((n, 1), a + 1)], dim=1)
        return F.one_hot(tokens, a + 2).float(), symbols

    def _copy(self, gen: torch.Generator, n: int) -> tuple[Tensor, Tensor]:
        a, k = self.s.alphabet, self.s.copy_length  # tokens: 0 blank, 1..a symbols, a + 1 delimiter
        symbols = torch.randint(1, a + 1, (n, k), generator=gen)
        blank = torch.zeros(n, self.delay - 1, dtype=torch.long)
        tokens = torch.cat([symbols, blank, torch.full((n, 1), a + 1), torch.zeros(n, k, dtype=torch.long)], dim=1)
        targets = torch.cat([torch.zeros(n, self.delay + k, dtype=torch.long), symbols], dim=1)
        return F.one_hot(tokens, a + 2).float(), targets

    def _adding(self, gen: torch.Generator, n: int) -> tuple[Tensor, Tensor]:
        d, half = self.delay, self.delay // 2
        values = torch.rand(n, d, generator=gen)
        first = torch.randint(half, (n,), generator=gen)
        second = half + torch.randint(d - half, (n,), generator=gen)
        markers = torch.zeros(n, d)
        markers[torch.arange(n), first] = 1.0
        markers[torch.arange(n), second] = 1.0
        return torch.stack([values, markers], dim=-1), (values * markers).sum(dim=1)

    def outputs(self, head_out: Tensor) -> Tensor:
        """What the read-out layer's outputs (n, length, n_out) predict: recall logits (n, K, A) at
        the last step, copy logits (n, length, A + 1) at every step, adding (n,) at the last step."""
        if self.name == "recall":
            return head_out[:, -1].view(-1, self.s.n_symbols, self.s.alphabet)
        return head_out if self.name == "copy" else head_out[:, -1, 0]

    def loss(self, pred: Tensor, target: Tensor) -> Tensor:
        if self.name == "adding":
            return F.mse_loss(pred, target)
        return F.cross_entropy(pred.flatten(0, 1), target.flatten())

    def chunk_loss(self, head_out: Tensor, target: Tensor, t0: int, t1: int, length: int) -> Tensor | None:
        """The loss terms of steps t0..t1 of a sequence of `length` steps, from those steps' read-out outputs
        (n, t1 - t0, n_out); None where the chunk holds none (recall, adding: the loss is read at the last
        step). Over the chunks of a sequence they add up to `loss` (copy: the per-step cross-entropies
        summed and divided by all steps), so each chunk's share can be back-propagated on its own."""
        if self.name != "copy":
            return self.loss(self.outputs(head_out), target) if t1 == length else None
        return F.cross_entropy(head_out.flatten(0, 1), target[:, t0:t1].flatten(), reduction="sum") / target.numel()

    def score(self, pred: Tensor, target: Tensor) -> float:
        """Held-out accuracy on the symbols to remember (recall, copy) or MSE (adding)."""
        if self.name == "adding":
            return F.mse_loss(pred, target).item()
        if self.name == "copy":
            pred, target = pred[:, -self.s.copy_length :], target[:, -self.s.copy_length :]
        return (pred.argmax(-1) == target).float().mean().item()

    def solved(self, score: float) -> bool:
        return score <= SOLVED_MSE if self.name == "adding" else score >= SOLVED_ACCURACY

    def baseline(self) -> float:
        """The memoryless score: chance accuracy (recall, copy) or always answering 1 (adding)."""
        return ADDING_BASELINE if self.name == "adding" else 1 / self.s.alphabet

    def copy_baseline_loss(self) -> float:
        """Copy: the cross-entropy per step of outputting blanks, then uniform guesses (Arjovsky et al.)."""
        return self.s.copy_length * math.log(self.s.alphabet) / self.length
