"""Networks several method plugins build on, taken from basicsr where basicsr has them:
RRDBNet at any power-of-two scale, EDSR / RCAN for any channel count, a frozen mean-shift layer.

basicsr is imported lazily: its import costs seconds and the CLI should start fast.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def log2_scale(scale: int) -> int:
    n = int(math.log2(scale))
    if 2 ** n != scale:
        raise ValueError(f"scale must be a power of two, got {scale}")
    return n


def rrdbnet(channels: int, scale: int, num_feat: int = 64, num_block: int = 23,
            num_grow_ch: int = 32) -> nn.Module:
    """ESRGAN's generator. basicsr builds x1, x2 (pixel-unshuffle) and x4; x8 and up add one
    more nearest-x2 + conv stage per doubling after basicsr's two."""
    from basicsr.archs.rrdbnet_arch import RRDBNet

    class RRDBNetAnyScale(RRDBNet):
        def __init__(self):
            super().__init__(channels, channels, min(scale, 4), num_feat, num_block, num_grow_ch)
            n_extra = log2_scale(scale) - 2 if scale > 4 else 0
            self.conv_up_extra = nn.ModuleList(nn.Conv2d(num_feat, num_feat, 3, 1, 1)
                                               for _ in range(n_extra))

        def forward(self, x):
            if not len(self.conv_up_extra):
                return super().forward(x)
            feat = self.conv_first(x)
            feat = feat + self.conv_body(self.body(feat))
            for conv in (self.conv_up1, self.conv_up2, *self.conv_up_extra):
                feat = self.lrelu(conv(F.interpolate(feat, scale_factor=2, mode="nearest")))
            return self.conv_last(self.lrelu(self.conv_hr(feat)))

    return RRDBNetAnyScale()


def _neutral_mean(net: nn.Module, channels: int) -> nn.Module:
    """basicsr's EDSR/RCAN hard-code a 3-channel RGB mean; our inputs are already normalised,
    so the in-network shift is zero for any channel count (img_range is 1)."""
    net.mean = torch.zeros(1, channels, 1, 1)
    return net


def edsr(channels: int, scale: int, num_feat: int = 64, num_block: int = 16,
         res_scale: float = 1.0) -> nn.Module:
    from basicsr.archs.edsr_arch import EDSR
    return _neutral_mean(EDSR(channels, channels, num_feat, num_block, scale, res_scale,
                              img_range=1.0), channels)


def rcan(channels: int, scale: int = 1, num_feat: int = 64, num_group: int = 5,
         num_block: int = 10, squeeze_factor: int = 16) -> nn.Module:
    from basicsr.archs.rcan_arch import RCAN
    return _neutral_mean(RCAN(channels, channels, num_feat, num_group, num_block, squeeze_factor,
                              scale, img_range=1.0), channels)


class MeanShift(nn.Conv2d):
    """A frozen 1x1 conv adding `sign * mean` per channel (EDSR-style normalisation layer; its
    weights count as parameters, as in the implementations whose counts the specs quote)."""

    def __init__(self, channels: int, mean: float, sign: int):
        super().__init__(channels, channels, 1)
        with torch.no_grad():
            self.weight.copy_(torch.eye(channels).view(channels, channels, 1, 1))
            self.bias.fill_(sign * mean)
        self.requires_grad_(False)


class Normalised(nn.Module):
    """net(x - mean) + mean, with the shifts as MeanShift layers."""

    def __init__(self, net: nn.Module, channels: int, mean: float):
        super().__init__()
        self.sub_mean, self.net, self.add_mean = (MeanShift(channels, mean, -1), net,
                                                  MeanShift(channels, mean, +1))

    def forward(self, *args):
        return self.add_mean(self.net(self.sub_mean(args[0]), *args[1:]))
