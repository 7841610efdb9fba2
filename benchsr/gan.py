"""Pieces GAN method plugins share: range conversion, freezing, init, a configurable PatchGAN,
LSGAN / vanilla / relativistic / TV losses, step-based learning-rate schedules, and an
exponential moving average of a generator.

Nothing here knows a method; a plugin composes these with its own networks.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def to_signed(img: torch.Tensor) -> torch.Tensor:
    """Harness range [0, 1] -> network range [-1, 1] (tanh generators)."""
    return img * 2 - 1


def from_signed(img: torch.Tensor) -> torch.Tensor:
    return ((img.float() + 1) / 2).clamp(0, 1)


def set_requires_grad(nets, flag: bool) -> None:
    """Freeze / unfreeze networks, e.g. discriminators during the generator step."""
    for net in nets:
        for p in net.parameters():
            p.requires_grad_(flag)


def init_normal(module: nn.Module, std: float = 0.02) -> None:
    """N(0, std) on conv weights, zero bias: CycleGAN's 'normal' init."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def _norm(kind: str, ch: int) -> list[nn.Module]:
    if kind == "instance":
        return [nn.InstanceNorm2d(ch, affine=False)]
    if kind == "batch":
        return [nn.BatchNorm2d(ch)]
    return []


class PatchDiscriminator(nn.Module):
    """PatchGAN: kernel 4, widths ndf * (1, 2, 4, 8, ...), LeakyReLU 0.2, no norm on the first
    layer. `strides` has n_layers + 2 entries (one per conv, the 1-channel output conv last).
    The defaults are CycleGAN's 70x70 PatchGAN (strides 2-2-2-1-1, padding 1, InstanceNorm).
    Convs followed by BatchNorm carry no bias (BN's shift replaces it), as the references do."""

    def __init__(self, channels: int = 1, ndf: int = 64, n_layers: int = 3,
                 strides: tuple[int, ...] = (2, 2, 2, 1, 1), padding: int = 1,
                 norm: str = "instance"):
        super().__init__()
        if len(strides) != n_layers + 2:
            raise ValueError(f"need {n_layers + 2} strides, got {strides}")
        layers: list[nn.Module] = [nn.Conv2d(channels, ndf, 4, strides[0], padding),
                                   nn.LeakyReLU(0.2, inplace=True)]
        ch = ndf
        for i in range(1, n_layers + 1):
            out = ndf * min(2 ** i, 8)
            layers += [nn.Conv2d(ch, out, 4, strides[i], padding, bias=norm != "batch"),
                       *_norm(norm, out),
                       nn.LeakyReLU(0.2, inplace=True)]
            ch = out
        layers.append(nn.Conv2d(ch, 1, 4, strides[-1], padding))
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)


def strided_first(n_strided: int, n_convs: int) -> tuple[int, ...]:
    """Strides 2 in the first `n_strided` convs, 1 after: a PatchGAN that sees an HR image at
    the receptive field its LR twin has (pseudo-SR's D_sr at x k uses log2(k))."""
    return tuple(2 if i < n_strided else 1 for i in range(n_convs))


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


def ema(net: nn.Module, decay: float) -> torch.optim.swa_utils.AveragedModel:
    """A frozen exponential moving average of `net` (update with .update_parameters(net))."""
    avg = torch.optim.swa_utils.AveragedModel(
        net, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(decay), use_buffers=True)
    set_requires_grad([avg], False)
    return avg


def bicubic_down(img: torch.Tensor, k: int) -> torch.Tensor:
    """Plain F.interpolate bicubic x1/k (no antialiasing), clamped to [0, 1]: pseudo-SR's
    reference makes its clean LR domain so. Not the dataset's degradation: pairs for training
    come from RunContext.degrade, the function the evaluation uses."""
    return F.interpolate(img, scale_factor=1 / k, mode="bicubic", align_corners=False).clamp(0, 1)


def scale_lr(optimizer: torch.optim.Optimizer, factor: float) -> None:
    """Each group's lr = its initial lr * factor. Schedules below are functions of the step, so
    a resumed run replays them (the initial lr travels in the optimizer's state_dict)."""
    for group in optimizer.param_groups:
        group["lr"] = group.setdefault("base_lr", group["lr"]) * factor


def step_decay(optimizer: torch.optim.Optimizer, step: int, every: int,
               factor: float = 0.5) -> None:
    """lr = initial lr * factor ** (step // every); every = 0 keeps it constant."""
    scale_lr(optimizer, factor ** (step // every) if every else 1.0)


def milestones(fractions, total_steps: int) -> list[int]:
    """Milestones given as shares of a run's steps -> step numbers (a profile's length scales
    them: the references' 100k of 300k is step 150 of 450)."""
    return [int(round(f * total_steps)) for f in fractions]


def multistep_factor(step: int, steps: list[int], gamma: float) -> float:
    """MultiStepLR as a function of the step: gamma ** (milestones passed)."""
    return gamma ** sum(step >= s for s in steps)


def cosine_restart_factor(step: int, period: int, eta_min_ratio: float) -> float:
    """BasicSR's CosineAnnealingRestartLR with equal periods and restart weights 1: lr / base."""
    t = (step % period) / max(1, period)
    return eta_min_ratio + (1 - eta_min_ratio) * 0.5 * (1 + math.cos(math.pi * t))


def esrgan_recipe_step(ctx, step: int, make_sr, hr: torch.Tensor, disc: nn.Module,
                       opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer, w: dict,
                       perceptual=None, gan_on: bool = True, for_d=None, prefix: str = "",
                       d_first: bool = False) -> dict[str, float]:
    """One ESRGAN-recipe update of a generator and its discriminator: L1 * lambda_l1 +
    perceptual * lambda_percep (when the VGG19 weights exist) + relativistic GAN * lambda_gan;
    L1 alone (weight 1) while `gan_on` is False (a warm-up). `make_sr()` runs the generator;
    `for_d(real, fake)` may crop or resize both for the discriminator. BasicSR updates G, then
    D on the same fakes; `d_first` updates D first (pseudo-SR's order). Returns named losses,
    `total` included."""
    out: dict[str, float] = {}
    with ctx.autocast():
        sr = make_sr()
    real_d, fake_d = for_d(hr, sr) if (gan_on and for_d) else (hr, sr)

    def update_d():
        set_requires_grad([disc], True)
        with ctx.autocast():
            loss_d = relativistic_d(disc(real_d), disc(fake_d.detach()))
        ctx.optimize(loss_d, opt_d, step, f"{prefix}discriminator")
        out[f"{prefix}d"] = float(loss_d.detach())

    if gan_on and d_first:
        update_d()
    set_requires_grad([disc], False)
    with ctx.autocast():
        terms = {"l1": (w["lambda_l1"] if gan_on else 1.0) * F.l1_loss(sr.float(), hr)}
        if gan_on:
            if perceptual is not None:
                terms["percep"] = w["lambda_percep"] * perceptual(sr.float(), hr)
            terms["gan"] = w["lambda_gan"] * relativistic_g(disc(real_d).detach(), disc(fake_d))
        total = sum(terms.values())
    ctx.optimize(total, opt_g, step, f"{prefix}generator")
    out.update({f"{prefix}{k}": float(v.detach()) for k, v in terms.items()})
    out[f"{prefix}total"] = float(total.detach())
    if gan_on and not d_first:
        update_d()
    return out
