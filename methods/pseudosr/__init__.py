"""pseudo-SR (Maeda, "Unpaired Image Super-Resolution using Pseudo-Supervision", CVPR 2020).

Read top to bottom: networks (networks.py), losses, one training step, inference.
A CycleGAN-like pair cleans the source LR (G_xy) and learns to make source-style LR from clean
LR plus noise (G_yx); the SR network U trains on the pseudo pair G_xy(G_yx(y_down, z)) -> y with
the ESRGAN recipe after an L1 warm-up. Inference: U(G_xy(x)).
Images stay in [0, 1] (the public implementation's range); grey slices run with 1 channel,
`model.channels: 3` repeats them to RGB as the original (its parameter checkpoint is at 3).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from benchsr.contracts import BenchError, Method, TrainBatch
from benchsr.nn import as_floats, relativistic_gan_step, set_requires_grad
from benchsr.nn import load_perceptual, lsgan
from benchsr.nn import milestones

from .networks import build_networks


# ---- losses -------------------------------------------------------------------------------------
def bicubic_down(img: torch.Tensor, k: int) -> torch.Tensor:
    """Plain F.interpolate bicubic x1/k (no antialiasing), clamped to [0, 1]: how the reference
    makes its clean LR domain. Not the dataset's degradation (ctx.degrade), by design."""
    return F.interpolate(img, scale_factor=1 / k, mode="bicubic", align_corners=False).clamp(0, 1)


def _dihedral(img: torch.Tensor, i: int, inverse: bool = False) -> torch.Tensor:
    """The i-th of the 8 flips/rotations of the square (or its inverse)."""
    rot, flip = i % 4, i >= 4
    if not inverse:
        img = img.flip(-1) if flip else img
        return torch.rot90(img, rot, (-2, -1))
    img = torch.rot90(img, -rot, (-2, -1))
    return img.flip(-1) if flip else img


