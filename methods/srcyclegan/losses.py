"""SR-CycleGAN losses: the MMSR terms (paper eq. 4-7) and the CycleGAN history pool
(the adversarial losses are benchsr.losses')."""
from __future__ import annotations

import random

import torch
import torch.nn.functional as F

from benchsr.evaluation import ssim


def f_down(img: torch.Tensor, k: int) -> torch.Tensor:
    """Average pooling k x k, stride k (the paper's f_down)."""
    return F.avg_pool2d(img, k)


def f_up(img: torch.Tensor, k: int) -> torch.Tensor:
    """Nearest upsampling x k (the paper's f_up)."""
    return F.interpolate(img, scale_factor=k, mode="nearest")


def identity_up(img: torch.Tensor, k: int, kind: str) -> torch.Tensor:
    """The identity term's enlargement of G2(x): 'bilinear' (align_corners=False),
    'bilinear_ac' (nn.UpsamplingBilinear2d, align_corners=True: the authors' 8x code) or
    'nearest' (their 4x code)."""
    if kind == "nearest":
        return F.interpolate(img, scale_factor=k, mode="nearest")
    if kind not in ("bilinear", "bilinear_ac"):
        raise ValueError(f"unknown identity_up '{kind}' (bilinear, bilinear_ac, nearest)")
    return F.interpolate(img, scale_factor=k, mode="bilinear", align_corners=kind == "bilinear_ac")


def recon(a: torch.Tensor, b: torch.Tensor, kind: str) -> torch.Tensor:
    """Pixel term: 'l2' = mean squared error (paper), 'l1' = mean absolute error (authors' code)."""
    return F.mse_loss(a, b) if kind == "l2" else F.l1_loss(a, b)


def ssim_loss(a: torch.Tensor, b: torch.Tensor, data_range: float,
              padding: str = "valid") -> torch.Tensor:
    """1 - SSIM (Gaussian window 11, sigma 1.5). padding 'valid' averages the map where the
    window fits; 'zero' zero-pads by 5 and averages the whole map, as the authors' pytorch_ssim.
    Computed in fp32 even under autocast: the variance terms cancel catastrophically in bf16."""
    return 1.0 - ssim(a.float(), b.float(), data_range, padding=padding).mean()


class HistoryPool:
    """CycleGAN's image buffer: the discriminator sees a mix of current and past fakes."""

    def __init__(self, size: int = 50):
        self.size = size
        self.images: list[torch.Tensor] = []

    def query(self, batch: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return batch
        out = []
        for img in batch.detach():
            img = img[None]
            if len(self.images) < self.size:
                self.images.append(img.clone())
                out.append(img)
            elif random.random() < 0.5:
                i = random.randrange(self.size)
                out.append(self.images[i].clone())
                self.images[i] = img.clone()
            else:
                out.append(img)
        return torch.cat(out)

    def state(self) -> list[torch.Tensor]:
        return [t.cpu() for t in self.images]

    def load(self, images: list[torch.Tensor], device) -> None:
        self.images = [t.to(device) for t in images]
