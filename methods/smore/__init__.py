"""SMORE-style self-supervised through-plane SR (Zhao et al., IEEE TMI 2021), written from the
paper's facts. Read top to bottom: networks, losses, one training step, inference.

- The in-plane (axial) slices have the resolution the through-plane direction lacks. An HR
  axial patch is degraded along one in-plane axis and interpolated back along it (cubic spline,
  `benchsr.data.interpolate_z`, as at test time); an EDSR at scale 1 (benchsr's shared block)
  learns to undo that. The axis, rows or columns, is drawn per batch: the paper's rotations do
  the same. How the pair is made is `model.pairs`:
  - `physical` (default): at the geometry of the reformats it restores. Each patch is first
    resampled along that axis from its in-plane pitch to its own patient's thin-slice spacing
    (the mean over each thin row's extent: anti-aliased), then thickened by the protocol's slice
    profile (k rows averaged, or every k-th: `benchsr.data.thicken`) and interpolated back
    (`benchsr.data.physical_pair`). A 0.84 mm patch of 48 rows gives 8 rows of 5 mm, as a
    coronal reformat of 5 mm slices has; at 1.5 mm isotropic nothing is resampled.
  - `pixel`: the patch thickened by k of its own pixels (the first version): the blur matches
    the test-time reformats in pixels, not in millimetres, unless the scan is isotropic.
  SMORE itself reaches the same match the other way round: it interpolates the volume to an
  isotropic grid first, then degrades in-plane slices by the through-plane/in-plane ratio.
- At test time the thick stack is interpolated to the thin grid along z, and its coronal
  (z, x) and sagittal (z, y) reformats each pass through the network, z along the rows, the
  axis it learned to restore. The two estimates are averaged; SMORE combines them by Fourier
  burst accumulation, and its anti-aliasing network (SAA) is left out: both are simpler here,
  and the run's notes say so.
- It trains on the HR stream's axial patches alone (the dataset's training slabs; never an
  evaluation slab), so it is `unpaired` to the harness: it makes its own pairs.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from benchsr.contracts import BenchError, Method, TrainBatch
from benchsr.data import interpolate_z, physical_pair, thicken
from benchsr.nn import edsr

CHUNK = 32        # reformatted planes per forward at test time: memory stays bounded


class SMORE(Method):
    name = "smore"
    description = "Self-supervised through-plane SR: EDSR trained on in-plane patches (SMORE)"
    paper = "Zhao et al., IEEE TMI 2021 (doi:10.1109/TMI.2020.3037187)"
    data = "unpaired"               # only the HR stream's axial patches: it makes its own pairs
    scales = (2, 3, 4, 5, 6)
    planes = ("through",)
    inference_network = "G"

    # ---- networks -----------------------------------------------------------------------------
    def build(self) -> None:
        m = self.cfg["model"]
        net = edsr(1, 1, int(m["num_feat"]), int(m["num_block"]), float(m["res_scale"]))
        self.nets = {"G": net.to(self.ctx.device)}
        self.optimizers = {"G": torch.optim.Adam(net.parameters(), lr=m["lr"], betas=(0.9, 0.999))}
        # cosine to zero over the run, stepped once per training step
        self.schedulers = {"G": torch.optim.lr_scheduler.CosineAnnealingLR(
            self.optimizers["G"], T_max=max(1, self.ctx.total_steps))}
        self.ctx.notes.append("SMORE here: coronal and sagittal estimates averaged (not Fourier "
                              "burst accumulation), no anti-aliasing network")

    def schedule_points(self) -> dict[str, list[int]]:
        return {"cosine end": [self.ctx.total_steps]}

    # ---- losses: the pairs it makes from in-plane patches ----------------------------------------
    def degraded_rows(self, hr: torch.Tensor) -> torch.Tensor:
        """`pixel` pairs: (B, 1, P, P) patches thickened along their rows by k of their own
        pixels, then interpolated back to P rows."""
        k, how, order = self.ctx.scale, self.ctx.degradation, int(self.cfg["model"]["order"])
        rows = hr.detach().float().cpu().numpy()[:, 0].transpose(1, 0, 2)   # (P, B, P): z first
        back = interpolate_z(thicken(rows, k, how), k, how, order, n_thin=rows.shape[0])
        return torch.from_numpy(back.transpose(1, 0, 2)[:, None].copy()).to(hr.device)

    def physical_pairs(self, hr: torch.Tensor, pitch: torch.Tensor, thin: torch.Tensor):
        """`physical` pairs: [(input, target)] per group of equal shape, each (b, 1, m, P):
        every patch's rows resampled from its pitch to its patient's thin spacing (mm), then
        thickened and interpolated back (benchsr.data.physical_pair)."""
        k, how, order = self.ctx.scale, self.ctx.degradation, int(self.cfg["model"]["order"])
        groups: dict[tuple, list] = {}
        for patch, p_mm, t_mm in zip(hr.detach().float().cpu().numpy()[:, 0], pitch.tolist(),
                                     thin.tolist()):
            x, y = physical_pair(patch, p_mm, t_mm, k, how, order)
            groups.setdefault(x.shape, []).append((x, y))
        return [tuple(torch.from_numpy(np.stack(part)[:, None]).to(hr.device)
                      for part in zip(*pairs)) for pairs in groups.values()]

    def pairs(self, batch: TrainBatch) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """This step's (input, target) groups, degraded along rows or (half of the batches)
        columns."""
        hr, spacing = batch.hr, batch.hr_spacing
        columns = bool(int(torch.randint(2, (1,))))
        if columns:
            hr = hr.transpose(2, 3).contiguous()
        if self.cfg["model"]["pairs"] == "pixel":
            return [(self.degraded_rows(hr), hr)]
        if spacing is None:
            raise BenchError("smore model.pairs=physical needs each patch's spacing in mm, and "
                             "this dataset's HR stream gives none (SliceStack.spacing): use the "
                             "pixel preset")
        return self.physical_pairs(hr, spacing[:, 0 if columns else 1], spacing[:, 2])

    # ---- one training step ----------------------------------------------------------------------
    def train_step(self, batch: TrainBatch, step: int) -> dict[str, float]:
        groups = self.pairs(batch)
        total = sum(y.numel() for _, y in groups)
        with self.ctx.autocast():      # the mean L1 over every target pixel of the batch
            loss = sum(F.l1_loss(self.nets["G"](x).float(), y, reduction="sum")
                       for x, y in groups) / total
        self.ctx.optimize(loss, self.optimizers["G"], step, "EDSR")
        self.schedulers["G"].step()
        value = float(loss.detach())
        return {"l1": value, "total_g": value}

    def end_epoch(self, epoch: int) -> None:
        pass   # the scheduler steps per training step

    # ---- inference ----------------------------------------------------------------------------
    def _planes(self, stack: torch.Tensor) -> torch.Tensor:
        """(N, Z, L) reformatted planes, z along the rows, through the network in chunks."""
        g = self.nets["G"]
        out = [g(stack[i:i + CHUNK, None]).float()[:, 0] for i in range(0, len(stack), CHUNK)]
        return torch.cat(out)

    def super_resolve_z(self, thick: torch.Tensor) -> torch.Tensor:
        k, how, order = self.ctx.scale, self.ctx.degradation, int(self.cfg["model"]["order"])
        up = interpolate_z(thick.detach().float().cpu().numpy(), k, how, order)   # (Z, H, W)
        vol = torch.from_numpy(np.ascontiguousarray(up)).to(thick.device)
        with self.ctx.autocast():
            coronal = self._planes(vol.permute(1, 0, 2)).permute(1, 0, 2)       # per y: (Z, W)
            sagittal = self._planes(vol.permute(2, 0, 1)).permute(1, 2, 0)      # per x: (Z, H)
        return ((coronal + sagittal) / 2).clamp(0, 1)


PLUGINS = [SMORE]
