"""pseudo-SR networks (Maeda, CVPR 2020), as the most-used public implementation builds them.

G_xy (source LR -> clean LR) is basicsr's RCAN at scale 1; U (clean LR -> HR) is basicsr's
RRDBNet; both are in benchsr.blocks. This file holds G_yx, the noisy downscaler, and the four
discriminators' settings. At 3 channels and x4 the nets total 32,995,229 parameters.
"""
from __future__ import annotations

import torch
from torch import nn

from benchsr.nn import blocks
from benchsr.nn import PatchDiscriminator, strided_first


class ResBlock5(nn.Module):
    """conv5 - BN - LeakyReLU - conv5 - BN, plus the input."""

    def __init__(self, ch: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(ch, ch, 5, padding=2), nn.BatchNorm2d(ch),
                                  nn.LeakyReLU(0.2, inplace=True),
                                  nn.Conv2d(ch, ch, 5, padding=2), nn.BatchNorm2d(ch))

    def forward(self, x):
        return x + self.body(x)


class NoisyDownscaler(nn.Module):
    """G_yx: clean LR + noise map z (at 1/4 of the LR size) -> LR in the source's style."""

    def __init__(self, channels: int = 1, feat: int = 64, n_blocks: int = 6, z_feat: int = 8):
        super().__init__()
        half = feat // 2
        self.img_head = nn.Sequential(nn.Conv2d(channels, half, 5, padding=2), nn.BatchNorm2d(half),
                                      nn.LeakyReLU(0.2, inplace=True), ResBlock5(half))
        self.z_head = nn.Sequential(   # two 2x2 transposed convs: z at LR/4 -> LR size
            nn.ConvTranspose2d(1, z_feat, 2, 2), nn.LeakyReLU(0.2, inplace=True),
            nn.ConvTranspose2d(z_feat, 2 * z_feat, 2, 2), nn.LeakyReLU(0.2, inplace=True))
        self.merge = nn.Conv2d(half + 2 * z_feat, feat, 1)
        self.blocks = nn.Sequential(*[ResBlock5(feat) for _ in range(n_blocks)])
        self.fusion = nn.Sequential(
            nn.Conv2d(feat, feat // 2, 1), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(feat // 2, feat // 4, 1), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(feat // 4, channels, 1))

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        feat = torch.cat([self.img_head(x), self.z_head(z)], dim=1)
        return self.fusion(self.blocks(self.merge(feat)))


def build_networks(m: dict, channels: int, scale: int) -> dict[str, nn.Module]:
    """The three generators (G_xy, G_yx, U) and the four discriminators, from config `m`."""
    mean = m["data_mean"]
    n_convs = 5   # a 3-layer PatchGAN has 5 convs
    d = dict(ndf=m["ndf"], n_layers=3, padding=0)
    hr_strides = strided_first(blocks.log2_scale(scale), n_convs)
    return {
        "G_xy": blocks.Normalised(blocks.rcan(channels, 1, m["rcan_feat"], m["rcan_groups"],
                                              m["rcan_blocks"]), channels, mean),
        "G_yx": blocks.Normalised(NoisyDownscaler(channels, m["gyx_feat"], m["gyx_blocks"]),
                                  channels, mean),
        "U": blocks.rrdbnet(channels, scale, m["u_feat"], m["u_blocks"], m["u_grow"]),
        "D_x": PatchDiscriminator(channels, strides=(1,) * n_convs, norm="none", **d),
        "D_y": PatchDiscriminator(channels, strides=(1,) * n_convs, norm="none", **d),
        "D_sr": PatchDiscriminator(channels, strides=hr_strides, norm="none", **d),
        # the reference builds D_esrgan with scale_factor=1: stride 1 throughout, on HR patches
        "D_esrgan": PatchDiscriminator(channels, strides=(1,) * n_convs, norm="instance", **d),
    }
