"""CinCGAN networks (Yuan et al., CVPRW 2018), after the public re-implementations
(Junshk/CinCGAN-pytorch, sangyun884/CinCGAN-pytorch).

Inner cycle: G1 (noisy LR -> clean LR), G2 (clean -> noisy), D1 on LR. Outer cycle: the SR
network (basicsr's EDSR, in benchsr.blocks), G3 (HR -> LR downscaler), D2 on HR. The
discriminators are benchsr.gan's PatchDiscriminator with BatchNorm, as the references' _NetD.
"""
from __future__ import annotations

from torch import nn

from benchsr.nn import log2_scale


def _conv(cin: int, cout: int, k: int, stride: int = 1, act: bool = True,
          padding: int | None = None) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride, k // 2 if padding is None else padding)]
    return layers + [nn.LeakyReLU(0.2, inplace=True)] if act else layers


class ResBlock(nn.Module):
    """conv3 - BN - LeakyReLU - conv3 - BN - LeakyReLU, plus the input (Junshk's block)."""

    def __init__(self, ch: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(ch, ch, 3, 1, 1), nn.BatchNorm2d(ch),
                                  nn.LeakyReLU(0.2, inplace=True),
                                  nn.Conv2d(ch, ch, 3, 1, 1), nn.BatchNorm2d(ch),
                                  nn.LeakyReLU(0.2, inplace=True))

    def forward(self, x):
        return x + self.body(x)


class Generator(nn.Module):
    """The references' one generator: conv7, two head convs, res-blocks, conv3, conv3, conv7,
    LeakyReLU 0.2. `n_down` head convs are 4x4 stride 2 (G3, the downscaler: log2(k) of them);
    the others 3x3 stride 1 (G1, G2)."""

    def __init__(self, channels: int = 1, feat: int = 64, n_blocks: int = 6, n_down: int = 0):
        super().__init__()
        head = _conv(channels, feat, 7)
        for i in range(max(2, n_down)):
            head += _conv(feat, feat, 4, 2, padding=1) if i < n_down else _conv(feat, feat, 3)
        self.model = nn.Sequential(
            *head, *[ResBlock(feat) for _ in range(n_blocks)],
            *_conv(feat, feat, 3), *_conv(feat, feat, 3), *_conv(feat, channels, 7, act=False))

    def forward(self, x):
        return self.model(x)


def inner_generator(channels: int, feat: int, n_blocks: int) -> Generator:
    """G1 / G2: LR -> LR."""
    return Generator(channels, feat, n_blocks)


def downscaler(scale: int, channels: int, feat: int, n_blocks: int) -> Generator:
    """G3: HR -> LR, the full generator with log2(k) stride-2 head convs (2 at x4, as Junshk's
    _NetG_DOWN(stride=2))."""
    return Generator(channels, feat, n_blocks, n_down=log2_scale(scale))
