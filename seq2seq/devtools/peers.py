"""The peer's figures for the benchmark (`benchmark.py`, `side_by_side.py`): a peers.json as
../shared/peers/run.sh writes it, the entry measured on a machine like this one (same CPU model, capability,
native bf16), and our figures' ratios against it, each only where the two are like for like."""

from __future__ import annotations

import datetime
import json
import re
from typing import TYPE_CHECKING, Any, NamedTuple

import torch

from ..config import ModelConfig
from ..machine.hardware import cpu_bf16, cpu_model, usable_cores

if TYPE_CHECKING:
    from pathlib import Path

PEER_KEYS = {  # our key -> (peers.json key, higher is better); the peer trains in fp32 only
    "train_tgt_tok_s_fp32": ("train_tgt_tok_s", True),
    "train_tgt_tok_s_bf16": ("train_tgt_tok_s", True),
    "train_peak_rss_mb": ("train_peak_rss_mb", False),
    "translate_wall_s_beam5": ("translate_wall_s_beam5", False),
    "translate_wall_s_greedy": ("translate_wall_s_greedy", False),
    "translate_wall_s_beam5_bf16": ("translate_wall_s_beam5", False),
    "translate_wall_s_greedy_onnx": ("translate_wall_s_greedy", False),
    "translate_wall_s_beam5_onnx": ("translate_wall_s_beam5", False),
    "translate_wall_s_greedy_onnx_int8": ("translate_wall_s_greedy", False),
    "translate_wall_s_beam5_onnx_int8": ("translate_wall_s_beam5", False),
}


PEERS_HINT = "run ../shared/peers/run.sh here"
# the machine line ../shared/peers/run.sh writes: "2 cores MODEL, CAPABILITY + native bf16, 2 threads, DATE";
# its "2 cores" is `nproc` under the script's OMP_NUM_THREADS=2, which nproc obeys: 2 on any machine
_PEER_MACHINE = re.compile(
    r"^\d+ cores (?P<model>.+), (?P<cap>\w+)(?P<bf16> \+ native bf16|, no native bf16), .*?(?P<date>\d{4}-\d\d-\d\d)?$"
)
PEER_TRAIN_SECONDS = 900  # a peer run this long or longer: its first minutes are its warm-up, not its speed
# OpenNMT-py's matched setup (../shared/peers/configs/onmt_lstm.yaml, ../shared/PEERS.md): input feeding
# (input_feed 1), embeddings not tied, one joint 8k SentencePiece model whose pieces seen in train are its
# vocabularies (de 5,481, en 3,960); fp32 training
PEER_MODEL = ModelConfig(input_feeding=True, tie_embeddings=False)
PEER_VOCAB = (5481, 3960)


class PeerMachine(NamedTuple):
    """What makes two machines' figures comparable: the same CPU model, capability and native bf16, and the
    same number of usable cores where both are known (a peers entry's `cores`; run.sh's files do not say it:
    the count in their machine line is its thread count, `_PEER_MACHINE`)."""

    cpu_model: str | None
    cpu_capability: str
    bf16: bool
    cores: int | None = None

    def like(self, other: PeerMachine) -> bool:
        same_cores = self.cores is None or other.cores is None or self.cores == other.cores
        return self[:3] == other[:3] and same_cores


def this_machine() -> PeerMachine:
    return PeerMachine(cpu_model(), torch.backends.cpu.get_cpu_capability(), cpu_bf16().native, usable_cores())


def _peer_machine(entry: dict[str, Any]) -> PeerMachine | None:
    """The identity of a peers.json `machines` entry (None: its machine line does not say the CPU model)."""
    found = _PEER_MACHINE.match(entry.get("machine", ""))
    model = entry.get("cpu_model") or (found["model"] if found else None)
    if model is None or "cpu_capability" not in entry or "bf16" not in entry:
        return None
    cores = entry.get("cores")
    return PeerMachine(model, entry["cpu_capability"], bool(entry["bf16"]), int(cores) if cores else None)


def peer_date(entry: dict[str, Any], today: datetime.date | None = None) -> dict[str, Any]:
    """When a peers.json entry was measured: its `date` field, else the date its machine line ends with,
    and its age in days (today's UTC date); {} where it says neither."""
    found = _PEER_MACHINE.match(entry.get("machine", ""))
    date = entry.get("date") or (found["date"] if found else None)
    try:
        day = datetime.date.fromisoformat(str(date))
    except ValueError:
        return {}
    today = today or datetime.datetime.now(datetime.timezone.utc).date()
    return {"peers_date": day.isoformat(), "peers_age_days": (today - day).days}


