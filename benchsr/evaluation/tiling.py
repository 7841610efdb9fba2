"""Super-resolution of a whole image through a method: the output contract, tiles, blending, and
`auto`, which picks the tile size and the tiles per forward for the device.

Tiles go through MONAI's sliding_window_inference, which handles the zoomed (k x) output. Blends
where tiles overlap:
- `mean`: every tile counts the same (the SR-CycleGAN authors' evaluation; benchsr's only blend
  before `eval.blend` existed);
- `gaussian`: MONAI's Gaussian window (sigma = 1/8 of the tile);
- `linear`: a tent that falls linearly from the tile's centre towards its edges.
Nets with InstanceNorm give tile-dependent results, so tile, blend and batch are config keys of a
run, and the benchmark reports the metric change of `auto` against the old default.

`auto` picks the tile size and the tiles per forward for the device. A method whose output
depends on the tiling (`tiles_change_output`: InstanceNorm) is never timed: its `auto` is the
tiling its run was scored with (scored_plan), so a busy machine gives the same image. Otherwise:
- on the CPU, from a short measurement: the median of 3 timed forwards per candidate (tiles of
  64 to 384 pixels, and the whole image), times how many tiles the image needs, one tile per
  forward. It leaves the old default's 128² tiles only for a tiling measured SWITCH_MARGIN
  faster, so outputs change only for a clear gain.
  Batching is a GPU lever, not a CPU one (2 CPU cores: 25 tiles of 128² through SR-CycleGAN's
  quick G1 took 2.76 s at batch 1 and 4.69 s at batch 25), and on these cores 128² tiles beat
  whole 512² slices (benchmarks: the activations of a tile stay in cache);
- on a GPU: tiles of TILE_GPU pixels, as many per forward as fit in free memory.
Memory comes from a probe forward that records the largest activation per input pixel (forward
hooks); a plan keeps PEAK_FACTOR of them alive within MEMORY_SHARE of what the device has free.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from benchsr.config import CHOICES
from benchsr.contracts import BenchError, Method
from benchsr.optional import OptionalModule

monai_inferers = OptionalModule("monai.inferers", "tiled super-resolution (eval.tile)",
                                pip="monai")

BLENDS = CHOICES["eval.blend"]
LEGACY_TILE = 128        # `benchsr infer --tile` before auto: 25 forwards per 512² slice
TILE_GPU = 128
CPU_CANDIDATES = (64, 96, 128, 192, 256, 384)   # LR tile sides `auto` times on the CPU (and 0)
SWITCH_MARGIN = 0.1      # auto leaves LEGACY_TILE only for a tiling measured 10 % faster
PROBE = 32               # LR pixels per side of the probe forward
PEAK_FACTOR = 4          # activations alive at once, in units of the largest one (input, output, skip)
MEMORY_SHARE = 0.5       # of the free memory a plan may use


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


def tent(size: int) -> torch.Tensor:
    """The `linear` blend's window: 1 at the centre, falling linearly to 1/size at the edges
    (never 0, so a pixel that only one tile covers keeps its value)."""
    ramp = torch.minimum(torch.arange(size) + 0.5, size - 0.5 - torch.arange(size)) / (size / 2)
    return ramp[:, None] * ramp[None, :]


@torch.no_grad()
def tiled_sr(method: Method, lr: torch.Tensor, scale: int, tile: int, overlap: float,
             batch: int = 1, blend: str = "mean") -> torch.Tensor:
    """SR of (1, C, h, w) by LR tiles of `tile` pixels overlapping by `overlap`, `batch` tiles
    per forward, blended by `blend`. tile 0 (or a tile as large as the image) = the whole image
    in one forward."""
    _, _, h, w = lr.shape
    if tile <= 0 or (tile >= h and tile >= w):
        return checked_sr(method, lr, method.ctx.notes)
    if blend not in BLENDS:
        raise BenchError(f"eval.blend '{blend}': expected one of {', '.join(BLENDS)}")
    tile = min(tile, h, w)
    out = monai_inferers.sliding_window_inference(
        lr, (tile, tile), max(1, int(batch)), lambda x: checked_sr(method, x, method.ctx.notes),
        overlap=overlap, mode="gaussian" if blend == "gaussian" else "constant",
        roi_weight_map=tent(tile).to(lr.device) if blend == "linear" else None)
    assert out.shape[-2:] == (h * scale, w * scale)
    return out


def _auto_or_int(flag: str, value, lowest: int) -> int | str:
    if str(value) == "auto":
        return "auto"
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise BenchError(f"{flag} {value}: expected auto or a whole number") from None
    if number < lowest:
        raise BenchError(f"{flag} {value}: must be auto or at least {lowest}")
    return number


def tiling_request(tile="auto", tile_batch="auto", blend: str = "mean", overlap: float = 0.25,
                   min_tile: int = 16) -> dict:
    """`benchsr infer`'s --tile, --tile-batch, --blend and --overlap, checked, as the `eval`
    keys plan_for and tiled_sr read."""
    tile = _auto_or_int("--tile", tile, 0)
    if tile != "auto" and 0 < tile < min_tile:
        raise BenchError(f"--tile {tile}: must be auto, 0 (whole slices) or at least {min_tile}")
    if blend not in BLENDS:
        raise BenchError(f"--blend {blend}: expected one of {', '.join(BLENDS)}")
    if not 0 <= overlap < 1:
        raise BenchError(f"--overlap {overlap}: must be in [0, 1)")
    return {"tile": tile, "tile_batch": _auto_or_int("--tile-batch", tile_batch, 1),
            "blend": blend, "overlap": float(overlap)}


# ---- auto -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class TilePlan:
    tile: int       # LR pixels per side; 0 = the whole image in one forward
    batch: int      # tiles per forward
    why: str        # recorded in the run's notes / the benchmark


def free_memory(device: torch.device) -> int:
    """Bytes free now: the GPU's (cudaMemGetInfo) or the machine's MemAvailable."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        for line in open("/proc/meminfo", encoding="utf-8"):
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 4 << 30   # unknown: assume 4 GiB


