"""ESRGAN (Wang et al., ECCV Workshops 2018) with basicsr's RRDBNet and VGGStyleDiscriminator.

Read top to bottom: networks, losses, one training step, inference.
Two phases, as BasicSR's two option files:
1. RRDBNet-PSNR (train_RRDBNet_PSNR_x4.yml): L1 only, on pairs made from the HR stream (the HR
   patch and its LR under the dataset's own degradation), Adam 2e-4 with cosine annealing
   restarts (4 equal periods, eta_min 1e-7). `model.psnr_fraction` is its share of the run.
2. ESRGAN (train_ESRGAN_x4.yml), from those weights: L1 x 1e-2, VGG19 conv5_4 perceptual x 1
   (only when the ImageNet weights are in the torch hub cache; the run says so otherwise),
   relativistic GAN x 5e-3, Adam 1e-4, MultiStepLR at 1/8, 1/4, 1/2, 3/4 of the phase (50k, 100k,
   200k, 300k of 400k), gamma 0.5; the EMA (0.999) of the generator is the network evaluated.
The SR-CycleGAN paper trained the GAN phase on UNPAIRED patches (a random LR patch against a
random HR patch): that is the default; `paired` trains it on pairs; `psnr` is phase 1 alone.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from benchsr.nn import rrdbnet
from benchsr.contracts import BenchError, Method, TrainBatch
from benchsr.nn import ema, relativistic_gan_step
from benchsr.nn import load_perceptual
from benchsr.nn import milestones

D_SIZES = (128, 256)   # the only input sizes VGGStyleDiscriminator accepts


class BicubicResidual(torch.nn.Module):
    """G(x) + bicubic(x): the network learns what interpolation misses (VDSR's global residual).
    Not in BasicSR's RRDBNet; `model.residual: bicubic` turns it on."""

    def __init__(self, net: torch.nn.Module, scale: int):
        super().__init__()
        self.net, self.scale = net, scale

    def forward(self, x):
        up = F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)
        return self.net(x) + up


