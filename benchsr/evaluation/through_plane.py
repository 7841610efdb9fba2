"""Scoring on the through-plane track: each evaluation slab's thick slices go through the
method's `super_resolve_z`, and every thin slice the thick ones lack (all of them under the
slice profile, all but every k-th under `pick`) is scored against the real one with the same
per-image metrics as the axial track. A slice's `input_r` (the output check) is its correlation
with the linear interpolation of the thick input at that position."""
from __future__ import annotations

import contextlib
import time

import numpy as np
import torch

from benchsr.contracts import BenchError, EvalImage, EvalVolume, Method
from benchsr.data.through_plane import interpolate_z, missing
from benchsr.evaluation import clinical
from benchsr.evaluation.evaluate import (check_finite_metrics, check_not_flat, per_image_ms, score,
                                         scored_fov)
from benchsr.evaluation.metrics import crop_border
from benchsr.evaluation.uncertainty import UNNAMED


def thin_estimate(method: Method, thick: np.ndarray, device) -> np.ndarray:
    """The method's thin slices for one thick stack, checked: shape (n*k, H, W), finite;
    values outside [0, 1] are clamped, as on the axial track."""
    k = method.ctx.scale
    with torch.no_grad():
        out = method.super_resolve_z(torch.from_numpy(np.ascontiguousarray(thick)).to(device))
    want = (thick.shape[0] * k, *thick.shape[1:])
    if tuple(out.shape) != want:
        raise BenchError(f"super_resolve_z returned {tuple(out.shape)} for {tuple(thick.shape)} "
                         f"thick slices, expected {want}")
    if not bool(torch.isfinite(out).all()):
        raise BenchError("super_resolve_z returned NaN or Inf")
    return out.float().clamp(0, 1).cpu().numpy()


def keep_views(kept: list, vol: EvalVolume, samples: int) -> bool:
    """Whether a slab's views are kept: the first slab of every patient, then any until
    `samples` are kept (none when samples is 0)."""
    return samples > 0 and (len(kept) < samples or vol.volume not in {v.volume for v, _ in kept})


def evaluate_volumes(method: Method, volumes: list[EvalVolume], cfg: dict, device,
                     measures: clinical.Context, stage=None, tick=lambda: None,
                     per_volume: bool = True):
    """(per-slice rows, kept samples, ms per scored slice, per-volume rows), as evaluate_run
    returns them for the axial track; `per_volume=False` (a validation point, which reads the
    per-slice rows only) skips the 3D measures and gives no per-volume rows."""
    k, how = method.ctx.scale, method.ctx.degradation
    border = 0 if cfg["eval"]["border_crop"] is None else int(cfg["eval"]["border_crop"])
    method.train(False)
    rows, times, kept = [], [], []
    stacks = clinical.VolumeStacks() if per_volume else None
    for i, vol in enumerate(volumes):
        where = stage(f"evaluation of slab {i + 1} ({vol.name})") if stage else contextlib.nullcontext()
        with where:
            t0 = time.perf_counter()
            sr = thin_estimate(method, vol.thick, device)
            scored = missing(len(vol.thin), k, how)
            times.append((time.perf_counter() - t0) / max(1, len(scored)))
            if keep_views(kept, vol, int(cfg["eval"]["samples"])):   # coronal and sagittal
                kept.append((vol, sr))
            guide = interpolate_z(vol.thick, k, how, order=1, n_thin=len(vol.thin))
            for j in scored:
                img = EvalImage(name=f"{vol.name}-z{j:02d}", lr=guide[j], hr=vol.thin[j],
                                source=f"{vol.source} thin {j}", volume=vol.volume,
                                mask=None if vol.mask is None else vol.mask[j],
                                fov=None if vol.fov is None else vol.fov[j], block=vol.name)
                check_not_flat(sr[j], img)
                rows.append(score(sr[j], img, border, measures) | {"ms": times[-1] * 1e3})
                if stacks is not None:
                    stacks.add(vol.volume or UNNAMED, crop_border(vol.thin[j], border),
                               crop_border(sr[j], border), scored_fov(img, border))
        tick()
    method.train(True)
    if not rows:
        raise BenchError("the dataset produced no through-plane evaluation slices")
    for row in rows:
        row.setdefault("lpips", None)
    check_finite_metrics(rows)
    volume_rows = stacks.finish() if stacks is not None else []
    check_finite_metrics(volume_rows)
    return rows, kept, per_image_ms(times), volume_rows
