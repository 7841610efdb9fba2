"""Which device and precision a run or `benchsr infer` asked for, checked before any work."""
from __future__ import annotations

import re

import torch

from benchsr.runtime import distributed
from benchsr.errors import BenchError


def pick_device(name: str) -> torch.device:
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", str(name)):
        raise BenchError(f"--device {name}: expected auto, cpu, cuda or cuda:N")
    if name == "auto":
        if torch.cuda.is_available():   # torchrun: one GPU per local rank
            return torch.device("cuda", distributed.world().local_rank)
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise BenchError(f"--device {name}: CUDA is not available on this machine")
    return torch.device(name)


def check_precision(precision: str, device: torch.device) -> None:
    if precision not in ("fp32", "bf16", "fp16", "auto"):
        raise BenchError(f"unknown precision '{precision}' (fp32, bf16, fp16, auto)")
    if precision == "fp16" and device.type != "cuda":
        raise BenchError("fp16 autocast needs CUDA; use bf16 on the CPU")


def cpu_flags() -> set[str]:
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def resolve_precision(precision: str, device: torch.device) -> tuple[str, str]:
    """(precision to run, why). `auto` is bf16 where the hardware computes it natively (CUDA
    with bf16, or a CPU with AMX-bf16 or avx512_bf16) and fp32 elsewhere, where bf16 would be
    emulated. Never assumed faster: benchmarks/ measures it."""
    if precision != "auto":
        return precision, "asked"
    if device.type == "cuda":
        ok = torch.cuda.is_bf16_supported()
        return ("bf16", "auto: CUDA device with bf16") if ok else ("fp32", "auto: CUDA without bf16")
    native = cpu_flags() & {"amx_bf16", "avx512_bf16"}
    if native:
        return "bf16", f"auto: CPU with {', '.join(sorted(native))}"
    return "fp32", "auto: CPU without AMX-bf16 or avx512_bf16 (bf16 would be emulated)"
