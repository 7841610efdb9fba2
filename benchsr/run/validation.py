"""The learning curve's validation points (eval.every): a few primary images, or on the
through-plane track a few slabs, that the final evaluation does not score, scored on rank 0
without touching any random state."""
from __future__ import annotations

import random

import numpy as np
import torch

from benchsr.contracts import PreparedData
from benchsr.evaluation.clinical import Context
from benchsr.evaluation.evaluate import evaluate, validation_images
from benchsr.evaluation.through_plane import evaluate_volumes
from benchsr.runtime import distributed


def validation_set(data: PreparedData, cfg: dict) -> tuple[list, bool]:
    """(the curve's images, or its slabs on the through-plane track; True when they are scored
    ones: the dataset left none spare)."""
    if data.protocol.get("plane") == "through":
        return list(data.val_volumes), False
    return validation_images(data, cfg)


def validator(method, data: PreparedData, cfg: dict, device):
    """validate(step) -> curve rows: the mean PSNR / SSIM over the validation set's scored
    slices, on rank 0, leaving every random state as it found it. None when the through-plane
    track has no validation slab."""
    units, overlap = validation_set(data, cfg)
    through = data.protocol.get("plane") == "through"
    if through and not units:
        if cfg["eval"]["every"]:
            method.ctx.notes.append("no validation curve: the dataset gives the through-plane "
                                    "track no slab that is neither trained on nor scored")
        return None
    if overlap and cfg["eval"]["every"]:
        method.ctx.notes.append("validation curve on scored images: the dataset leaves no "
                                "evaluation slice unscored (eval.max_images)")
    quiet = {**cfg, "eval": {**cfg["eval"], "samples": 0, "lpips": False}}

    def scored_rows() -> list[dict]:
        if through:
            return evaluate_volumes(method, units, quiet, device, Context(), per_volume=False)[0]
        return evaluate(method, units, quiet, device)[0]

    def validate(step: int) -> list[dict]:
        if not distributed.world().is_main or not units:
            return []
        states = torch.get_rng_state(), random.getstate(), np.random.get_state()
        rows = scored_rows()
        torch.set_rng_state(states[0])
        random.setstate(states[1])
        np.random.set_state(states[2])
        return [{"step": step, "metric": m, "value": float(np.mean([r[m] for r in rows])),
                 "images": len(rows)} for m in ("psnr", "ssim", "ssim_global")]
    return validate
