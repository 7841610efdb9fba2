"""Losses several method plugins share: adversarial (LSGAN, vanilla, relativistic average), total
variation, and a VGG19 feature loss whose ImageNet weights come from the torch hub cache or not
at all. Nothing here knows a method."""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn


def lsgan(pred: torch.Tensor, real: bool) -> torch.Tensor:
    """Least-squares GAN loss against 1 (real) or 0 (fake), in fp32."""
    target = torch.ones_like(pred) if real else torch.zeros_like(pred)
    return F.mse_loss(pred.float(), target.float())


def _bce(pred: torch.Tensor, real: bool) -> torch.Tensor:
    pred = pred.float()
    return F.binary_cross_entropy_with_logits(pred, torch.full_like(pred, float(real)))


def vanilla(pred: torch.Tensor, real: bool) -> torch.Tensor:
    """The log-likelihood GAN loss (Goodfellow et al.): binary cross-entropy on logits, fp32."""
    return _bce(pred, real)


GAN_LOSSES = {"lsgan": lsgan, "vanilla": vanilla}


def gan_loss(kind: str):
    """The adversarial loss named `kind` (lsgan | vanilla)."""
    if kind not in GAN_LOSSES:
        raise ValueError(f"unknown GAN loss '{kind}' ({' | '.join(GAN_LOSSES)})")
    return GAN_LOSSES[kind]


def relativistic_g(real_pred: torch.Tensor, fake_pred: torch.Tensor) -> torch.Tensor:
    """Relativistic average GAN, generator side (ESRGAN): fakes should look more real than the
    average real, reals less real than the average fake."""
    return 0.5 * (_bce(real_pred - fake_pred.mean(), False) + _bce(fake_pred - real_pred.mean(), True))


def relativistic_d(real_pred: torch.Tensor, fake_pred: torch.Tensor) -> torch.Tensor:
    """Relativistic average GAN, discriminator side; `fake_pred` from detached fakes. As BasicSR
    and pseudo-SR do, each side's reference mean is a constant: no gradient flows through it."""
    return 0.5 * (_bce(real_pred - fake_pred.detach().mean(), True)
                  + _bce(fake_pred - real_pred.detach().mean(), False))


def tv_loss(img: torch.Tensor) -> torch.Tensor:
    """Squared total variation as CinCGAN's reference TVLoss defines it: twice the sum of the
    mean squared vertical and horizontal differences."""
    img = img.float()
    dh = (img[..., 1:, :] - img[..., :-1, :]).pow(2).mean()
    dw = (img[..., :, 1:] - img[..., :, :-1]).pow(2).mean()
    return 2 * (dh + dw)


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


def load_perceptual(ctx, weight: float) -> VGGPerceptual | None:
    """The VGG19 loss on ctx.device when `weight` is set and the weights are cached; otherwise
    None, with the reason added to the run's notes."""
    if not weight:
        return None
    loss, reason = VGGPerceptual.load(ctx.device)
    if loss is None:
        ctx.notes.append(reason)
        ctx.recipe_changes["perceptual"] = "off"   # the row's label says so
    return loss
