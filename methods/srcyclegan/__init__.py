"""SR-CycleGAN (Zheng et al., J. Med. Imaging 9(2) 024003, 2022).

Read top to bottom: networks (networks.py), losses (losses.py), one training step, inference.
Paper defaults follow eq. 8 and Table 1; every difference of the authors' code is a config key,
and the `official` preset turns them all on (presets.yaml). Table 2's Network1-3 and the
Table 3 / Table 7 ablations are presets and keys of this one plugin.
"""
from __future__ import annotations

import random

import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import zoom

from benchsr.contracts import BenchError, Method, TrainBatch
from benchsr.nn import (PatchDiscriminator, as_floats, from_signed, init_normal,
                         set_requires_grad, to_signed)
from benchsr.nn import gan_loss

from .losses import HistoryPool, f_down, f_up, identity_up, recon, ssim_loss
from .networks import G1, G2


def linear_decay(epochs: int, constant_fraction: float):
    """lr factor per epoch: constant, then linear to 0 (CycleGAN's 'linear' policy)."""
    n_const = max(1, round(epochs * constant_fraction))
    n_decay = max(1, epochs - n_const)
    return lambda e: 1.0 - max(0, e + 1 - n_const) / float(n_decay + 1)


class SRCycleGAN(Method):
    name = "srcyclegan"
    description = "Unpaired SR: pixel-shuffle G1, downscaler G2, two PatchGANs, MMSR loss"
    paper = "Zheng et al., J. Med. Imaging 2022 (doi:10.1117/1.JMI.9.2.024003)"
    data = "unpaired"
    scales = (2, 4, 8, 16)
    inference_network = "G1"
    tiles_change_output = True      # G1's InstanceNorm normalises over whatever tile it is given

    # ---- networks ---------------------------------------------------------------------------
    def build(self) -> None:
        m, k, c, dev = self.cfg["model"], self.ctx.scale, self.ctx.channels, self.ctx.device
        if self.cfg["train"]["lr_patch"] < 24:
            # D_X's three stride-2 convs + two 4x4 convs leave nothing of a smaller LR patch
            raise BenchError("srcyclegan needs train.lr_patch >= 24 (the PatchGAN on LR patches)")
        self.nets = {
            "G1": G1(k, c, m["ngf"], m["n_blocks"], m["upsampler"], m["down_blocks"],
                     m["kernel_mid"], m["kernel_out"]),
            "G2": G2(k, c, m["ngf"], m["n_blocks_g2"]),
            "D_Y": PatchDiscriminator(c, m["ndf"]),
            "D_X": PatchDiscriminator(c, m["ndf"]),
        }
        for net in self.nets.values():
            init_normal(net)
            net.to(dev)
        betas = (m["beta1"], 0.999)
        self.optimizers = {
            "G": torch.optim.Adam([*self.nets["G1"].parameters(), *self.nets["G2"].parameters()],
                                  lr=m["lr"], betas=betas),
            "D": torch.optim.Adam([*self.nets["D_Y"].parameters(), *self.nets["D_X"].parameters()],
                                  lr=m["lr"], betas=betas),
        }
        rule = linear_decay(self.ctx.epochs, m["lr_constant_fraction"])
        self.decay_start = max(1, round(self.ctx.epochs * m["lr_constant_fraction"]))   # epoch
        self.schedulers = {k_: torch.optim.lr_scheduler.LambdaLR(o, rule)
                           for k_, o in self.optimizers.items()}
        self.pool_x, self.pool_y = HistoryPool(m["pool_size"]), HistoryPool(m["pool_size"])
        self.adv = gan_loss(m["gan_loss"])
        if m["input_range"] not in ("signed", "unit"):
            raise BenchError(f"srcyclegan: model.input_range must be signed or unit, got "
                             f"{m['input_range']!r}")

    def _to_net(self, img: torch.Tensor) -> torch.Tensor:
        """[0, 1] -> the range fed to the tanh nets: [-1, 1] ('signed', the paper and the
        authors' 8x code) or [0, 1] as it is ('unit', the authors' COVID-19 4x pipeline)."""
        return to_signed(img) if self.cfg["model"]["input_range"] == "signed" else img

    def _from_net(self, img: torch.Tensor) -> torch.Tensor:
        if self.cfg["model"]["input_range"] == "signed":
            return from_signed(img)
        return img.float().clamp(0, 1)

    # ---- one training step --------------------------------------------------------------------
    def _quasi_pairs(self, x: torch.Tensor, y: torch.Tensor, every: int) -> torch.Tensor:
        """Authors' code: every n-th LR sample is its HR patch shrunk by cubic-spline zoom (every
        4th at 8x; every one at 4x, where the COVID-19 pipeline also adds N(0, std) noise with
        probability p)."""
        m, k = self.cfg["model"], self.ctx.scale
        x = x.clone()
        for i in range(0, x.shape[0], every):
            small = zoom(y[i, 0].detach().float().cpu().numpy(), 1.0 / k, order=3)
            small = torch.from_numpy(np.ascontiguousarray(small, np.float32))
            if m["quasi_pair_noise_p"] and random.random() < m["quasi_pair_noise_p"]:
                small = small + m["quasi_pair_noise_std"] * torch.randn(small.shape)  # seeded
            x[i, 0] = small.to(x)
        return x

    def schedule_points(self) -> dict[str, list[int]]:
        per_epoch = self.ctx.total_steps // max(1, self.ctx.epochs)
        return {"linear decay start": [self.decay_start * per_epoch]}

    def train_step(self, batch: TrainBatch, step: int) -> dict[str, float]:
        m, k, ctx = self.cfg["model"], self.ctx.scale, self.ctx
        g1, g2, d_y, d_x = (self.nets[n] for n in ("G1", "G2", "D_Y", "D_X"))
        x, y, adv = self._to_net(batch.lr), self._to_net(batch.hr), self.adv
        if m["quasi_pair_every"]:
            x = self._quasi_pairs(x, y, m["quasi_pair_every"])

        # generator step: G1 and G2 together, discriminators frozen
        set_requires_grad((d_y, d_x), False)
        with ctx.autocast():
            sr, fake_lr = g1(x), g2(y)
            terms = {
                "gan_g1": m["lambda_gan_g1"] * adv(d_y(sr), True),
                "gan_g2": m["lambda_gan_g2"] * adv(d_x(fake_lr), True),
                "cycle": m["lambda_cycle"] * (recon(g2(sr).float(), x, m["cycle_loss"])
                                              + recon(g1(fake_lr).float(), y, m["cycle_loss"])),
            }
            down_sr, up_lr = f_down(sr.float(), k), f_up(fake_lr.float(), k)
            ssim_kw = dict(data_range=m["ssim_data_range"], padding=m["ssim_padding"])
            if m["lambda_ssim_x"]:
                terms["ssim_x"] = m["lambda_ssim_x"] * ssim_loss(x, down_sr, **ssim_kw)
            if m["lambda_ssim_y"]:
                terms["ssim_y"] = m["lambda_ssim_y"] * ssim_loss(y, up_lr, **ssim_kw)
            if m["lambda_down"]:
                terms["down"] = m["lambda_down"] * recon(down_sr, x, m["recon_loss"])
            if m["lambda_up"]:
                terms["up"] = m["lambda_up"] * recon(up_lr, y, m["recon_loss"])
            if m["lambda_identity"]:
                # authors' code: G1 on an HR patch (k*k times the pixels: the costly part)
                idt_y = f_down(g1(y).float(), k)
                idt_x = identity_up(g2(x).float(), k, m["identity_up"])
                terms["identity"] = m["lambda_identity"] * (F.l1_loss(idt_y, y)
                                                            + 0.1 * F.l1_loss(idt_x, x))
            total_g = sum(terms.values())
        ctx.optimize(total_g, self.optimizers["G"], step, "generator")

        # discriminator step on pooled fakes, 0.5 * (real + fake)
        set_requires_grad((d_y, d_x), True)
        fake_y, fake_x = self.pool_y.query(sr.detach()), self.pool_x.query(fake_lr.detach())
        with ctx.autocast():
            loss_dy = 0.5 * (adv(d_y(y), True) + adv(d_y(fake_y), False))
            loss_dx = 0.5 * (adv(d_x(x), True) + adv(d_x(fake_x), False))
        ctx.optimize(loss_dy + loss_dx, self.optimizers["D"], step, "discriminator")

        out = as_floats(terms)
        out.update(total_g=float(total_g.detach()), d_y=float(loss_dy.detach()),
                   d_x=float(loss_dx.detach()))
        return out

    def extra_state(self):
        return {"pool_x": self.pool_x.state(), "pool_y": self.pool_y.state()}

    def load_extra_state(self, state):
        self.pool_x.load(state.get("pool_x", []), self.ctx.device)
        self.pool_y.load(state.get("pool_y", []), self.ctx.device)

    # ---- inference ----------------------------------------------------------------------------
    def super_resolve(self, lr: torch.Tensor) -> torch.Tensor:
        # down-blocks (Network1/3) halve the size twice: an LR side that is not a multiple of 4
        # (the 1.5 mm CTA's 41 x 58) is reflect-padded to one, and the SR cropped back
        h, w = lr.shape[-2:]
        m = 4 if self.cfg["model"].get("down_blocks") else 1
        pad = (0, -w % m, 0, -h % m)
        x = torch.nn.functional.pad(lr, pad, mode="reflect") if any(pad) else lr
        with self.ctx.autocast():
            sr = self._from_net(self.nets["G1"](self._to_net(x)))
        k = self.ctx.scale
        return sr[..., :h * k, :w * k]


PLUGINS = [SRCycleGAN]
