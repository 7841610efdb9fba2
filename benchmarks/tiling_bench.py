"""The tiling section of benchmarks/bench.py: SR-CycleGAN's quick G1 at 4x on a 512² LR slice (the
size `benchsr infer` feeds it from a clinical CT), on the device it runs on.

- tiles/s of 128² tiles at 1, 5 and 25 tiles per forward;
- ms per slice for the old default (128² tiles, one per forward, mean blend, overlap 0.25), for
  whole slices, for `auto` (benchsr/evaluation/tiling.py), and for the Gaussian and linear blends;
- tiling_speedup: the old default's time over auto's (must be >= 1);
- how much auto's output differs from the old default's: InstanceNorm makes SR tile-dependent.
"""
from __future__ import annotations

import numpy as np
import torch

from benchsr.evaluation import tiling
from benchsr.api import create_method
from steps_bench import median_time

LEGACY = {"tile": tiling.LEGACY_TILE, "tile_batch": 1, "blend": "mean", "overlap": 0.25}
BATCHES = (1, 5, 25)
SIDE = 512


def _slice(device: torch.device) -> tuple[torch.Tensor, str]:
    """A real 512² chest CT slice in [0, 1] where the embedded CT is installed, else a synthetic
    one (said so in the report)."""
    try:
        from benchsr.data.embedded import chest_ct_folder
        from benchsr.data.volumes import read_volume, window
        import SimpleITK as sitk
        path = sorted(chest_ct_folder().glob("*"))[0]
        hu = sitk.GetArrayFromImage(read_volume(path)).astype(np.float32)
        img = window(hu[hu.shape[0] // 2], -1000, 2500)[:SIDE, :SIDE]
        source = f"the embedded chest CT ({path.name}), middle slice, HU [-1000, 2500]"
    except Exception as exc:   # the bare GPU machine has no embedded CT
        rng = np.random.default_rng(0)
        img = np.clip(rng.normal(0.3, 0.1, (SIDE, SIDE)), 0, 1).astype(np.float32)
        source = f"synthetic (the embedded CT is not here: {type(exc).__name__})"
    return torch.from_numpy(np.ascontiguousarray(img))[None, None].to(device), source


def _sr(method, lr: torch.Tensor, spec: dict) -> torch.Tensor:
    return tiling.tiled_sr(method, lr, method.ctx.scale, int(spec["tile"]), spec["overlap"],
                           int(spec["tile_batch"]), spec["blend"])


def _method(device: torch.device, run) -> tuple[object, str]:
    """A trained SR-CycleGAN at 4x (`run`, a run folder with its checkpoint), or the quick G1
    at random init: the timings are the same, the output change less telling."""
    if run is not None:
        from benchsr.run.infer import load_trained
        trained = load_trained(run, None, device, "fp32", allow_unfinished=False)
        if trained.scale != 4:
            raise SystemExit(f"--tiling-run {run}: a 4x run is needed, not {trained.scale}x")
        return trained.method, f"{trained.label}, trained ({run})"
    torch.manual_seed(0)
    return (create_method("srcyclegan", scale=4, profile="quick", device=str(device)),
            "SR-CycleGAN G1, quick profile, x4, random init (seed 0)")


def tiling_report(device: torch.device, repeats: int, run=None) -> dict:
    method, net = _method(device, run)
    method.train(False)
    lr, source = _slice(device)
    plan = tiling.plan_for(method, {"tile": "auto", "tile_batch": "auto", "overlap": 0.25},
                           (SIDE, SIDE), 1, device)
    auto = {"tile": plan.tile, "tile_batch": plan.batch, "blend": "mean", "overlap": 0.25}
    out = {"device": str(device), "net": net,
           "slice": source, "lr_side": SIDE, "auto_plan": plan.why, "tiles_per_s": {}, "ms_per_slice": {}}
    tile = tiling.LEGACY_TILE
    for b in BATCHES:
        tiles = torch.rand(b, 1, tile, tile, device=device)
        with torch.no_grad():
            s = median_time(lambda: tiling.checked_sr(method, tiles), repeats, 1, device)
        out["tiles_per_s"][str(b)] = b / s
        print(f"  tiling: {b:2d} tiles of {tile}² per forward: {b / s:7.2f} tiles/s", flush=True)
    specs = {"old default (128² tiles, 1 per forward, mean)": LEGACY,
             "whole slice": {**LEGACY, "tile": 0},
             f"auto ({plan.why})": auto,
             "128² tiles, 1 per forward, gaussian": {**LEGACY, "blend": "gaussian"},
             "128² tiles, 1 per forward, linear": {**LEGACY, "blend": "linear"}}
    outputs, timed = {}, {}
    for name, spec in specs.items():
        key = tuple(sorted(spec.items()))
        if key in timed:   # the same plan as an earlier row: one computation, timed once
            out["ms_per_slice"][name], outputs[name] = out["ms_per_slice"][timed[key]], outputs[timed[key]]
            out.setdefault("same_plan_as", {})[name] = timed[key]
        else:
            timed[key] = name
            with torch.no_grad():
                out["ms_per_slice"][name] = 1e3 * median_time(lambda: _sr(method, lr, spec), repeats, 1, device)
                outputs[name] = _sr(method, lr, spec)
        print(f"  tiling: {name}: {out['ms_per_slice'][name]:.0f} ms per slice", flush=True)
    legacy_name, auto_name = list(specs)[0], list(specs)[2]
    out["tiling_speedup"] = out["ms_per_slice"][legacy_name] / out["ms_per_slice"][auto_name]
    out["output_change_vs_old_default"] = {
        name: _change(outputs[legacy_name], sr) for name, sr in outputs.items() if name != legacy_name}
    return out


def _change(old: torch.Tensor, new: torch.Tensor) -> dict:
    """How far `new` is from `old`, on [0, 1] images (x 3500 = HU in the [-1000, 2500] window)."""
    diff = (new - old).abs()
    mse = float((diff ** 2).mean())
    return {"mean_abs": float(diff.mean()), "max_abs": float(diff.max()),
            "psnr_db": float("inf") if mse == 0 else float(-10 * np.log10(mse))}


def markdown(rep: dict) -> list[str]:
    lines = ["", f"## Tiling on {rep['device']} ({rep['net']})", "",
             f"Slice: {rep['slice']}, {rep['lr_side']}² LR -> {rep['lr_side'] * 4}² SR. "
             f"`auto` chose: {rep['auto_plan']}. **tiling_speedup (old default / auto): "
             f"{rep['tiling_speedup']:.2f}×**.", "",
             "| tiles per forward (128²) | tiles/s |", "|---|---|"]
    lines += [f"| {b} | {v:.2f} |" for b, v in rep["tiles_per_s"].items()]
    lines += ["", "| tiling | ms per 512² slice | vs the old default: mean abs Δ | max abs Δ | PSNR (dB) |",
              "|---|---|---|---|---|"]
    for name, ms in rep["ms_per_slice"].items():
        ch = rep["output_change_vs_old_default"].get(name)
        cells = (f"{ch['mean_abs']:.4f} | {ch['max_abs']:.4f} | {ch['psnr_db']:.1f}" if ch else "– | – | –")
        same = rep.get("same_plan_as", {}).get(name)
        lines.append(f"| {name}{f' (the same plan as: {same}; timed once)' if same else ''} | {ms:.0f} | {cells} |")
    return lines
