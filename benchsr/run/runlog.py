"""What a run says while it runs: run.log in its folder (stdlib logging; the CLI adds a
RichHandler on the console), and, with log.tensorboard, TensorBoard scalars of every loss at
every step and the sample images."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

LOGGER = "benchsr.run"


class RunLog:
    def __init__(self, run_dir: Path, cfg: dict, label: str):
        self.log = logging.getLogger(f"{LOGGER}.{label}")
        self.log.setLevel(logging.INFO)
        self.file = logging.FileHandler(run_dir / "run.log", encoding="utf-8")
        self.file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        self.log.addHandler(self.file)
        self.writer = None
        if cfg["log"]["tensorboard"]:
            from torch.utils.tensorboard import SummaryWriter   # needs the tensorboard package
            self.writer = SummaryWriter(str(run_dir / "tensorboard"))

    def info(self, message: str) -> None:
        self.log.info(message)

    def step(self, step: int, losses: dict[str, float]) -> None:
        if self.writer is not None:
            for name, value in losses.items():
                self.writer.add_scalar(f"loss/{name}", value, step)

    def epoch(self, epoch: int, rows: list[dict]) -> None:
        names = sorted({k for r in rows for k in r} - {"epoch", "step"})
        means = {n: float(np.nanmean([r.get(n, np.nan) for r in rows])) for n in names}
        self.info(f"epoch {epoch}: " + ", ".join(f"{n} {v:.4g}" for n, v in means.items()))

    def samples(self, kept, step: int) -> None:
        if self.writer is None:
            return
        for img, sr in kept:
            if getattr(img, "lr", None) is None:      # a through-plane slab: its views are in samples/
                continue
            panels = [np.kron(img.lr, np.ones((sr.shape[0] // img.lr.shape[0],) * 2)), sr]
            panels += [img.hr] if img.hr is not None else []
            self.writer.add_image(f"samples/{img.name}", np.concatenate(panels, 1)[None], step)

    def close(self) -> None:
        self.log.removeHandler(self.file)
        self.file.close()
        if self.writer is not None:
            self.writer.close()
