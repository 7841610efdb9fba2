"""The evaluation room: tiled super-resolution of whole evaluation images (held to the output
contract), the metrics per image, and, for a run, which images, LPIPS, and the split across
torchrun ranks with the rows gathered on rank 0."""
from __future__ import annotations

import contextlib
import dataclasses
import time

import numpy as np
import torch

from benchsr.evaluation import clinical, metrics
from benchsr.runtime import distributed
from benchsr.evaluation.clinical import Context
from benchsr.runtime.guards import fault
from benchsr.contracts import BenchError, EvalImage, Method
from benchsr.evaluation.tiling import plan_for, tiled_sr
from benchsr.evaluation.uncertainty import UNNAMED
from benchsr.data.volumes import degrade


def centre_crop(img: EvalImage, hr_size: int, scale: int) -> EvalImage:
    """Crop HR to hr_size (a multiple of the scale) around the centre, LR to the same region."""
    if hr_size <= 0:
        return img
    lr_size = hr_size // scale
    h, w = img.lr.shape
    y0, x0 = max(0, (h - lr_size) // 2), max(0, (w - lr_size) // 2)
    lr = img.lr[y0:y0 + lr_size, x0:x0 + lr_size]
    box = (slice(y0 * scale, (y0 + lr_size) * scale), slice(x0 * scale, (x0 + lr_size) * scale))
    hr = None if img.hr is None else img.hr[box]
    mask = None if img.mask is None else img.mask[box]
    fov = None if img.fov is None else img.fov[box]
    return EvalImage(img.name, lr, hr, f"{img.source} crop[{y0 * scale}:,{x0 * scale}:]",
                     img.group, img.volume, mask, fov, img.block)


def score(sr: np.ndarray, img: EvalImage, border: int, measures: Context | None = None) -> dict:
    """Per-image metrics of the registry on [0, 1] data (data range 1), `border` pixels cropped
    on every side (the body mask too). An image without a reference gets the metrics that need
    none: its LR against the k x k average-pooled SR. `measures` holds the LPIPS model and the
    HR domain's window and units (clinical.Context)."""
    measures = measures or Context()
    row = {"image": img.name, "source": img.source, "group": img.group, "volume": img.volume,
           "block": img.block}
    if img.hr is None:
        ref, test = img.lr, degrade(sr, sr.shape[0] // img.lr.shape[0], "avgpool")
    else:
        ref, test = metrics.crop_border(img.hr, border), metrics.crop_border(sr, border)
        mask = None if img.mask is None else metrics.crop_border(img.mask, border)
        fov = scored_fov(img, border)
        if fov is not None:   # the output's padding is never compared: no window sees it either
            test = np.where(fov, test, ref)
        measures = dataclasses.replace(measures, mask=mask, fov=fov, cache={})
    for m in metrics.METRICS.values():
        if m.needs_hr == (img.hr is not None) and not m.per_volume:
            row[m.name] = m.fn(ref, test, measures)
    row["input_r"] = input_r(sr, img.lr)
    return row


def scored_fov(img: EvalImage, border: int) -> np.ndarray | None:
    """The scanner's field of view, border-cropped, where the image has padding outside it;
    None where every pixel is inside (then the whole image is scored)."""
    if img.fov is None:
        return None
    fov = metrics.crop_border(img.fov, border)
    return None if fov.all() else fov


def input_r(sr: np.ndarray, lr: np.ndarray) -> float | None:
    """Pearson r between the SR average-pooled to the LR grid and the LR input; None when either
    is flat (r is undefined; a flat output is refused by check_not_flat)."""
    pooled = degrade(np.asarray(sr, np.float64), sr.shape[0] // lr.shape[0], "avgpool")
    a, b = np.asarray(pooled, np.float64).ravel(), np.asarray(lr, np.float64).ravel()
    if a.std() < 1e-8 or b.std() < 1e-8:
        return None
    return float(np.corrcoef(a, b)[0, 1])


def degenerate_reason(rows: list[dict], floor: float) -> str | None:
    """Why a run's outputs are degenerate (inverted, washed out or unrelated to the input: the
    median input_r of its images is under `floor`, eval.min_input_r, where 0 means no check),
    or None. An SR output is a super-resolution of its input only if, pooled back to the
    input's grid, it still looks like it: the default 0.5 asks that it explain a quarter of the
    input's variance, a loose floor that no working method or interpolation comes near
    (docs/reliability.md)."""
    values = [r["input_r"] for r in rows if r.get("input_r") is not None]
    if floor <= 0 or not values or float(np.median(values)) >= floor:
        return None
    psnr = [r["psnr"] for r in rows if r.get("psnr") is not None]
    scored = f"; its PSNR of {np.mean(psnr):.2f} dB is not a result" if psnr else ""
    return (f"degenerate output: average-pooled to the input's grid, the SR correlates "
            f"r = {np.median(values):.2f} with its input (median of {len(values)} images; a "
            f"super-resolution of that input needs r >= {floor:g}){scored}")


def evaluate(method: Method, images: list[EvalImage], cfg: dict, device: torch.device,
             measures: Context | None = None, on_image=None, stage=None, stacks=None):
    """Scores every image given; returns per-image rows, the SR arrays of the first few images,
    and ms per image. `stage(name)` (runner.Stage) names the image a failure happened on.
    `stacks` (clinical.VolumeStacks), if given, gets each volume's cropped HR and SR slices of
    the primary set, in order, for the per-volume measures."""
    ev, k = cfg["eval"], method.ctx.scale
    border = k if ev["border_crop"] is None else int(ev["border_crop"])
    method.train(False)
    rows, kept, times, plans = [], [], [], {}
    for i, img in enumerate(images):
        img = centre_crop(img, int(ev["crop"]), k)
        with stage(f"evaluation of image {i + 1} ({img.name})") if stage else contextlib.nullcontext():
            rows.append(_score_one(method, img, ev, border, device, measures, times, kept, plans,
                                   stacks))
        if on_image:
            on_image(i)
    method.train(True)
    return rows, kept, per_image_ms(times)


def per_image_ms(times: list[float]) -> float | None:
    """ms per image: the median after the first call, which pays for warm-up (allocations,
    kernel choice, lazy imports), as benchmarks/ time it; the one call when there is one."""
    if not times:
        return None
    return 1e3 * float(np.median(times[1:] if len(times) > 1 else times))


def _tile_plan(method: Method, ev: dict, lr: torch.Tensor, device: torch.device, plans: dict):
    """eval.tile / eval.tile_batch (auto: chosen once per image size), noted in the run."""
    key = tuple(lr.shape)
    if key not in plans:
        plans[key] = plan_for(method, ev, key[2:], key[1], device)
        if plans[key].why != "asked":
            note = f"tiling {key[2]}x{key[3]}: {plans[key].why}"
            if note not in method.ctx.notes:
                method.ctx.notes.append(note)
    return plans[key]


def _score_one(method, img, ev, border, device, measures, times, kept, plans, stacks) -> dict:
    """One image: tiled SR (timed), sample kept, metrics."""
    k = method.ctx.scale
    lr = torch.from_numpy(np.ascontiguousarray(img.lr))[None, None].to(device)
    plan = _tile_plan(method, ev, lr, device, plans)
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    sr = tiled_sr(method, lr, k, plan.tile, float(ev["overlap"]), plan.batch, ev["blend"])
    if device.type == "cuda":
        torch.cuda.synchronize()
    times.append(time.perf_counter() - t0)
    sr_np = sr[0, 0].clamp(0, 1).cpu().numpy().astype(np.float32)
    check_not_flat(sr_np, img)
    if sum(i.group == img.group for i, _ in kept) < int(ev["samples"]):   # per eval set
        kept.append((img, sr_np))
    if stacks is not None and img.hr is not None and img.group == "":
        stacks.add(img.volume or UNNAMED, metrics.crop_border(img.hr, border),
                   metrics.crop_border(sr_np, border), scored_fov(img, border))
    return score(sr_np, img, border, measures) | {"ms": times[-1] * 1e3}


def check_not_flat(sr: np.ndarray, img: EvalImage) -> None:
    """A constant output from a non-constant input is degenerate: a failure, never a row."""
    if float(sr.std()) < 1e-6 and float(np.std(img.lr)) > 1e-3:
        raise BenchError(f"super_resolve returned a constant image ({float(sr.mean()):.4g} "
                         f"everywhere) for {img.name}: a degenerate output, not a result")


def spread(images: list[EvalImage], limit: int | None) -> list[EvalImage]:
    """At most `limit` images (None = all), shared evenly between their volumes (patients) and
    evenly spaced within each volume's, at least one per volume, in the given order: a limit
    never leaves a patient out, nor scores only one end of a scan."""
    if limit is None or len(images) <= limit:
        return list(images)
    volumes = list(dict.fromkeys(i.volume for i in images))
    keep = set()
    for v, vol in enumerate(volumes):
        quota = max(1, limit // len(volumes) + (v < limit % len(volumes)))
        idx = [j for j, i in enumerate(images) if i.volume == vol]
        q = min(quota, len(idx))
        picks = ((np.arange(q) + 0.5) * len(idx) / q).astype(int)   # centres of q equal parts
        keep.update(idx[p] for p in picks)
    return [i for j, i in enumerate(images) if j in keep]


def choose_images(data, cfg: dict) -> list[EvalImage]:
    """Every evaluation set's images, at most eval.max_images of each (0 = all), spread evenly
    over its volumes (`spread`)."""
    limit = cfg["eval"]["max_images"] or None
    pool, images = data.eval_images + data.lr_only, []
    for group in dict.fromkeys(i.group for i in pool):
        images += spread([i for i in pool if i.group == group], limit)
    return images


def validation_images(data, cfg: dict) -> tuple[list[EvalImage], bool]:
    """The learning curve's eval.every_images primary images, taken from those the final
    evaluation does not score (spread over volumes too), so that validation is not test. When
    none are left, scored ones (spread the same way), and True: the curve then sees test
    images, and the run says so."""
    n = int(cfg["eval"]["every_images"])
    primary = [i for i in data.eval_images if i.group == ""]
    scored = {i.name for i in choose_images(data, cfg) if i.group == ""}
    spare = [i for i in primary if i.name not in scored]
    return (spread(spare, n), False) if spare else (spread(primary, n), True)


# no super-resolved CT comes near this; a score above it means an output equal to its reference
# (a constant image, a degenerate window), which a 1e-10 floor on the MSE would rank first
PSNR_CEILING_DB = 100.0


def check_finite_metrics(rows: list[dict]) -> None:
    """An infinite, NaN or implausibly high score is not a result: the run fails, naming the
    image (an SR equal to its reference gives PSNR inf, e.g. under a degenerate window)."""
    for row in rows:
        for m in metrics.METRICS:
            v = row.get(m)
            if v is None:
                continue
            if not np.isfinite(v) or m.startswith("psnr") and v > PSNR_CEILING_DB:
                raise BenchError(f"{m} is {v:.6g} on image {row['image']}: not a result (an "
                                 f"output identical to its reference: a constant image, or a "
                                 f"broken window?)")


def evaluate_run(method: Method, images: list[EvalImage], cfg: dict, device, measures: Context,
                 stage, tick=lambda: None):
    """Each rank scores every size-th image; rank 0 gets all rows, in order. Returns (rows,
    kept samples, ms per image, per-volume rows); raises when there is no row or a metric is
    not finite. Per-volume measures need a volume's slices in one process: under torchrun
    they are not computed, and the run says so."""
    world = distributed.world()
    mine = list(range(len(images)))[world.rank::world.size]

    def on_image(i: int) -> None:
        fault("eval", i)
        tick()
    stacks = clinical.VolumeStacks() if world.size == 1 else None
    if stacks is None:
        method.ctx.notes.append("per-volume measures n/a: under torchrun a volume's slices are "
                                "split across ranks")
    rows, kept, ms = evaluate(method, [images[i] for i in mine], cfg, device, measures,
                              on_image=on_image, stage=stage, stacks=stacks)
    rows = [row for _, row in sorted(distributed.gather(list(zip(mine, rows))), key=lambda p: p[0])]
    if not rows:
        raise BenchError("the dataset produced no evaluation images")
    for row in rows:
        row.setdefault("lpips", None)
    check_finite_metrics(rows)
    volume_rows = stacks.finish() if stacks is not None else []
    if stacks is not None and stacks.split:
        method.ctx.notes.append(f"per-volume measures n/a for {', '.join(sorted(stacks.split))}: "
                                f"their slices are not contiguous in the evaluation order")
    check_finite_metrics(volume_rows)
    return rows, kept, ms, volume_rows
