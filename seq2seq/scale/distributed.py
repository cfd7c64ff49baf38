"""Multi-process training on PyTorch's own engine: torchrun's process group and DistributedDataParallel.

`torchrun --nproc_per_node=N -m seq2seq train ...` starts N processes (ranks) with RANK,
WORLD_SIZE, LOCAL_RANK and MASTER_ADDR/PORT set; `setup` joins them into a process group
(gloo on CPU, NCCL on GPUs). Launched plainly, training is a world of one: `Dist()` with no
process group, every method below a no-op, and the single-process code path unchanged.

The contract, decided once here:

* **Data.** Every rank builds the same batch list for an epoch (a function of seed and epoch)
  and update k uses batches kW .. kW+W-1, batch kW+r on rank r: disjoint shards, equal counts
  (the last `len % W` batches of an epoch are left out; the next epoch reshuffles).
* **Gradients** are all-reduced (averaged) by DistributedDataParallel around `TrainingLoss`.
  The loss is a mean per target token over the *whole update*: each rank scales its summed
  loss by W / N, N = target tokens of all W batches (known on every rank without talking,
  since every rank holds the batch list). DDP's average (1/W) sum_r W L_r / N = sum_r L_r / N
  is then exactly the loss of one process training on the union of the W batches.
* **Agreement.** Whatever decides control flow (the summed loss, stop reasons, interrupts,
  validation results) is shared so that every rank takes the same branch; rank 0 alone
  validates, logs and writes files, the others wait for its result.
* **Randomness.** The model is initialised from the seed (and DDP broadcasts rank 0's weights);
  ranks > 0 then reseed, so dropout differs between ranks. last.pt keeps every rank's RNG
  state, so resuming with the same number of processes is exact.
* **Truncated BPTT** back-propagates chunk by chunk inside one update, while DDP all-reduces
  once per forward; it is refused with more than one process (ConfigError), not approximated.
"""

from __future__ import annotations

import logging
import os
import pickle
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import torch
import torch.distributed as dist
from torch import Tensor, nn

from ..config import ConfigError, TrainConfig
from ..errors import HardwareError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

log = logging.getLogger("seq2seq")
T = TypeVar("T")


