"""The learning curve's validation points (eval.every): a few primary images the final
evaluation does not score, scored on rank 0 without touching any random state."""
from __future__ import annotations

import random

import numpy as np
import torch

from benchsr.contracts import PreparedData
from benchsr.evaluation.evaluate import evaluate, validation_images
from benchsr.runtime import distributed


def validator(method, data: PreparedData, cfg: dict, device):
    """validate(step) -> curve rows: the mean PSNR / SSIM of the eval.every_images validation
    images, on rank 0, leaving every random state as it found it. None on the through-plane
    track, which has no images to spare: every slab is scored."""
    if data.protocol.get("plane") == "through":
        if cfg["eval"]["every"]:
            method.ctx.notes.append("no validation curve: the through-plane track scores every "
                                    "evaluation slab and has none to spare")
        return None
    images, overlap = validation_images(data, cfg)
    if overlap and cfg["eval"]["every"]:
        method.ctx.notes.append("validation curve on scored images: the dataset leaves no "
                                "evaluation slice unscored (eval.max_images)")
    quiet = {**cfg, "eval": {**cfg["eval"], "samples": 0, "lpips": False}}

    def validate(step: int) -> list[dict]:
        if not distributed.world().is_main or not images:
            return []
        states = torch.get_rng_state(), random.getstate(), np.random.get_state()
        rows, _, _ = evaluate(method, images, quiet, device)
        torch.set_rng_state(states[0])
        random.setstate(states[1])
        np.random.set_state(states[2])
        return [{"step": step, "metric": m, "value": float(np.mean([r[m] for r in rows])),
                 "images": len(rows)} for m in ("psnr", "ssim", "ssim_global")]
    return validate
