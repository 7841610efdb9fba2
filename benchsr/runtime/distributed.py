"""Data-parallel runs through torch.distributed, launched by torchrun.

`torchrun --nproc_per_node=N -m benchsr.cli run ...` starts N copies of the same run. Each rank
draws the same global batch from the per-epoch seeded sampler and trains on its own shard of it
(the partition DistributedSampler makes, applied to random patches); gradients are averaged over
ranks before every optimiser step, so N ranks with batch B/N each follow the single-process run
with batch B. Evaluation images are split over ranks and their per-image rows gathered on rank 0,
which alone writes run folders and the leaderboard.

Gradients: each net is wrapped in its own DistributedDataParallel (SeparateDDP, as BasicSR and
MMagic's MMSeparateDistributedDataParallel do for GANs), so its gradients are all-reduced in
buckets while the backward is still running. A GAN step runs a net several times before one
backward (D on real and on fake) and runs frozen discriminators in the generator's update; DDP
handles both, since every parameter gets its gradient once per backward or, frozen, none
(SR-CycleGAN under 2 gloo ranks equals the flat path in tests/runtime/test_distributed.py; CinCGAN,
ESRGAN and pseudo-SR did too when checked at smoke size). Checkpoints stay plain:
Method.state_dict unwraps. BENCHSR_GRAD_SYNC=flat selects the older path, one flat all-reduce per
optimiser after the whole backward (RunContext.optimize), kept for the benchmark that compares
the two. BatchNorm layers become SyncBatchNorm on CUDA; on the CPU (gloo) each rank
keeps its own batch statistics, which the run's notes say.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

GRAD_SYNC_ENV = "BENCHSR_GRAD_SYNC"   # ddp | flat; unset: DEFAULT_GRAD_SYNC for the backend
# per backend, from benchmarks/bench.py's 2-rank step: on gloo (2 CPU cores) DDP 0.472 s, flat
# 0.473 s per SR-CycleGAN quick step (bench-vm-20261126-053907): DDP is not slower. NCCL is not
# measured here (no GPU was lent) and takes DDP, whose overlap is made for it.
DEFAULT_GRAD_SYNC = {"gloo": "ddp", "nccl": "ddp"}


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.size > 1

    def shard(self, n: int) -> slice:
        """This rank's part of a global batch of n (n must divide evenly)."""
        per = n // self.size
        return slice(self.rank * per, (self.rank + 1) * per)


_WORLD = World()


def init() -> World:
    """Join the process group torchrun describes in the environment (once); a plain run is a
    world of one."""
    global _WORLD
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size > 1 and not dist.is_initialized():
        cuda = torch.cuda.is_available() and os.environ.get("BENCHSR_DIST_BACKEND") != "gloo"
        dist.init_process_group("nccl" if cuda else "gloo")
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if cuda:
            torch.cuda.set_device(local)
        _WORLD = World(dist.get_rank(), dist.get_world_size(), local)
    return _WORLD


def world() -> World:
    return _WORLD


def grad_sync() -> str:
    backend = dist.get_backend() if dist.is_initialized() else "gloo"
    mode = os.environ.get(GRAD_SYNC_ENV) or DEFAULT_GRAD_SYNC.get(backend, "ddp")
    if mode not in ("ddp", "flat"):
        from benchsr.errors import BenchError
        raise BenchError(f"{GRAD_SYNC_ENV}={mode}: expected ddp or flat")
    return mode


class SeparateDDP(DistributedDataParallel):
    """DDP for one net of a multi-net method (see the module docstring)."""

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:   # a plugin reaching an attribute of its own net
            return getattr(self.module, name)


def wrap(net: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """`net` in its own DDP in a torchrun run with grad sync ddp; as it is otherwise, or when it
    has nothing to train."""
    if not _WORLD.active or grad_sync() != "ddp" or not any(p.requires_grad for p in net.parameters()):
        return net
    # buffers are not broadcast: evaluation runs different images on each rank, and a broadcast
    # in forward would make the ranks wait on each other
    return SeparateDDP(net, device_ids=[device.index] if device.type == "cuda" else None,
                       broadcast_buffers=False)


def unwrap(net: torch.nn.Module) -> torch.nn.Module:
    return net.module if isinstance(net, DistributedDataParallel) else net


def average_gradients(optimizer: torch.optim.Optimizer) -> None:
    """Mean of every gradient this optimiser will apply, over all ranks (one flat all-reduce),
    for the parameters no DDP wrapper has averaged already (grad sync flat)."""
    if not _WORLD.active or grad_sync() == "ddp":
        return
    grads = [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= _WORLD.size
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def gather(items: list) -> list:
    """Every rank's list, concatenated in rank order, on every rank."""
    if not _WORLD.active:
        return items
    parts: list = [None] * _WORLD.size
    dist.all_gather_object(parts, items)
    return [x for part in parts for x in part]


def broadcast(obj):
    """Rank 0's value of obj, on every rank."""
    if not _WORLD.active:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def sync_batchnorm(net: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    if _WORLD.active and device.type == "cuda":
        return torch.nn.SyncBatchNorm.convert_sync_batchnorm(net)
    return net


def has_batchnorm(net: torch.nn.Module) -> bool:
    return any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in net.modules())


def mean_values(values: dict[str, float]) -> dict[str, float]:
    """Mean over ranks of a dict of floats with the same keys on every rank (logged losses)."""
    if not _WORLD.active or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64)
    dist.all_reduce(t)
    return {k: float(v) / _WORLD.size for k, v in zip(keys, t.tolist())}


def all_true(flag: bool) -> bool:
    """True on every rank only if it is true on every rank (so all ranks stop together)."""
    if not _WORLD.active:
        return flag
    t = torch.tensor([1 if flag else 0], dtype=torch.int32)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item())