def bytes_per_lr_pixel(method: Method, channels: int, device: torch.device) -> float:
    """The largest activation of one probe forward, per LR input pixel (forward hooks on every
    module of every net the method names)."""
    largest = [0]

    def hook(_module, _inputs, output):
        if isinstance(output, torch.Tensor):
            largest[0] = max(largest[0], output.numel() * output.element_size())

    handles = [m.register_forward_hook(hook) for net in method.inference_modules().values()
               for m in net.modules()]
    try:
        with torch.no_grad(), method.ctx.autocast():
            checked_sr(method, torch.rand(1, channels, PROBE, PROBE, device=device))
    finally:
        for h in handles:
            h.remove()
    # a method without nets (interpolation) still makes its k x k output
    floor = 4.0 * channels * method.ctx.scale ** 2
    return max(largest[0] / PROBE ** 2, floor)


def n_tiles(h: int, w: int, tile: int, overlap: float) -> int:
    """How many tiles sliding_window_inference runs over an h x w image."""
    if tile <= 0 or (tile >= h and tile >= w):
        return 1
    tile = min(tile, h, w)
    stride = max(1, int(tile * (1 - overlap)))
    return (math.ceil((h - tile) / stride) + 1) * (math.ceil((w - tile) / stride) + 1)


def time_forward(method: Method, shape: tuple[int, int], channels: int, device: torch.device) -> float:
    """Seconds of one forward of one `shape` input, after a warm-up (oneDNN builds its kernels
    per shape)."""
    x = torch.rand(1, channels, *shape, device=device)
    times = []
    with torch.no_grad(), method.ctx.autocast():
        checked_sr(method, x)
        for _ in range(3):   # the median of 3: one timing is too noisy to rank close candidates
            t0 = time.perf_counter()
            checked_sr(method, x)
            times.append(time.perf_counter() - t0)
    return sorted(times)[1]


