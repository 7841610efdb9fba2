"""Is the supervised reference a reference? esrgan:psnr (RRDBNet, L1 on true pairs) against a
three-layer SRCNN-like CNN, trained on the same pairs for the same steps, batch and patch at one
profile, both scored by the runner on the dataset's evaluation slices.

    python benchmarks/supervised_reference.py --dataset lung-ct --profile quick [--set KEY=VALUE]

The reference must score at least as well as the small CNN (issue 25). Prints one line per
method and writes the run folders under --out (default /tmp/benchsr-supervised-reference).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from benchsr import config, registry
from benchsr.contracts import Method, TrainBatch
from benchsr.results import read_json
from benchsr.run.runner import Runner


class SmallCNN(Method):
    """9-5-5 convolutions (64, 32 features) on the bicubic upscale, adding to it; Adam 1e-3, L1
    on the dataset's own degradation pairs: what a newcomer writes in ten minutes."""
    name = "small-cnn"
    data = "unpaired"      # pairs are made from the HR stream, as esrgan:psnr makes them
    scales = (2, 4, 8)
    inference_network = "G"

    def build(self) -> None:
        self.nets = {"G": nn.Sequential(nn.Conv2d(1, 64, 9, padding=4), nn.ReLU(),
                                        nn.Conv2d(64, 32, 5, padding=2), nn.ReLU(),
                                        nn.Conv2d(32, 1, 5, padding=2)).to(self.ctx.device)}
        self.optimizers = {"G": torch.optim.Adam(self.nets["G"].parameters(), lr=1e-3)}

    def _sr(self, lr: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(lr, scale_factor=self.ctx.scale, mode="bicubic", align_corners=False)
        return up + self.nets["G"](up)

    def train_step(self, batch: TrainBatch, step: int) -> dict[str, float]:
        loss = F.l1_loss(self._sr(self.ctx.degrade(batch.hr)), batch.hr)
        self.ctx.optimize(loss, self.optimizers["G"], step)
        return {"total_g": float(loss.detach())}

    def super_resolve(self, lr: torch.Tensor) -> torch.Tensor:
        return self._sr(lr).clamp(0, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="lung-ct")
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--reference", default="esrgan:psnr")
    ap.add_argument("--set", action="append", default=[], dest="sets", help="harness keys, both")
    ap.add_argument("--reference-set", action="append", default=[], dest="ref_sets",
                    help="the reference's own keys (model.*)")
    ap.add_argument("--skip-small", action="store_true", help="the reference alone")
    ap.add_argument("--skip-reference", action="store_true", help="the small CNN alone")
    ap.add_argument("--out", type=Path, default=Path("/tmp/benchsr-supervised-reference"))
    args = ap.parse_args()
    ds_cls = registry.get("datasets", args.dataset)
    name, _, preset = args.reference.partition(":")
    ref_cls = registry.get("methods", name)
    cfg0 = config.resolve(ref_cls, preset or "default", ds_cls, args.profile, args.sets)
    data = ds_cls(cfg0).load()
    todo = [] if args.skip_reference else [(ref_cls, preset or "default", args.sets + args.ref_sets)]
    if not args.skip_small:
        todo.insert(0, (SmallCNN, "default", args.sets))
    for cls, chosen, sets in todo:
        cfg = config.resolve(cls, chosen, ds_cls, args.profile, sets)
        out = Runner(data, args.out).run(cls, cfg)
        summary = read_json(out.run_dir / "summary.json") if out.status == "complete" else {}
        psnr = (summary.get("psnr") or {}).get("mean")
        print(f"{out.label:14s} {out.status:8s} test PSNR {psnr if psnr is None else round(psnr, 2)} "
              f"dB  {out.run_dir}")


if __name__ == "__main__":
    main()
