"""Interpolation baselines every SR benchmark has: bicubic and nearest. No training.

Bicubic is MATLAB-style (basicsr's imresize, antialiasing irrelevant when enlarging), the
interpolation SR papers report; nearest is torch's.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from benchsr.contracts import Method


class Bicubic(Method):
    name = "bicubic"
    description = "MATLAB-style bicubic interpolation (basicsr imresize); no training"
    paper = "Keys 1981; MATLAB imresize"
    data = "none"
    scales = (2, 3, 4, 8, 16)

    def super_resolve(self, lr: torch.Tensor) -> torch.Tensor:
        from basicsr.utils.matlab_functions import imresize  # lazy: basicsr imports slowly
        k = self.ctx.scale
        out = [torch.from_numpy(np.asarray(imresize(img.permute(1, 2, 0).double().cpu().numpy(), k)))
               for img in lr]
        return torch.stack(out).permute(0, 3, 1, 2).to(lr).clamp(0, 1)


class Nearest(Method):
    name = "nearest"
    description = "Nearest-neighbour upsampling; no training"
    paper = "-"
    data = "none"
    scales = (2, 3, 4, 8, 16)

    def super_resolve(self, lr: torch.Tensor) -> torch.Tensor:
        return F.interpolate(lr, scale_factor=self.ctx.scale, mode="nearest")


PLUGINS = [Bicubic, Nearest]
