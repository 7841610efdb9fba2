"""CinCGAN networks (Yuan et al., CVPRW 2018), after the public re-implementations (methods.md).

Inner cycle: G1 (noisy LR -> clean LR), G2 (clean -> noisy), D1 on LR. Outer cycle: the SR
network (basicsr's EDSR, in benchsr.blocks), G3 (HR -> LR downscaler), D2 on HR.
"""
from __future__ import annotations

from torch import nn

from benchsr.blocks import log2_scale


def _conv(cin: int, cout: int, k: int, stride: int = 1, act: bool = True) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride, k // 2)]
    return layers + [nn.LeakyReLU(0.2, inplace=True)] if act else layers


class ResBlock(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.body = nn.Sequential(*_conv(ch, ch, 3), *_conv(ch, ch, 3, act=False))

    def forward(self, x):
        return x + self.body(x)


class InnerGenerator(nn.Module):
    """G1 / G2: conv7 - conv3 - conv3 - res-blocks - conv3 - conv3 - conv7, LeakyReLU 0.2."""

    def __init__(self, channels: int = 1, feat: int = 64, n_blocks: int = 6):
        super().__init__()
        self.model = nn.Sequential(
            *_conv(channels, feat, 7), *_conv(feat, feat, 3), *_conv(feat, feat, 3),
            *[ResBlock(feat) for _ in range(n_blocks)],
            *_conv(feat, feat, 3), *_conv(feat, feat, 3), *_conv(feat, channels, 7, act=False))

    def forward(self, x):
        return self.model(x)


class Downscaler(nn.Module):
    """G3: HR -> LR with log2(k) stride-2 convs."""

    def __init__(self, scale: int, channels: int = 1, feat: int = 64):
        super().__init__()
        layers = _conv(channels, feat, 3)
        for _ in range(log2_scale(scale)):
            layers += _conv(feat, feat, 3, stride=2)
        self.model = nn.Sequential(*layers, *_conv(feat, channels, 3, act=False))

    def forward(self, x):
        return self.model(x)
