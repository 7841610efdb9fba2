"""Training pieces GAN method plugins share: range conversion, freezing, init, a configurable
PatchGAN, an exponential moving average of a generator, and one relativistic-GAN update of a
generator and its discriminator (the recipe ESRGAN introduced; pseudo-SR's U uses it too).
Losses are in losses.py, schedules in schedules.py.

Nothing here knows a method; a plugin composes these with its own networks.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from benchsr.nn.losses import relativistic_d, relativistic_g


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


def ema(net: nn.Module, decay: float) -> torch.optim.swa_utils.AveragedModel:
    """A frozen exponential moving average of `net` (update with .update_parameters(net))."""
    avg = torch.optim.swa_utils.AveragedModel(
        net, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(decay), use_buffers=True)
    set_requires_grad([avg], False)
    return avg


def as_floats(terms: dict[str, torch.Tensor], prefix: str = "") -> dict[str, float]:
    """Named loss tensors -> the floats train_step returns."""
    return {f"{prefix}{k}": float(v.detach()) for k, v in terms.items()}


def relativistic_gan_step(ctx, step: int, make_sr, hr: torch.Tensor, disc: nn.Module,
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
    out.update(as_floats(terms, prefix))
    out[f"{prefix}total"] = float(total.detach())
    if gan_on and not d_first:
        update_d()
    return out
