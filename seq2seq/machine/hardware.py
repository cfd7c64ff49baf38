"""What this machine can run, probed once per process, and the choices made from it.

CPUs differ: bf16 runs natively on AVX512-BF16 and AMX CPUs; on plain AVX-512 oneDNN emulates it
(slower than fp32, README); on AVX2 CPUs torch's bf16 LSTM kernel does not run at all. GPUs differ
too (bf16 from Ampere on). So precision is chosen here, never assumed:

* `auto` (the default everywhere) takes bf16 where it runs natively (CPU) or is supported (GPU),
  fp16 with loss scaling on a GPU without bf16, and fp32 everywhere else. The choice and its
  reason are logged once per process and recorded in the run's metrics.
* An explicit precision the hardware cannot run (`bf16` on an AVX2 CPU, `fp16` on a CPU) is a
  `HardwareError`, raised before anything is written. Whether bf16 runs is decided by running a
  tiny bf16 LSTM forward and backward once (`cpu_bf16`), not by catching a crash mid-training.

TF32 (GPU): off unless asked for (`TrainConfig.tf32`), so that fp32 means fp32 on every device;
the fast path on a GPU is bf16 autocast, which `auto` picks.

Importing this module does not import torch (the NumPy runtime uses `resolve_precision` too).
"""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError, HardwareError  # HardwareError: defined in errors.py, re-exported here

log = logging.getLogger("seq2seq")

_NATIVE_ISA_WORDS = ("BF16", "AMX", "FP16", "AVX10")  # oneDNN ISA names that include native bf16


@dataclass(frozen=True)
class CpuBf16:
    """Whether torch's bf16 LSTM kernels run on this CPU, and whether natively (not emulated)."""

    runs: bool
    native: bool
    cpu: str  # e.g. "AVX2", "AVX512 + AVX512-BF16", "AVX512 + AVX512-BF16 + AMX" (`cpu_summary`)
    error: str | None = None  # the probe's error, when it does not run

    @property
    def describe(self) -> str:
        if not self.runs:
            return f"CPU has no native bf16 ({self.cpu}) and torch's bf16 LSTM does not run on it"
        if not self.native:
            return f"CPU has no native bf16 ({self.cpu}): oneDNN would emulate it, slower than fp32"
        return f"CPU has native bf16 ({self.cpu})"


@dataclass(frozen=True)
class Precision:
    """A resolved precision: what runs (`fp32`, `bf16` or `fp16`) and why."""

    name: str
    reason: str

    def autocast(self, device_type: str) -> Any:
        """The autocast context for this precision (a disabled one for fp32)."""
        import torch

        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.name)
        return torch.autocast(device_type, dtype=dtype, enabled=dtype is not None)

    def __str__(self) -> str:
        return f"{self.name} ({self.reason})"


def onednn_isa_cap() -> str | None:
    """The ISA oneDNN is capped at by ONEDNN_MAX_CPU_ISA / DNNL_MAX_CPU_ISA, if set."""
    for var in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"):
        value = os.environ.get(var, "").strip().upper()
        if value and value not in ("ALL", "DEFAULT"):
            return value
    return None


def cpu_summary() -> str:
    """The CPU's vector capability as torch sees it, e.g. `AVX512 + AVX512-BF16`."""
    import torch

    flags = (("AVX512-BF16", "_is_avx512_bf16_supported"), ("AMX", "_is_amx_tile_supported"))
    found = [name for name, fn in flags if getattr(torch.cpu, fn, lambda: False)()]
    cap = onednn_isa_cap()
    if cap:  # what the CPU has is then not what oneDNN uses
        has = " + ".join(found) or "no native bf16"
        return f"{torch.backends.cpu.get_cpu_capability()}; oneDNN capped at {cap}, the CPU has {has}"
    return " + ".join([torch.backends.cpu.get_cpu_capability(), *found])


def amx_in_use() -> bool:
    """Whether oneDNN runs AMX kernels here: the CPU has AMX tiles and no ISA cap below AMX is set."""
    import torch

    cap = onednn_isa_cap()
    return bool(getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()) and (cap is None or "AMX" in cap)


