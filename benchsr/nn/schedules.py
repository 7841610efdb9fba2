"""Schedules that scale with a run's length. The schedulers themselves are torch's
(torch.optim.lr_scheduler: MultiStepLR, CosineAnnealingWarmRestarts, StepLR, LambdaLR), stepped
by each method once per training step or epoch; their state travels in the checkpoint, so a
resumed run goes on where it stopped."""
from __future__ import annotations


def milestones(fractions, total_steps: int) -> list[int]:
    """Milestones given as shares of a run's steps -> step numbers (a profile's length scales
    them: the references' 100k of 300k is step 150 of 450)."""
    return [int(round(f * total_steps)) for f in fractions]