def _cpu_plan(method, lr_shape, channels, device, overlap, per_pixel, budget) -> TilePlan:
    """The fastest measured tiling that fits in memory, one tile per forward."""
    h, w = lr_shape
    estimates = {}
    for tile in [t for t in CPU_CANDIDATES if t < max(h, w)] + [0]:
        side_h, side_w = (h, w) if tile == 0 else (min(tile, h), min(tile, w))
        if per_pixel * side_h * side_w <= budget:
            estimates[tile] = n_tiles(h, w, tile, overlap) * time_forward(
                method, (side_h, side_w), channels, device)
    if not estimates:
        tile = max(16, int((budget / per_pixel) ** 0.5) // 16 * 16)
        return TilePlan(tile, 1, f"auto: CPU, largest tile that fits in memory: {tile}²")
    best = min(estimates, key=estimates.get)
    legacy = LEGACY_TILE if max(h, w) > LEGACY_TILE else 0   # the old default: one tile = whole
    if legacy in estimates and estimates[best] > (1 - SWITCH_MARGIN) * estimates[legacy]:
        best = legacy   # not clearly faster: keep the old default's tiling (and its outputs)
    timed = ", ".join(f"{'whole' if t == 0 else f'{t}²'} {s * 1e3:.0f} ms"
                      for t, s in sorted(estimates.items(), key=lambda kv: kv[1]))
    return TilePlan(best, 1, f"auto: CPU, {'whole image' if best == 0 else f'{best}² tiles'} "
                             f"(measured for {h}x{w}: {timed}; {LEGACY_TILE}² kept unless another "
                             f"is {SWITCH_MARGIN:.0%} faster)")


def tiles(tile: int) -> str:
    return "whole slices" if tile <= 0 else f"{tile}² tiles"


def plan(method: Method, lr_shape: tuple[int, int], channels: int, device: torch.device,
         overlap: float, tile: int | None = None) -> TilePlan:
    """The tile size and tiles per forward `auto` runs with on this device (see the module);
    with `tile` given, only the tiles per forward are chosen."""
    if device.type != "cuda" and tile is not None:   # nothing to measure: one tile per forward
        return TilePlan(tile, 1, f"{tiles(tile)} as asked, one per forward (CPU)")
    per_pixel = bytes_per_lr_pixel(method, channels, device) * PEAK_FACTOR
    budget = free_memory(device) * MEMORY_SHARE
    h, w = lr_shape
    if device.type != "cuda":
        return _cpu_plan(method, lr_shape, channels, device, overlap, per_pixel, budget)
    asked = "" if tile is None else f"{tiles(tile)} as asked; "
    tile = min(TILE_GPU if tile is None else (tile or max(h, w)), h, w)
    fits = max(1, int(budget // (per_pixel * tile * tile)))
    batch = min(n_tiles(h, w, tile, overlap), fits)
    return TilePlan(tile, batch, f"{asked}auto: GPU, {batch} tiles of {tile}² per forward "
                                 f"({fits} fit in {budget / 2 ** 30:.1f} GiB)")


def scored_plan(method: Method, lr_shape: tuple[int, int], channels: int,
                device: torch.device, overlap: float) -> TilePlan:
    """`auto` for a method whose output depends on the tiling: the tiling its run was scored
    with (eval.tile; auto there means whole images), one tile per forward on the CPU. Never
    chosen by timing: the same command gives the same image on a busy machine. A plan that
    does not fit in memory is refused, naming the way out, rather than silently changed."""
    ev = method.cfg.get("eval", {})
    tile = ev.get("tile", 0)
    tile = 0 if tile == "auto" else int(tile)
    h, w = lr_shape
    why = (f"{tiles(tile)}, as the run was scored (eval.tile {tile}): {method.name}'s output "
           f"depends on the tiling, so auto does not choose one by timing")
    side_h, side_w = (h, w) if tile <= 0 else (min(tile, h), min(tile, w))
    need = bytes_per_lr_pixel(method, channels, device) * PEAK_FACTOR * side_h * side_w
    budget = free_memory(device) * MEMORY_SHARE
    if need > budget:
        raise BenchError(f"{tiles(tile)} of {h}x{w} need about {need / 2 ** 30:.1f} GiB, "
                         f"{budget / 2 ** 30:.1f} GiB is free to use; give --tile N (the output "
                         f"then differs from the tiling the run was scored with) or --roi")
    if device.type != "cuda":
        return TilePlan(tile, 1, why)
    return TilePlan(tile, min(n_tiles(h, w, tile, overlap), max(1, int(budget // need))), why)


def plan_for(method: Method, ev: dict, lr_shape: tuple[int, int], channels: int,
             device: torch.device) -> TilePlan:
    """The plan an `eval` config asks for: eval.tile and eval.tile_batch as numbers, or auto."""
    tile, batch = ev["tile"], ev["tile_batch"]
    if tile != "auto" and batch != "auto":
        return TilePlan(int(tile), int(batch), f"{tiles(int(tile))}, {batch} per forward, as asked")
    if tile == "auto" and method.tiles_change_output:
        fixed = scored_plan(method, lr_shape, channels, device, float(ev["overlap"]))
        return fixed if batch == "auto" else TilePlan(fixed.tile, int(batch), fixed.why)
    auto = plan(method, lr_shape, channels, device, float(ev["overlap"]),
                None if tile == "auto" else int(tile))
    return auto if batch == "auto" else TilePlan(auto.tile, int(batch), auto.why)