def shape_buckets_on(setting: str, precision: str, device_type: str) -> bool:
    """Whether training pads its batches to a few fixed shapes (`TrainConfig.shape_buckets`).

    `auto` turns them on for bf16 (asked for, or `auto` precision, which is bf16 there) on a CPU whose
    oneDNN runs AMX: its bf16 matmul and LSTM kernels are made per shape, at about the cost of running
    them, and every unbucketed batch is a new shape (docs/speed.md: 1.5-2x bf16 training tokens/s).
    fp32 does not gain there (its kernels are cheap to make; the padding costs 5-10 %), and no other
    CPU or GPU has been measured, so `auto` leaves them off elsewhere; `on` / `off` decide outright."""
    if setting != "auto":
        return setting == "on"
    return device_type == "cpu" and precision in ("auto", "bf16") and amx_in_use()


def _probe_bf16_lstm() -> str | None:
    """Run a tiny bidirectional LSTM forward and backward under CPU bf16 autocast; None if it runs,
    else the first line of the error (AVX2 CPUs: oneDNN has no bf16 LSTM primitive)."""
    import torch

    try:  # gradients on, whatever the caller's mode (the first call may come from inside inference_mode)
        with torch.inference_mode(False), torch.enable_grad(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            lstm = torch.nn.LSTM(8, 8, batch_first=True, bidirectional=True)
            x = torch.randn(2, 3, 8, requires_grad=True)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                y, _ = lstm(x)
            y.float().sum().backward()
    except RuntimeError as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        return first.split(". Run workload")[0]  # oneDNN's advice to set ONEDNN_VERBOSE is not for users
    return None


@functools.cache
def cpu_bf16() -> CpuBf16:
    """Probe this CPU's bf16 support once per process."""
    import torch

    error = _probe_bf16_lstm()
    native_flags = any(getattr(torch.cpu, fn, lambda: False)() for fn in ("_is_avx512_bf16_supported",
                                                                          "_is_amx_tile_supported"))  # fmt: skip
    cap = onednn_isa_cap()
    native = native_flags and (cap is None or any(word in cap for word in _NATIVE_ISA_WORDS))
    return CpuBf16(runs=error is None, native=error is None and native, cpu=cpu_summary(), error=error)


def resolve_device(name: str) -> Any:
    """`name` as a torch.device: `auto` is the first CUDA GPU if there is one, else the CPU.

    A device that does not exist here is a HardwareError, not a traceback at the first tensor."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise HardwareError(f"unknown device {name!r}; use cpu, cuda, cuda:N or auto") from None
    if dev.type not in ("cpu", "cuda"):  # mps, xpu, meta, ...: torch parses them, nothing here runs on them
        raise HardwareError(f"--device {name}: this toolkit runs on cpu or cuda (cuda:N, auto)")
    if dev.type == "cpu" and dev.index is not None:  # torch ignores a CPU index: the flag would be ignored
        raise HardwareError(f"--device {name}: a CPU takes no index (all its cores are one device): use --device cpu")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            build = f"torch {torch.__version__}" + ("" if torch.version.cuda else ", a CPU-only build")
            raise HardwareError(f"--device {name}: no CUDA GPU is available here ({build}); use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise HardwareError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA GPU(s)")
    return dev


def _cuda_bf16(device: Any) -> bool:
    import torch

    with torch.cuda.device(device):
        try:
            return torch.cuda.is_bf16_supported(including_emulation=False)
        except TypeError:  # older torch: no including_emulation argument
            return torch.cuda.is_bf16_supported()


def _resolve_cpu(requested: str) -> Precision:
    if requested == "fp32":
        return Precision("fp32", "requested")
    probe = cpu_bf16()
    if requested == "fp16":
        instead = "auto (bf16 here), bf16 or fp32" if probe.native else "auto (fp32 here) or fp32"
        raise HardwareError(f"precision fp16 needs a CUDA GPU (float16 autocast with loss scaling); this is a CPU "
                            f"({probe.cpu}): use --precision {instead}")  # fmt: skip
    if requested == "bf16":
        if not probe.runs:
            raise HardwareError(f"precision bf16: this CPU ({probe.cpu}) cannot run torch's bf16 LSTM kernels "
                                f"({probe.error}); use --precision fp32 or auto")  # fmt: skip
        return Precision("bf16", f"requested; {probe.describe}")
    if probe.native:
        return Precision("bf16", probe.describe)
    return Precision("fp32", probe.describe)


def _resolve_cuda(requested: str, device: Any) -> Precision:
    import torch

    gpu = torch.cuda.get_device_name(device)
    bf16 = _cuda_bf16(device)
    if requested == "bf16" and not bf16:
        raise HardwareError(f"precision bf16: {gpu} does not support bf16; use --precision fp16, fp32 or auto")
    if requested != "auto":
        return Precision(requested, f"requested; {gpu}")
    if bf16:
        return Precision("bf16", f"{gpu} supports bf16")
    return Precision("fp16", f"{gpu} has no bf16: fp16 autocast with loss scaling")


def resolve_precision(requested: str, device: str = "cpu", level: int = logging.INFO) -> Precision:
    """The precision to run for `requested` (auto, fp32, bf16, fp16) on `device`; logged once per process,
    precision and `level` (training's validation asks again for the precision `auto` chose: no second line).
    Training logs it at INFO; translation, serving and `attention` at DEBUG (their engines say it where
    it matters: a server's /health, `Translating.describe`). Emulated bf16 is a WARNING at any level.

    Raises HardwareError, naming what was found and what to use, for a precision the device
    cannot run."""
    chosen = choose_precision(requested, device)
    if (chosen.name, device, level) not in _LOGGED:
        _LOGGED.add((chosen.name, device, level))
        emulated = chosen.name == "bf16" and resolve_device(device).type == "cpu" and not cpu_bf16().native
        log.log(logging.WARNING if emulated else level, "precision: %s", chosen)
    return chosen


_LOGGED: set[tuple[str, str, int]] = set()


@functools.cache
def choose_precision(requested: str, device: str = "cpu") -> Precision:
    """`resolve_precision` without the log line."""
    if requested not in ("auto", "fp32", "bf16", "fp16"):
        raise ConfigError(f"precision must be auto, fp32, bf16 or fp16, got {requested!r}")
    dev = resolve_device(str(device))
    if dev.type == "cpu":
        chosen = _resolve_cpu(requested)
    elif dev.type == "cuda":
        chosen = _resolve_cuda(requested, dev)
    elif requested == "auto":
        chosen = Precision("fp32", f"no reduced-precision policy for {dev.type}")
    else:
        chosen = Precision(requested, f"requested; {dev.type}")
    return chosen


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity: taskset, a container's cpuset), not the machine's."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):  # no affinity call on this system
        return os.cpu_count() or 1


def set_threads(threads: int) -> None:
    """torch's intra-op threads (0: torch's default); more threads than cores is allowed but said once.
    Under torchrun the machine's cores are shared by its LOCAL_WORLD_SIZE processes."""
    if threads <= 0:
        return  # without importing torch (the NumPy runtime never does)
    import torch

    cores, processes = usable_cores(), max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1))
    if threads * processes > cores:
        each = f" in each of {processes} processes" if processes > 1 else ""
        log.warning("threads: %d asked for%s on %d usable CPU cores: threads will compete for cores", threads, each,
                    cores)  # fmt: skip
    torch.set_num_threads(threads)


def set_tf32(enabled: bool) -> None:
    """Let cuBLAS and cuDNN use TF32 for fp32 work on Ampere+ GPUs (off: fp32 is fp32)."""
    import torch

    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled


def report(device: str = "auto", precision: str = "auto") -> dict[str, str]:
    """What this machine is and what the toolkit would choose on it (`seq2seq hardware`); a device or
    precision asked for that this machine cannot run is a HardwareError (exit 2), never a value."""
    import platform

    import torch

    dev = resolve_device(device)
    out = {
        "device": str(dev),
        "torch": torch.__version__,
        "cpu_cores": str(os.cpu_count()),
        "torch_threads": str(torch.get_num_threads()),
        "cpu": cpu_model() or platform.processor() or "unknown",
        "cpu_capability": cpu_summary(),
        "cpu_bf16": cpu_bf16().describe,
        "gpu": ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())) or "none",
    }
    out["precision"] = str(choose_precision(precision, str(dev)))  # one asked for that cannot run: HardwareError
    return out


def cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None
