"""Interpolation baselines every SR benchmark has: bicubic and nearest in-plane, linear and
cubic-spline along z for the through-plane track. No training.

Bicubic is MATLAB-style (basicsr's imresize, antialiasing irrelevant when enlarging), the
interpolation SR papers report; nearest is torch's. linear-z and spline-z interpolate the thick
slices along z alone (scipy), at the thin positions of the protocol's slice profile
(benchsr.data.interpolate_z): beyond the outer thick centres they hold the outer slice.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from benchsr.contracts import Method
from benchsr.data import enlarge_bicubic, interpolate_z


class Bicubic(Method):
    name = "bicubic"
    description = "MATLAB-style bicubic interpolation (basicsr imresize); no training"
    paper = "Keys 1981; MATLAB imresize"
    data = "none"
    deterministic = True
    scales = (2, 3, 4, 8, 16)

    def super_resolve(self, lr: torch.Tensor) -> torch.Tensor:
        k, arr = self.ctx.scale, lr.detach().float().cpu().numpy()
        out = np.stack([[enlarge_bicubic(ch, k) for ch in img] for img in arr])
        return torch.from_numpy(out).to(lr)


class Nearest(Method):
    name = "nearest"
    description = "Nearest-neighbour upsampling; no training"
    paper = "-"
    data = "none"
    deterministic = True
    scales = (2, 3, 4, 8, 16)

    def super_resolve(self, lr: torch.Tensor) -> torch.Tensor:
        return F.interpolate(lr, scale_factor=self.ctx.scale, mode="nearest")


class _AlongZ(Method):
    data = "none"
    deterministic = True
    scales = (2, 3, 4, 5, 6, 8)
    planes = ("through",)
    order = 1

    def super_resolve_z(self, thick: torch.Tensor) -> torch.Tensor:
        arr = thick.detach().float().cpu().numpy()
        out = interpolate_z(arr, self.ctx.scale, self.ctx.degradation, self.order)
        return torch.from_numpy(np.clip(out, 0, 1)).to(thick)   # a spline overshoots edges


class LinearZ(_AlongZ):
    name = "linear-z"
    description = "Linear interpolation along z between thick slices (scipy); no training"
    paper = "-"
    order = 1


class SplineZ(_AlongZ):
    name = "spline-z"
    description = "Cubic-spline interpolation along z between thick slices (scipy); no training"
    paper = "-"
    order = 3


PLUGINS = [Bicubic, Nearest, LinearZ, SplineZ]