def geometric_ensemble_loss(net, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """L1 between net(x) and the mean over the 8 dihedral transforms T of T^-1(net(T(x))).
    Square patches: the 8 transformed batches go through the net as one batch."""
    n = x.shape[0]
    outs = net(torch.cat([_dihedral(x, i) for i in range(8)])).split(n)
    ensemble = torch.stack([_dihedral(o, i, inverse=True) for i, o in enumerate(outs)])
    return F.l1_loss(out.float(), ensemble.float().mean(0))


class PseudoSR(Method):
    name = "pseudosr"
    description = "Unpaired SR by pseudo-supervision: RCAN cleaner, noisy downscaler, RRDB SR"
    paper = "Maeda, CVPR 2020 (arXiv:2002.11397)"
    data = "unpaired"
    scales = (2, 4, 8)
    inference_network = "U"
    inference_networks = ("G_xy", "U")    # U(G_xy(x))

    # ---- networks -----------------------------------------------------------------------------
    def build(self) -> None:
        m, k, dev = self.cfg["model"], self.ctx.scale, self.ctx.device
        self.channels = int(m["channels"])
        if self.channels not in (1, 3):
            raise BenchError(f"pseudosr: model.channels must be 1 or 3, got {self.channels}")
        if self.cfg["train"]["lr_patch"] % 4:
            raise BenchError("pseudosr needs train.lr_patch divisible by 4 (G_yx's noise map)")
        self.nets = {name: net.to(dev) for name, net in build_networks(m, self.channels, k).items()}
        n = self.nets
        cycle_betas, sr_betas = (0.5, 0.999), (0.9, 0.999)
        self.optimizers = {
            "G": torch.optim.Adam([*n["G_xy"].parameters(), *n["G_yx"].parameters()],
                                  lr=m["lr"], betas=cycle_betas),
            "D": torch.optim.Adam([p for d in ("D_x", "D_y", "D_sr") for p in n[d].parameters()],
                                  lr=m["lr"], betas=cycle_betas),
            "U": torch.optim.Adam(n["U"].parameters(), lr=m["lr"], betas=sr_betas),
            "D_esrgan": torch.optim.Adam(n["D_esrgan"].parameters(), lr=m["lr"], betas=sr_betas),
        }
        self.warmup_steps = int(round(m["u_warmup_fraction"] * self.ctx.total_steps))
        # the reference's per-iteration MultiStepLR: the cycle nets decay by gamma_cycle, U and
        # D_esrgan by gamma_sr; D_esrgan's only counts after U's warm-up (_step_schedulers)
        steps = milestones(m["lr_milestones"], self.ctx.total_steps)
        self.schedulers = {
            name: torch.optim.lr_scheduler.MultiStepLR(self.optimizers[name], steps, gamma)
            for name, gamma in (("G", m["lr_gamma_cycle"]), ("D", m["lr_gamma_cycle"]),
                                ("U", m["lr_gamma_sr"]), ("D_esrgan", m["lr_gamma_sr"]))}
        self.ctx.notes.append(f"pseudo-SR: U trains on L1 alone for its first {self.warmup_steps} "
                              f"steps (u_warmup_fraction {m['u_warmup_fraction']})")
        self.perceptual = load_perceptual(self.ctx, m["lambda_percep"])

    def schedule_points(self) -> dict[str, list[int]]:
        return {"U warm-up end": [self.warmup_steps],
                "lr milestones": milestones(self.cfg["model"]["lr_milestones"], self.ctx.total_steps)}

    def _rgb(self, img: torch.Tensor) -> torch.Tensor:
        return img.expand(-1, self.channels, -1, -1) if img.shape[1] != self.channels else img

    # ---- one training step ----------------------------------------------------------------------
    def _step_schedulers(self, step: int) -> None:
        """After each step: every scheduler, but D_esrgan's only once U's warm-up is over."""
        for name, sched in self.schedulers.items():
            if name != "D_esrgan" or step >= self.warmup_steps:
                sched.step()

    def train_step(self, batch: TrainBatch, step: int) -> dict[str, float]:
        m, k, ctx, n = self.cfg["model"], self.ctx.scale, self.ctx, self.nets
        x, y = self._rgb(batch.lr), self._rgb(batch.hr)
        # the clean LR domain: plain bicubic as the reference, or the dataset's degradation
        y_down = ctx.degrade(y) if m["clean_lr"] == "dataset" else bicubic_down(y, k)
        z = torch.randn(x.shape[0], 1, y_down.shape[-2] // 4, y_down.shape[-1] // 4,
                        device=x.device)
        d_cycle = [n["D_x"], n["D_y"], n["D_sr"]]

        # forward of the cycle generators (U frozen: it only passes gradient to its input)
        set_requires_grad([*d_cycle, n["U"]], False)
        with ctx.autocast():
            fake_x = n["G_yx"](y_down, z)                 # pseudo source-style LR
            rec_y = n["G_xy"](fake_x)                     # the pseudo-clean LR: U's input
            clean_x = n["G_xy"](x)
            sr_pseudo = n["U"](rec_y)                     # U(G_xy(G_yx(y_down, z)))
            with torch.no_grad():
                sr_real = n["U"](clean_x)                 # U(G_xy(x)): D_sr's "real"

        # discriminators first, as the reference: D_x, D_y, and D_sr (real = the real path
        # U(G_xy(x)), fake = the pseudo path), each 0.5 * (real + fake)
        set_requires_grad(d_cycle, True)
        with ctx.autocast():
            loss_d = 0.5 * (lsgan(n["D_x"](x), True) + lsgan(n["D_x"](fake_x.detach()), False)
                            + lsgan(n["D_y"](y_down), True) + lsgan(n["D_y"](clean_x.detach()), False)
                            + lsgan(n["D_sr"](sr_real), True)
                            + lsgan(n["D_sr"](sr_pseudo.detach()), False))
        ctx.optimize(loss_d, self.optimizers["D"], step, "discriminator")

        set_requires_grad(d_cycle, False)
        with ctx.autocast():
            terms = {
                "gan_yx": lsgan(n["D_x"](fake_x), True),
                "gan_xy": lsgan(n["D_y"](clean_x), True),
                "cycle": m["lambda_cycle"] * F.l1_loss(rec_y.float(), y_down),
                "identity": m["lambda_idt"] * F.l1_loss(n["G_xy"](y_down).float(), y_down),
                "d_sr": m["lambda_dsr"] * lsgan(n["D_sr"](sr_pseudo), True),   # pseudo path
            }
            if m["lambda_geo"]:
                terms["geometric"] = m["lambda_geo"] * geometric_ensemble_loss(n["G_xy"], x, clean_x)
            total_g = sum(terms.values())
        ctx.optimize(total_g, self.optimizers["G"], step, "generator")

        out = as_floats(terms)
        out.update(self._train_u(rec_y.detach(), y, step))
        out.update(total_g=float(total_g.detach()), d=float(loss_d.detach()))
        self._step_schedulers(step)
        return out

    def _train_u(self, pseudo_lr: torch.Tensor, y: torch.Tensor, step: int) -> dict[str, float]:
        """U on the pseudo pair with the ESRGAN recipe, D_esrgan updated first (the reference's
        order); L1 alone during the warm-up."""
        m, u = self.cfg["model"], self.nets["U"]
        set_requires_grad([u], True)
        return relativistic_gan_step(self.ctx, step, lambda: u(pseudo_lr), y, self.nets["D_esrgan"],
                                  self.optimizers["U"], self.optimizers["D_esrgan"], m,
                                  self.perceptual, gan_on=step >= self.warmup_steps,
                                  prefix="u_", d_first=True)

    def _grey(self, img: torch.Tensor) -> torch.Tensor:
        return img.mean(1, keepdim=True) if self.channels == 3 else img

    def end_epoch(self, epoch: int) -> None:
        pass   # the schedulers step per training step (_step_schedulers), not per epoch

    # ---- inference ----------------------------------------------------------------------------
    def super_resolve(self, lr: torch.Tensor) -> torch.Tensor:
        with self.ctx.autocast():
            sr = self.nets["U"](self.nets["G_xy"](self._rgb(lr)))
        return self._grey(sr.float()).clamp(0, 1)


PLUGINS = [PseudoSR]
