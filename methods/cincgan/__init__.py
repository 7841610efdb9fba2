"""CinCGAN (Yuan et al., "Unsupervised Image Super-Resolution using Cycle-in-Cycle GANs",
CVPR Workshops 2018). No official code; built from the public re-implementations' facts.

Read top to bottom: networks (networks.py), losses, one training step, inference.
Three phases, as the references: the SR network (EDSR) is first pre-trained with L1 on bicubic
pairs (HR patches and their LR under the dataset's own degradation); then the inner cycle
(G1, G2, D1) learns noisy LR -> clean LR alone, where clean LR = the HR domain under the dataset's degradation;
then the outer cycle (EDSR, G3, D2) joins and learns clean LR -> HR on G1's output (the outer loss
reaches G1). Inference: SR(G1(x)).
The paper's parameter total (27,030,790, SR-CycleGAN Table 5) matches no public variant; the
cost table reports what this one has.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from benchsr.nn import edsr
from benchsr.contracts import Method, TrainBatch
from benchsr.nn import PatchDiscriminator, as_floats, set_requires_grad
from benchsr.nn import lsgan, tv_loss

from .networks import downscaler, inner_generator


class CinCGAN(Method):
    name = "cincgan"
    description = "Cycle-in-cycle GAN: LR denoising cycle + EDSR SR cycle"
    paper = "Yuan et al., CVPR Workshops 2018 (doi:10.1109/CVPRW.2018.00113)"
    data = "unpaired"
    scales = (2, 4, 8)
    inference_network = "SR"
    inference_networks = ("G1", "SR")     # SR(G1(x))

    # ---- networks -----------------------------------------------------------------------------
    def build(self) -> None:
        m, k, c, dev = self.cfg["model"], self.ctx.scale, self.ctx.channels, self.ctx.device
        d = dict(ndf=m["ndf"], n_layers=3, padding=1, norm="batch")   # the references' _NetD
        self.nets = {
            "G1": inner_generator(c, m["inner_feat"], m["inner_blocks"]),
            "G2": inner_generator(c, m["inner_feat"], m["inner_blocks"]),
            "D1": PatchDiscriminator(c, strides=(1, 1, 1, 1, 1), **d),
            "SR": edsr(c, k, m["edsr_feat"], m["edsr_blocks"], m["edsr_res_scale"]),
            "G3": downscaler(k, c, m["inner_feat"], m["inner_blocks"]),
            "D2": PatchDiscriminator(c, strides=(2, 2, 2, 1, 1), **d),
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
            "D": torch.optim.Adam([{"params": n["D1"].parameters(), "lr": m["lr_inner"]},
                                   {"params": n["D2"].parameters(), "lr": m["lr_outer"]}],
                                  betas=betas),
            # EDSR's own recipe for the supervised pre-training (Adam 1e-4, betas 0.9/0.999)
            "SR_pretrain": torch.optim.Adam(n["SR"].parameters(), lr=m["lr_pretrain"],
                                            betas=(0.9, 0.999)),
        }
        total = self.ctx.total_steps
        self.pretrain_steps = int(round(m["pretrain_fraction"] * total))
        self.inner_end = self.pretrain_steps + int(round(m["inner_fraction"] * total))
        # sangyun's decay_step 40k of 400k iterations: halve every 10 % of the cycle steps
        self.halve_every = max(1, int(round(m["lr_halve_fraction"] * (total - self.pretrain_steps))))
        # stepped once per cycle step (end of train_step), its state in the checkpoint
        self.schedulers = {name: torch.optim.lr_scheduler.StepLR(self.optimizers[name],
                                                                 self.halve_every, gamma=0.5)
                           for name in ("G", "D")}
        self.ctx.notes.append(
            f"CinCGAN phases: EDSR pre-trained {self.pretrain_steps} steps (L1 on HR patches and "
            f"their {self.ctx.degradation} x1/{k} LR), inner cycle alone to step {self.inner_end}, "
            f"then joint to step {total}")

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
    def _pretrain_step(self, y: torch.Tensor, step: int) -> dict[str, float]:
        """Supervised EDSR on (its LR under the dataset's degradation, the HR patch)."""
        with self.ctx.autocast():
            loss = F.l1_loss(self.nets["SR"](self.ctx.degrade(y)).float(), y)
        self.ctx.optimize(loss, self.optimizers["SR_pretrain"], step, "EDSR pre-training")
        value = float(loss.detach())   # total_g: the generator total of the current phase
        return {"pretrain_l1": value, "total_g": value, "phase": 0.0}

    def schedule_points(self) -> dict[str, list[int]]:
        halvings = range(self.pretrain_steps + self.halve_every, self.ctx.total_steps, self.halve_every)
        return {"pre-training end": [self.pretrain_steps], "inner-cycle end": [self.inner_end],
                "lr halvings": list(halvings)}

    def train_step(self, batch: TrainBatch, step: int) -> dict[str, float]:
        m, ctx, n = self.cfg["model"], self.ctx, self.nets
        if step < self.pretrain_steps:
            return self._pretrain_step(batch.hr, step)
        x, y = batch.lr, batch.hr
        y_down = ctx.degrade(y)   # the clean LR domain: the dataset's own degradation
        joint = step >= self.inner_end

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
        self._step_schedulers(step)

        out = as_floats(terms)
        out.update(total_g=float(total_g.detach()), d=float(loss_d.detach()),
                   phase=2.0 if joint else 1.0)
        return out

    def _step_schedulers(self, step: int) -> None:
        """After each cycle step (none in the pre-training): halved every halve_every steps."""
        if step >= self.pretrain_steps:
            for sched in self.schedulers.values():
                sched.step()

    def end_epoch(self, epoch: int) -> None:
        pass   # the schedulers step per cycle step (_step_schedulers)

    # ---- inference ----------------------------------------------------------------------------
    def super_resolve(self, lr: torch.Tensor) -> torch.Tensor:
        with self.ctx.autocast():
            return self.nets["SR"](self.nets["G1"](lr)).float().clamp(0, 1)


PLUGINS = [CinCGAN]
