"""CinCGAN (Yuan et al., "Unsupervised Image Super-Resolution using Cycle-in-Cycle GANs",
CVPR Workshops 2018). No official code; built from the public re-implementations' facts.

Read top to bottom: networks (networks.py), losses, one training step, inference.
The inner cycle (G1, G2, D1) learns noisy LR -> clean LR, where clean LR = bicubic x1/k of the
HR domain; the outer cycle (EDSR, G3, D2) learns clean LR -> HR on G1's output. The inner cycle
trains alone first, then both train jointly (the outer loss reaches G1). Inference: SR(G1(x)).
The paper's parameter total (27,030,790, SR-CycleGAN Table 5) matches no public variant; the
cost table reports what this one has.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from benchsr.blocks import edsr
from benchsr.contracts import Method, TrainBatch
from benchsr.gan import (PatchDiscriminator, bicubic_down, lsgan, set_requires_grad, step_decay,
                         tv_loss)

from .networks import Downscaler, InnerGenerator


class CinCGAN(Method):
    name = "cincgan"
    description = "Cycle-in-cycle GAN: LR denoising cycle + EDSR SR cycle"
    paper = "Yuan et al., CVPR Workshops 2018 (doi:10.1109/CVPRW.2018.00113)"
    data = "unpaired"
    scales = (2, 4, 8)
    inference_network = "SR"

    # ---- networks -----------------------------------------------------------------------------
    def build(self) -> None:
        m, k, c, dev = self.cfg["model"], self.ctx.scale, self.ctx.channels, self.ctx.device
        d = dict(ndf=m["ndf"], n_layers=3, padding=1, norm="none")
        self.nets = {
            "G1": InnerGenerator(c, m["inner_feat"], m["inner_blocks"]),
            "G2": InnerGenerator(c, m["inner_feat"], m["inner_blocks"]),
            "D1": PatchDiscriminator(c, strides=(1, 1, 1, 1, 1), **d),
            "SR": edsr(c, k, m["edsr_feat"], m["edsr_blocks"], m["edsr_res_scale"]),
            "G3": Downscaler(k, c, m["inner_feat"]),
            "D2": PatchDiscriminator(c, strides=(2, 2, 2, 2, 1), **d),
        }
        for net in self.nets.values():
            net.to(dev)
        n, betas = self.nets, (0.5, 0.999)
        self.optimizers = {
            # one optimiser, two groups: the outer nets get no gradient until the joint phase
            "G": torch.optim.Adam([
                {"params": [*n["G1"].parameters(), *n["G2"].parameters()], "lr": m["lr_inner"]},
                {"params": [*n["SR"].parameters(), *n["G3"].parameters()], "lr": m["lr_outer"]},
            ], betas=betas),
            "D": torch.optim.Adam([*n["D1"].parameters(), *n["D2"].parameters()],
                                  lr=m["lr_inner"], betas=betas),
        }
        total = int(self.cfg["train"]["epochs"]) * int(self.cfg["train"]["steps_per_epoch"])
        self.inner_steps = int(round(m["inner_fraction"] * total))

    # ---- losses -------------------------------------------------------------------------------
    def _inner_terms(self, x, y_down):
        m, n = self.cfg["model"], self.nets
        clean = n["G1"](x)
        terms = {
            "gan_inner": lsgan(n["D1"](clean), True),
            "cycle_inner": m["lambda_cycle"] * F.mse_loss(n["G2"](clean).float(), x),
            "idt_inner": m["lambda_idt"] * F.mse_loss(n["G1"](y_down).float(), y_down),
            "tv_inner": m["lambda_tv_inner"] * tv_loss(clean),
        }
        return clean, terms

    def _outer_terms(self, x, clean, y, y_down):
        m, n = self.cfg["model"], self.nets
        sr = n["SR"](clean)
        terms = {
            "gan_outer": lsgan(n["D2"](sr), True),
            "cycle_outer": m["lambda_cycle"] * F.mse_loss(n["G3"](sr).float(), x),
            "idt_outer": m["lambda_idt"] * F.mse_loss(n["SR"](y_down).float(), y),
            "tv_outer": m["lambda_tv_outer"] * tv_loss(sr),
        }
        return sr, terms

    # ---- one training step ----------------------------------------------------------------------
    def train_step(self, batch: TrainBatch, step: int) -> dict[str, float]:
        m, ctx, n = self.cfg["model"], self.ctx, self.nets
        for opt in self.optimizers.values():
            step_decay(opt, step, m["lr_halve_every"])
        x, y = batch.lr, batch.hr
        y_down = bicubic_down(y, ctx.scale)
        joint = step >= self.inner_steps

        set_requires_grad([n["D1"], n["D2"]], False)
        with ctx.autocast():
            clean, terms = self._inner_terms(x, y_down)
            sr = None
            if joint:
                sr, outer = self._outer_terms(x, clean, y, y_down)
                terms.update(outer)
            total_g = sum(terms.values())
        ctx.optimize(total_g, self.optimizers["G"], step, "generator")

        set_requires_grad([n["D1"], n["D2"]], True)
        with ctx.autocast():
            loss_d = 0.5 * (lsgan(n["D1"](y_down), True) + lsgan(n["D1"](clean.detach()), False))
            if joint:
                loss_d = loss_d + 0.5 * (lsgan(n["D2"](y), True)
                                         + lsgan(n["D2"](sr.detach()), False))
        ctx.optimize(loss_d, self.optimizers["D"], step, "discriminator")

        out = {name: float(v.detach()) for name, v in terms.items()}
        out.update(total_g=float(total_g.detach()), d=float(loss_d.detach()), joint=float(joint))
        return out

    def end_epoch(self, epoch: int) -> None:
        pass   # the lr follows the step (halved every lr_halve_every steps)

    # ---- inference ----------------------------------------------------------------------------
    def super_resolve(self, lr: torch.Tensor) -> torch.Tensor:
        with self.ctx.autocast():
            return self.nets["SR"](self.nets["G1"](lr)).float().clamp(0, 1)


PLUGINS = [CinCGAN]