class ESRGAN(Method):
    name = "esrgan"
    description = "RRDBNet + VGG-style discriminator, L1 + perceptual + relativistic GAN, EMA"
    paper = "Wang et al., ECCV Workshops 2018 (arXiv:1809.00219)"
    data = "unpaired"
    scales = (2, 4, 8, 16)
    inference_network = "G"
    contiguous_nets = ("D",)   # basicsr's VGGStyleDiscriminator flattens with .view

    # ---- networks -----------------------------------------------------------------------------
    def build(self) -> None:
        from basicsr.archs.discriminator_arch import VGGStyleDiscriminator
        m, k, c, dev = self.cfg["model"], self.ctx.scale, self.ctx.channels, self.ctx.device
        hr_patch = self.cfg["train"]["lr_patch"] * k
        # A 192 HR patch (the paper's COVID protocol) is randomly cropped to 128 for D; a patch
        # under 128 is enlarged bilinearly, which changes what D sees, so the run says so.
        self.d_size = max([s for s in D_SIZES if s <= hr_patch] or [D_SIZES[0]])
        if hr_patch < self.d_size:
            self.ctx.notes.append(f"ESRGAN discriminator sees {hr_patch}px HR patches enlarged "
                                  f"to {self.d_size}px (VGGStyleDiscriminator takes 128 or 256)")
        elif hr_patch > self.d_size:
            self.ctx.notes.append(f"ESRGAN discriminator sees random {self.d_size}px crops of "
                                  f"the {hr_patch}px HR patches")
        g = rrdbnet(c, k, m["num_feat"], m["num_block"], m["num_grow"])
        if m["residual"] == "bicubic":
            g = BicubicResidual(g, k)
        self.nets = {
            "G": g.to(dev),
            "D": VGGStyleDiscriminator(c, m["ndf"], input_size=self.d_size).to(dev),
        }
        self.g_ema = ema(self.nets["G"], m["ema_decay"])
        betas = (0.9, 0.99)
        self.optimizers = {name: torch.optim.Adam(net.parameters(), lr=m["lr"], betas=betas)
                           for name, net in self.nets.items()}
        # phase 1 has its own optimiser: BasicSR's GAN run starts a fresh Adam from its weights
        self.optimizers["G_psnr"] = torch.optim.Adam(self.nets["G"].parameters(),
                                                     lr=m["lr_psnr"], betas=betas)
        total = self.ctx.total_steps
        self.psnr_steps = int(round(m["psnr_fraction"] * total))
        gan_steps = milestones(m["gan_milestones"], total - self.psnr_steps)   # from phase 2's start
        self.gan_milestones = [self.psnr_steps + s for s in gan_steps]
        # torch's schedulers, stepped once per training step of their phase (end of train_step);
        # their state is in the checkpoint, so a resumed run goes on where it stopped
        lr_sched = torch.optim.lr_scheduler
        self.schedulers = {
            "G_psnr": lr_sched.CosineAnnealingWarmRestarts(
                self.optimizers["G_psnr"], T_0=self._psnr_period(), eta_min=m["psnr_eta_min"]),
            **{name: lr_sched.MultiStepLR(self.optimizers[name], gan_steps, m["gan_gamma"])
               for name in ("G", "D")}}
        self.ctx.notes.append(f"ESRGAN phases: RRDBNet-PSNR (L1 on {self.ctx.degradation} pairs) "
                              f"for {self.psnr_steps} steps, then the GAN recipe for "
                              f"{total - self.psnr_steps} steps")
        # only the GAN phase has a perceptual term: a run of the PSNR phase alone (esrgan:psnr)
        # loses nothing without the VGG19 weights, and its label must not say it does
        self.perceptual = load_perceptual(self.ctx, m["lambda_percep"] if total > self.psnr_steps else 0)
        if m["training"] not in ("unpaired", "paired"):
            raise BenchError(f"esrgan: model.training must be unpaired or paired, got {m['training']!r}")

    def _psnr_period(self) -> int:
        """Steps per cosine period: the PSNR phase in `psnr_periods` equal parts (rounded up)."""
        return max(1, -(-self.psnr_steps // int(self.cfg["model"]["psnr_periods"])))

    def schedule_points(self) -> dict[str, list[int]]:
        period = self._psnr_period()
        return {"PSNR phase end": [self.psnr_steps],
                "cosine restarts": list(range(period, self.psnr_steps, period)),
                "GAN milestones": self.gan_milestones}

    def _for_d(self, real: torch.Tensor, fake: torch.Tensor):
        """Bring HR patches to the discriminator's size: one random crop for the batch, or a
        bilinear enlargement when the patch is smaller."""
        size, s = self.d_size, real.shape[-1]
        if s > size:
            i, j = (int(v) for v in torch.randint(0, s - size + 1, (2,)))
            return real[..., i:i + size, j:j + size], fake[..., i:i + size, j:j + size]
        if s < size:
            grow = lambda t: F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)
            return grow(real), grow(fake)
        return real, fake

    # ---- one training step ----------------------------------------------------------------------
    def _psnr_step(self, y: torch.Tensor, step: int) -> dict[str, float]:
        g = self.nets["G"]
        with self.ctx.autocast():
            loss = F.l1_loss(g(self.ctx.degrade(y)).float(), y)
        self.ctx.optimize(loss, self.optimizers["G_psnr"], step, "generator (PSNR phase)")
        self._step_schedulers(step)
        return {"psnr_l1": float(loss.detach()), "total_g": float(loss.detach())}

    def train_step(self, batch: TrainBatch, step: int) -> dict[str, float]:
        m, ctx, g, d = self.cfg["model"], self.ctx, self.nets["G"], self.nets["D"]
        y = batch.hr
        if step < self.psnr_steps:
            return self._psnr_step(y, step)
        if step == self.psnr_steps:
            self.g_ema.n_averaged.zero_()   # the EMA starts from the PSNR weights, as BasicSR's
        x = ctx.degrade(y) if m["training"] == "paired" else batch.lr
        out = relativistic_gan_step(ctx, step, lambda: g(x), y, d, self.optimizers["G"],
                                 self.optimizers["D"], m, self.perceptual, for_d=self._for_d)
        self.g_ema.update_parameters(g)
        self._step_schedulers(step)
        out["total_g"] = out.pop("total")
        return out

    def _step_schedulers(self, step: int) -> None:
        """After each step: the PSNR phase's cosine restarts, then the GAN phase's MultiStepLR."""
        for name in (("G_psnr",) if step < self.psnr_steps else ("G", "D")):
            self.schedulers[name].step()

    def end_epoch(self, epoch: int) -> None:
        pass   # the schedulers step per training step (_step_schedulers)

    def extra_state(self):
        return {"g_ema": self.g_ema.state_dict()}

    def load_extra_state(self, state):
        if "g_ema" in state:
            self.g_ema.load_state_dict(state["g_ema"])

    # ---- inference ----------------------------------------------------------------------------
    def inference_modules(self):
        """The EMA once the GAN phase has run; the plain generator after the PSNR phase alone
        (BasicSR's PSNR model keeps no EMA)."""
        return {"G": self.g_ema.module if int(self.g_ema.n_averaged) > 0 else self.nets["G"]}

    def super_resolve(self, lr: torch.Tensor) -> torch.Tensor:
        with self.ctx.autocast():
            return self.inference_modules()["G"](lr).float().clamp(0, 1)


PLUGINS = [ESRGAN]