@dataclass(frozen=True)
class Dist:
    """This process's place in the job: rank `rank` of `world` (a world of one needs no process group)."""

    rank: int = 0
    world: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))  # where collective tensors live
    owns_group: bool = False  # the group was created by `setup` (and is destroyed by `teardown`)

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def sum(self, value: float) -> float:
        """`value` summed over all ranks (the same float on every rank)."""
        if self.world == 1:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return t.item()

    def max(self, value: float) -> float:
        """The largest `value` over all ranks (the same float on every rank)."""
        if self.world == 1:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return t.item()

    def agree(self, *values: str | None) -> tuple[str | None, ...]:
        """For each position, the first non-None value over ranks 0..W-1 (so every rank decides alike)."""
        if self.world == 1:
            return values
        flag = torch.tensor([any(v is not None for v in values)], dtype=torch.int32, device=self.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        if not flag.item():
            return values
        everyone: list[Any] = [None] * self.world
        dist.all_gather_object(everyone, values)
        return tuple(next((v[i] for v in everyone if v[i] is not None), None) for i in range(len(values)))

    def gather(self, obj: T) -> list[T]:
        """`obj` of every rank, in rank order (on every rank)."""
        if self.world == 1:
            return [obj]
        everyone: list[Any] = [None] * self.world
        dist.all_gather_object(everyone, obj)
        return everyone

    def on_main(self, fn: Callable[[], T]) -> T:
        """Run `fn` on rank 0 only; every rank returns its result (or raises its exception)."""
        if self.world == 1:
            return fn()
        box: list[Any] = [None, None]
        if self.main:
            try:
                box[0] = fn()
            except Exception as err:  # handed to the other ranks, then raised everywhere
                box[1] = err if _picklable(err) else RuntimeError(f"rank 0: {type(err).__name__}: {err}")
        dist.broadcast_object_list(box, src=0, device=self.device)
        if box[1] is not None:
            if not self.main:  # rank 0 reports it; the others exit with its status, silently (cli.main)
                box[1].reported_by_rank0 = True
            raise box[1]
        return box[0]

    @contextmanager
    def alike(self) -> Iterator[None]:
        """Around a check every rank makes on the same inputs: its error, raised on every rank alike, is
        printed by rank 0 alone (the others exit with its status, silently: cli.main)."""
        try:
            yield
        except Exception as err:
            if not self.main:
                err.reported_by_rank0 = True  # type: ignore[attr-defined]
            raise

    def main_first(self, fn: Callable[[], T]) -> T:
        """Run `fn` on rank 0, then on the others (rank 0 writes what they then only read)."""
        result = self.on_main(fn)
        return result if self.main else fn()


def _picklable(obj: object) -> bool:
    try:
        pickle.dumps(obj)
    except Exception:
        return False
    return True


def setup(device: str | torch.device) -> tuple[Dist, torch.device]:
    """Join torchrun's process group if this process was launched by torchrun; else a world of one.

    Under torchrun `--device cuda` means `cuda:LOCAL_RANK` (one GPU per process, NCCL); on CPU
    the gloo backend is used. A process group the caller already set up is used as it is.
    """
    dev = torch.device(device)
    owns = False
    if not (dist.is_available() and dist.is_initialized()):
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
            return Dist(), dev
        needed = ("RANK", "MASTER_ADDR", "MASTER_PORT") + (
            ("LOCAL_RANK",) if dev.type == "cuda" else ()
        )  # gloo: no GPU
        if missing := [k for k in needed if k not in os.environ]:
            raise ConfigError(f"WORLD_SIZE={os.environ['WORLD_SIZE']} without {', '.join(missing)}: start "
                              "several processes with torchrun (docs/scaling.md), or unset WORLD_SIZE")  # fmt: skip
        if dev.type == "cuda":
            if dev.index is not None:
                raise ConfigError(f"under torchrun pass --device cuda, not {dev}: each process takes cuda:LOCAL_RANK")
            local, gpus = int(os.environ["LOCAL_RANK"]), torch.cuda.device_count()
            if local >= gpus:
                raise HardwareError(f"process {local} of this machine needs cuda:{local}, and it has {gpus} "
                                    "CUDA GPU(s): start at most that many per machine (--nproc_per_node)")  # fmt: skip
            dev = torch.device("cuda", local)
            torch.cuda.set_device(dev)
        # Rank 0 validates alone while the others wait in a collective: allow for long validations.
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo", timeout=timedelta(hours=2))
        owns = True
    elif dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", str(dist.get_rank() % torch.cuda.device_count()))))
        torch.cuda.set_device(dev)
    nccl = dist.get_backend() == "nccl"
    d = Dist(dist.get_rank(), dist.get_world_size(), dev if nccl else torch.device("cpu"), owns)
    if not d.main:
        log.setLevel(logging.WARNING)  # one process reports progress
    return d, dev


def teardown(d: Dist, failed: bool = False) -> None:
    """Leave the process group. After an error (`failed`) a rank leaves at once, without the barrier: the
    others may be waiting in a collective it will never join, and its exit is what makes torchrun stop
    them (waiting for them at the barrier hung the job, silently, for the group's 2-hour timeout)."""
    if d.owns_group and dist.is_initialized() and not failed:
        dist.barrier()  # no rank tears gloo down while another still talks to it (seen: abort at exit)
        dist.destroy_process_group()


def check_same_choices(d: Dist, precision: Callable[[], str], shape_buckets: str) -> None:
    """Every process must train in the same precision with the same batch shapes (each decides from its own
    hardware: machines that differ would train alike only by chance, and build other batch lists). `precision`
    gives this process's (or raises a HardwareError): what each process chose, or why it cannot, is shared
    before any refusal, so that no process waits for one that stopped."""
    try:
        mine: tuple[str | None, str, str | None] = (precision(), shape_buckets, None)
    except HardwareError as err:
        mine = (None, shape_buckets, str(err))
    everyone = d.gather(mine)
    with d.alike():
        if cannot := next(((r, e) for r, (_, _, e) in enumerate(everyone) if e), None):
            where = f"process {cannot[0]}: " if d.world > 1 else ""
            raise HardwareError(f"{where}{cannot[1]}")
        if len({(p, b) for p, b, _ in everyone}) > 1:
            chosen = enumerate(everyone)
            which = "; ".join(f"process {r}: precision {p}, shape buckets {b}" for r, (p, b, _) in chosen)
            raise HardwareError(
                f"the processes chose different settings for their hardware ({which}): "
                "give --precision and --shape-buckets explicitly (values every machine runs)"
            )


def check(cfg: TrainConfig, d: Dist) -> None:
    """Refuse what multi-process training does not do."""
    if d.world > 1 and cfg.tbptt:
        raise ConfigError(
            f"--tbptt {cfg.tbptt} with {d.world} processes: truncated BPTT back-propagates every chunk inside one "
            "update, but DistributedDataParallel all-reduces gradients once per forward; use --tbptt 0 "
            "(multi-process) or train in one process"
        )


def wrap(module: nn.Module, d: Dist, device: torch.device) -> nn.Module:
    """`module` under DistributedDataParallel in a world of several processes, else unchanged."""
    if d.world == 1:
        return module
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=ids)  # the model has no buffers to sync


def reseed(seed: int, d: Dist) -> None:
    """Give every rank but 0 its own random stream (dropout, scheduled sampling); rank 0 keeps the seed's."""
    if d.rank:
        torch.manual_seed(seed + 1_000_003 * d.rank)


def rng_state(device: torch.device) -> dict[str, Tensor]:
    """This process's random state (CPU, and the GPU's when training on one)."""
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, Tensor], device: torch.device) -> None:
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def update_tokens(tgt_lens: Any, batches: list[Any]) -> int:
    """Real target tokens (+ EOS) of the batches of one update: the loss normaliser, equal on every rank."""
    return sum(int(tgt_lens[idx].sum()) + len(idx) for idx in batches)
