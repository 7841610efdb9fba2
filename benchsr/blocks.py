"""Networks several method plugins build on, taken from basicsr where basicsr has them:
RRDBNet at any power-of-two scale, EDSR / RCAN for any channel count, a frozen mean-shift layer,
and a VGG19 feature loss whose ImageNet weights come from the torch hub cache or not at all.

basicsr is imported lazily: its import costs seconds and the CLI should start fast.
"""
from __future__ import annotations

import math
from pathlib import Path

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


# ---- VGG19 perceptual loss -------------------------------------------------------------------
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
VGG19_CONV5_4 = 35   # features[:35] ends with conv5_4, before its ReLU


def vgg19_weights_path() -> Path:
    """Where torchvision would cache the ImageNet VGG19 weights (we never download them)."""
    from torchvision.models import VGG19_Weights
    name = VGG19_Weights.IMAGENET1K_V1.url.rsplit("/", 1)[-1]
    return Path(torch.hub.get_dir()) / "checkpoints" / name


def vgg19_features() -> nn.Module:
    """VGG19's convolutional trunk up to conv5_4 (torchvision's layer list, without building the
    120M-parameter classifier we would throw away)."""
    from torchvision.models.vgg import cfgs, make_layers
    return make_layers(cfgs["E"])[:VGG19_CONV5_4]


class VGGPerceptual(nn.Module):
    """L1 between VGG19 conv5_4 features (before ReLU) of two images in [0, 1], as ESRGAN.
    Grey images are repeated to RGB and ImageNet-normalised. Build with `load()`."""

    def __init__(self, features: nn.Module):
        super().__init__()
        self.features = features.eval().requires_grad_(False)
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1))

    @classmethod
    def load(cls, device) -> tuple[VGGPerceptual | None, str]:
        """(loss module, '') when the weights are in the hub cache; (None, reason) otherwise."""
        path = vgg19_weights_path()
        if not path.is_file():
            return None, f"perceptual loss off: VGG19 weights not found ({path})"
        state = torch.load(path, map_location="cpu", weights_only=True)
        features = vgg19_features()
        prefix = "features."
        features.load_state_dict({k[len(prefix):]: v for k, v in state.items()
                                  if k.startswith(prefix) and int(k.split(".")[1]) < VGG19_CONV5_4})
        return cls(features).to(device), ""

    def _feat(self, img: torch.Tensor) -> torch.Tensor:
        if img.shape[1] == 1:
            img = img.expand(-1, 3, -1, -1)
        return self.features((img - self.mean) / self.std)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.l1_loss(self._feat(pred), self._feat(target).detach())
