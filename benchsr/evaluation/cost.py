"""Cost collectors: parameters per network, FLOPs per LR input, peak memory."""
from __future__ import annotations

import resource
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from benchsr.contracts import Method

_CLEAR_REFS = Path("/proc/self/clear_refs")
_STATUS = Path("/proc/self/status")


def params_per_network(method: Method) -> dict[str, int]:
    return {name: sum(p.numel() for p in net.parameters()) for name, net in method.nets.items()}


@torch.no_grad()
def flops_per_input(method: Method, lr_shape: tuple[int, ...], device) -> int | None:
    """FLOPs (multiply and add counted separately, torch's convention) of one super_resolve on
    an LR input of `lr_shape`. None for methods without a network (interpolation)."""
    if not method.nets:
        return None
    counter = FlopCounterMode(display=False)
    method.train(False)
    # (B, C, h, w): an in-plane input; (n, H, W): a through-plane stack of thick slices
    run = method.super_resolve if len(lr_shape) == 4 else method.super_resolve_z
    with counter, torch.no_grad():
        run(torch.zeros(lr_shape, device=device))
    method.train(True)
    return int(counter.get_total_flops())


class PeakMemory:
    """Peak memory of one run. CUDA: max allocated by torch. CPU: the process's peak resident
    set (VmHWM), reset at the start when Linux allows it, so it includes the loaded data and the
    Python runtime; the `kind` says which was measured."""

    def __init__(self, device: torch.device):
        self.device = device
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
            self.kind = "cuda max allocated"
        else:
            try:
                _CLEAR_REFS.write_text("5")  # resets VmHWM to the current RSS
                self.kind = "process peak RSS during the run"
            except OSError:
                self.kind = "process peak RSS since start"

    def read_mib(self) -> float:
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device) / 2 ** 20
        try:
            for line in _STATUS.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
