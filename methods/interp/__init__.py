"""Interpolation baselines every SR benchmark has: bicubic and nearest. No training.

Bicubic is MATLAB-style (basicsr's imresize, antialiasing irrelevant when enlarging), the
interpolation SR papers report; nearest is torch's.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from benchsr.contracts import Method
from benchsr.data import enlarge_bicubic


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


PLUGINS = [Bicubic, Nearest]
