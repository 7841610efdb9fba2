"""Learning-rate schedules as functions of the step: a resumed run replays them exactly (the
initial lr travels in the optimiser's state_dict as `base_lr`)."""
from __future__ import annotations

import math

import torch


def scale_lr(optimizer: torch.optim.Optimizer, factor: float) -> None:
    """Each group's lr = its initial lr * factor."""
    for group in optimizer.param_groups:
        group["lr"] = group.setdefault("base_lr", group["lr"]) * factor


def step_decay(optimizer: torch.optim.Optimizer, step: int, every: int,
               factor: float = 0.5) -> None:
    """lr = initial lr * factor ** (step // every); every = 0 keeps it constant."""
    scale_lr(optimizer, factor ** (step // every) if every else 1.0)


def milestones(fractions, total_steps: int) -> list[int]:
    """Milestones given as shares of a run's steps -> step numbers (a profile's length scales
    them: the references' 100k of 300k is step 150 of 450)."""
    return [int(round(f * total_steps)) for f in fractions]


def multistep_factor(step: int, steps: list[int], gamma: float) -> float:
    """MultiStepLR as a function of the step: gamma ** (milestones passed)."""
    return gamma ** sum(step >= s for s in steps)


def cosine_restart_factor(step: int, period: int, eta_min_ratio: float) -> float:
    """BasicSR's CosineAnnealingRestartLR with equal periods and restart weights 1: lr / base."""
    t = (step % period) / max(1, period)
    return eta_min_ratio + (1 - eta_min_ratio) * 0.5 * (1 + math.cos(math.pi * t))
