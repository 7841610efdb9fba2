"""Which device and precision a run or `benchsr infer` asked for, checked before any work."""
from __future__ import annotations

import re

import torch

from . import distributed
from .contracts import BenchError


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
    if precision not in ("fp32", "bf16", "fp16"):
        raise BenchError(f"unknown precision '{precision}' (fp32, bf16, fp16)")
    if precision == "fp16" and device.type != "cuda":
        raise BenchError("fp16 autocast needs CUDA; use bf16 on the CPU")
