"""Evaluation: tiled super-resolution of whole evaluation images, then the metrics per image."""
from __future__ import annotations

import time

import numpy as np
import torch

from . import metrics
from .contracts import BenchError, EvalImage, Method
from .volumes import degrade


def _starts(length: int, tile: int, stride: int) -> list[int]:
    starts = list(range(0, max(length - tile, 0) + 1, stride))
    if starts[-1] + tile < length:
        starts.append(length - tile)
    return starts


class OutputError(BenchError):
    """super_resolve broke its contract (shape or finiteness): the run fails, naming it."""


def checked_sr(method: Method, lr: torch.Tensor, notes: list[str] | None = None) -> torch.Tensor:
    """method.super_resolve(lr), held to the contract: shape (B, C, k*h, k*w) and finite
    values, or OutputError; values outside [0, 1] are clamped, with one note in the run."""
    k = method.ctx.scale
    sr = method.super_resolve(lr)
    want = (*lr.shape[:2], lr.shape[2] * k, lr.shape[3] * k)
    if not isinstance(sr, torch.Tensor) or tuple(sr.shape) != want:
        got = tuple(sr.shape) if isinstance(sr, torch.Tensor) else type(sr).__name__
        raise OutputError(f"{type(method).__name__}.super_resolve returned shape {got} for an "
                          f"input of {tuple(lr.shape)}; expected {want}")
    sr = sr.float()
    bad = int((~torch.isfinite(sr)).sum())
    if bad:
        raise OutputError(f"{type(method).__name__}.super_resolve returned {bad} non-finite "
                          f"values (NaN/Inf) of {sr.numel()} for an input of {tuple(lr.shape)}")
    lo, hi = float(sr.min()), float(sr.max())
    if lo < 0 or hi > 1:
        note = "super_resolve output outside [0, 1] was clamped"
        if notes is not None and not any(n.startswith(note) for n in notes):
            notes.append(f"{note} (first seen: min {lo:.3g}, max {hi:.3g})")
        sr = sr.clamp(0, 1)
    return sr


@torch.no_grad()
def tiled_sr(method: Method, lr: torch.Tensor, scale: int, tile: int, overlap: float) -> torch.Tensor:
    """SR of (1, C, h, w) by LR tiles of `tile` pixels overlapping by `overlap`, averaged where
    they overlap (as the SR-CycleGAN authors evaluate). tile 0 = the whole image at once."""
    _, c, h, w = lr.shape
    if tile <= 0 or (tile >= h and tile >= w):
        return checked_sr(method, lr, method.ctx.notes)
    tile = min(tile, h, w)
    stride = max(1, int(round(tile * (1 - overlap))))
    out = torch.zeros(1, c, h * scale, w * scale, device=lr.device)
    weight = torch.zeros_like(out)
    for y in _starts(h, tile, stride):
        for x in _starts(w, tile, stride):
            sr = checked_sr(method, lr[:, :, y:y + tile, x:x + tile], method.ctx.notes)
            ys, xs = slice(y * scale, (y + tile) * scale), slice(x * scale, (x + tile) * scale)
            out[:, :, ys, xs] += sr
            weight[:, :, ys, xs] += 1
    return out / weight


def centre_crop(img: EvalImage, hr_size: int, scale: int) -> EvalImage:
    """Crop HR to hr_size (a multiple of the scale) around the centre, LR to the same region."""
    if hr_size <= 0:
        return img
    lr_size = hr_size // scale
    h, w = img.lr.shape
    y0, x0 = max(0, (h - lr_size) // 2), max(0, (w - lr_size) // 2)
    lr = img.lr[y0:y0 + lr_size, x0:x0 + lr_size]
    hr = None if img.hr is None else img.hr[y0 * scale:(y0 + lr_size) * scale,
                                            x0 * scale:(x0 + lr_size) * scale]
    return EvalImage(img.name, lr, hr, f"{img.source} crop[{y0 * scale}:,{x0 * scale}:]",
                     img.group, img.volume)


def score(sr: np.ndarray, img: EvalImage, border: int, lpips_metric) -> dict:
    """Per-image metrics on [0, 1] data (data range 1), `border` pixels cropped on every side."""
    row = {"image": img.name, "source": img.source, "group": img.group, "volume": img.volume}
    if img.hr is None:   # no reference: is the SR consistent with its own LR input? A check,
        # not a score (it is SR-CycleGAN's own training term), as RMSE: finite even when exact
        pooled = degrade(sr, sr.shape[0] // img.lr.shape[0], "avgpool")
        row["lr_consistency_rmse"] = metrics.rmse(img.lr, pooled)
        return row
    ref, test = metrics.crop_border(img.hr, border), metrics.crop_border(sr, border)
    row["psnr"] = metrics.psnr(ref, test, 1.0)
    row["ssim"] = metrics.ssim_windowed(ref, test, 1.0)
    row["ssim_global"] = metrics.ssim_global(ref, test)
    row["lpips"] = lpips_metric(ref, test) if lpips_metric is not None else None
    return row


def evaluate(method: Method, images: list[EvalImage], cfg: dict, device: torch.device,
             lpips_metric=None, on_image=None):
    """Scores every image given; returns per-image rows, the SR arrays of the first few images,
    and ms per image."""
    ev, k = cfg["eval"], method.ctx.scale
    border = k if ev["border_crop"] is None else int(ev["border_crop"])
    method.train(False)
    rows, kept, times = [], [], []
    for i, img in enumerate(images):
        img = centre_crop(img, int(ev["crop"]), k)
        lr = torch.from_numpy(np.ascontiguousarray(img.lr))[None, None].to(device)
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        sr = tiled_sr(method, lr, k, int(ev["tile"]), float(ev["overlap"]))
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
        sr_np = sr[0, 0].clamp(0, 1).cpu().numpy().astype(np.float32)
        rows.append(score(sr_np, img, border, lpips_metric) | {"ms": times[-1] * 1e3})
        if sum(i.group == img.group for i, _ in kept) < int(ev["samples"]):   # per eval set
            kept.append((img, sr_np))
        if on_image:
            on_image(i)
    method.train(True)
    return rows, kept, (1e3 * float(np.mean(times)) if times else None)
