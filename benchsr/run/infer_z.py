"""Whole-volume through-plane SR with a through-plane run: a thick stack (a clinical scan's
slices) to thin slices, written as NIfTI that overlays the input in 3D Slicer.

Geometry. The in-plane grid, the direction and the slice normal are the input's; the spacing
along z is divided by k. Under the slice profile (`mean`) each input slice stands for k thin
slices centred (k-1)/(2k) of a slice apart around it, so the output has n*k slices and starts
(k-1)/(2k) input slices before the first input slice: the output covers exactly the input's
slabs. Under `pick` each input slice is itself a thin slice, so the output has (n-1)*k+1 slices
from the first input slice to the last, and every k-th output slice lies on an input slice.
Thin slices beyond the outer input slices (the first and last (k-1)/2k under `mean`) have no
input on one side: the methods hold the outer slice there.

Memory stays flat in the number of slices: CHUNK input slices are reconstructed at a time, with
OVERLAP more read on each side (what a method sees along z beyond the slices it writes), and
one output slice is written at a time.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from benchsr.contracts import BenchError
from benchsr.data.volumes import SlabReader
from benchsr.run.infer import (Trained, check_request, tell_cautions, input_region, nifti_header,
                               remove_stale_temps, write_nifti)
from benchsr.runtime.guards import exit_on_signals

CHUNK = 16       # input slices reconstructed at a time
OVERLAP = 4      # input slices read beyond a chunk on each side


def output_slices(n: int, k: int, how: str) -> tuple[int, float]:
    """(output slice count, where the first one lies in input-slice units)."""
    return (n * k, -(k - 1) / (2 * k)) if how == "mean" else ((n - 1) * k + 1, 0.0)


def _thin(trained: Trained, volume: SlabReader, box: tuple, n_out: int):
    """Each output slice's int16 bytes in the output's units, in order, chunk by chunk."""
    z0, z1, y0, y1, x0, x1 = box
    k, method = trained.scale, trained.method
    (lo, hi), (out_lo, out_hi) = trained.window, trained.out_window
    for c0 in range(z0, z1, CHUNK):
        a, b = max(z0, c0 - OVERLAP), min(z1, c0 + CHUNK + OVERLAP)
        raw = np.stack(list(volume.region(a, b, y0, y1, x0, x1))).astype(np.float32)
        thick = torch.from_numpy(np.clip((raw - lo) / (hi - lo), 0, 1)).to(method.ctx.device)
        with torch.no_grad():
            thin = method.super_resolve_z(thick).float().clamp(0, 1).cpu().numpy()
        for j in range((c0 - z0) * k, min((min(c0 + CHUNK, z1) - z0) * k, n_out)):
            out = thin[j - (a - z0) * k] * (out_hi - out_lo) + out_lo
            yield np.round(out).astype("<i2").tobytes()    # x fastest, as NIfTI stores


def super_resolve_volume_z(trained: Trained, input_path: Path, output: Path,
                           slices: str | None = None, roi: str | None = None, progress=None,
                           overwrite: bool = False, series: str | None = None,
                           warn=None) -> dict:
    """Writes `output` (.nii or .nii.gz) atomically; returns what was done. `warn(text)` hears
    the run's cautions once the request is checked, before any work."""
    check_request(input_path, output, overwrite)
    remove_stale_temps(output)
    volume = SlabReader(input_path, series)
    volume.check_hu()
    z0, z1, x0, x1, y0, y1 = input_region(volume, slices, roi, input_path)
    if z1 - z0 < 2:
        raise BenchError(f"{input_path}: {z1 - z0} slice: a through-plane run needs at least 2")
    k, how = trained.scale, trained.method.ctx.degradation
    n_out, first = output_slices(z1 - z0, k, how)
    sx, sy, sz = volume.spacing
    origin = volume.physical_point((float(x0), float(y0), z0 + first))
    header = nifti_header((x1 - x0, y1 - y0, n_out), (sx, sy, sz / k), origin, volume.direction,
                          f"benchsr {trained.label} x{k} along z in {trained.out_units}")
    tell_cautions(trained, warn)
    task = progress.add_task(f"infer {trained.label} x{k} along z", total=n_out) if progress else None
    with exit_on_signals():
        write_nifti(output, header, _thin(trained, volume, (z0, z1, y0, y1, x0, x1), n_out),
                    progress, task)
    return {"output": str(output), "shape_xyz": [x1 - x0, y1 - y0, n_out],
            "spacing": [sx, sy, sz / k], "origin": list(origin), "slices": [z0, z1],
            "roi": [x0, x1, y0, y1], "units": trained.out_units,
            "value_range": list(trained.out_window),
            "tiling": {"why": f"through-plane: {CHUNK} input slices at a time, {OVERLAP} more "
                              f"on each side"}}