def read_peers(peers_file: Path) -> list[dict[str, Any]]:
    """The `machines` entries of a peers.json; a file that cannot be read, or is not one, is a ConfigError naming it."""
    from ..config import ConfigError
    from ..text import read_capped

    try:
        data = json.loads(read_capped(peers_file, 16 << 20, ConfigError, "peers file", "--peers").decode("utf-8"))
    except OSError as err:
        raise ConfigError(f"--peers {peers_file}: cannot read it ({err.strerror})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"--peers {peers_file}: not UTF-8 text (a peers.json is JSON)") from None
    except json.JSONDecodeError as err:
        raise ConfigError(f"--peers {peers_file}:{err.lineno}: not JSON ({err.msg})") from None
    entries = data.get("machines", []) if isinstance(data, dict) else None
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ConfigError(f"--peers {peers_file}: not a peers.json (an object whose machines are a list of objects)")
    return entries


def peers_for_this_machine(peers_file: Path, here: PeerMachine | None = None) -> tuple[str, dict[str, Any] | None]:
    """(description, entry) of the peers.json `machines` entry measured on a machine like this one
    (same CPU model, capability and native bf16, and cores where it says), else (why not, None):
    a ratio against figures from another machine would divide two different CPUs' speeds."""
    here = here or this_machine()
    entries = read_peers(peers_file)
    for entry in entries:
        there = _peer_machine(entry)
        if there is not None and there.like(here):
            return entry["machine"], entry
    elsewhere = "; ".join(e.get("machine", "an unnamed machine") for e in entries) or f"nowhere ({peers_file} is empty)"
    return f"peer figures are from {elsewhere}; {PEERS_HINT}", None


def _skip_reason(key: str, figures: dict[str, Any], own_model: bool) -> str | None:
    """Why our `key` is not compared with a peer's `figures` (None: it is)."""
    if key.startswith("train_"):
        seconds = figures.get("train_seconds")
        if not isinstance(seconds, (int, float)) or seconds < PEER_TRAIN_SECONDS:
            trained = "does not say how long it trained" if seconds is None else f"trained {seconds} s"
            return (f"the peer entry {trained}: training ratios need a run of {PEER_TRAIN_SECONDS} s or more "
                    "(bash ../shared/peers/run.sh), not the first minutes of its warm-up")  # fmt: skip
    if key.startswith("translate_") and own_model:
        return ("translated with the benchmark's own model of a few minutes, not a 15-minute one like the "
                "peer's: translation ratios need --checkpoint (a 15-minute model)")  # fmt: skip
    return None


def peer_ratios(result: dict[str, Any], peers_file: Path | None, quick: bool, own_model: bool) -> dict[str, Any]:
    """`ratios_vs_peers` (and `peers_machine`, `peers_date`, `peers_age_days`) for the benchmark's JSON: ratios
    against a peer measured on a machine like this one, else {"skipped": why}; never a ratio across machines,
    and none of a figure the peer's run does not match (`_skip_reason`): training against a short peer run,
    translation of the benchmark's own model (`own_model`)."""
    if peers_file is None:
        return {"ratios_vs_peers": {"skipped": f"no peers file: {PEERS_HINT}"}}
    machine, entry = peers_for_this_machine(peers_file)
    if entry is None:
        return {"ratios_vs_peers": {"skipped": machine}}
    found = {"peers_machine": machine} | peer_date(entry)
    if quick:  # 200 sentences and short windows: not the peers' measurement
        return found | {"ratios_vs_peers": {"skipped": "--quick figures are not comparable"}}
    return found | {"ratios_vs_peers": compare(result, entry["peers"], own_model)}


def compare(result: dict[str, Any], peers: dict[str, dict[str, Any]], own_model: bool = False) -> dict[str, Any]:
    """Our figure divided by each peer's, oriented so that > 1 means we are better; {"skipped": why} in its
    place where ours was not measured ({"skipped": ...} in `result`) or `_skip_reason` gives one."""
    ratios: dict[str, dict[str, Any]] = {}
    for key, (peer_key, higher) in PEER_KEYS.items():
        if key not in result:
            continue
        ours, ratios[key] = result[key], {}
        for name, p in ((name, p) for name, p in peers.items() if peer_key in p):
            why = ours["skipped"] if isinstance(ours, dict) else _skip_reason(key, p, own_model)
            ratios[key][name] = (
                {"skipped": why} if why else round(ours / p[peer_key] if higher else p[peer_key] / ours, 2)
            )
    return ratios
