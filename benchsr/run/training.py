"""The training room: seeding, batches, steps, checkpoints, resume and timing. The runner calls
`fit` between building the method and evaluating it."""
from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from benchsr.run import best, checkpoints
from benchsr.runtime import distributed
from benchsr import results
from benchsr.contracts import BenchError, PreparedData, TrainBatch
from benchsr.runtime.guards import fault
from benchsr.data.patches import PatchSampler
from benchsr.data.volumes import degrade_batch


def seed_epoch(seed: int, epoch: int) -> np.random.Generator:
    """Every epoch starts from a seed of its own, so a resumed run replays it exactly."""
    s = seed * 100_003 + epoch + 1   # epoch -1 seeds the network initialisation
    random.seed(s)
    torch.manual_seed(s)
    return np.random.default_rng([seed, epoch + 1])


@dataclass
class Timing:
    """Per epoch: training seconds (validation left out), of which data loading, and the
    validation points' seconds (eval.every), which are not training."""
    epoch_s: list[float] = field(default_factory=list)
    data_s: list[float] = field(default_factory=list)
    validation_s: list[float] = field(default_factory=list)


@dataclass
class Batches:
    """The seeded global batch of every step; each rank takes its shard. A paired method gets
    LR made from its HR patches by the dataset's degradation."""
    data: PreparedData
    cfg: dict
    device: torch.device
    make_pairs: bool

    def __post_init__(self):
        tr, k = self.cfg["train"], self.data.scale
        self.bs, p = int(tr["batch_size"]), int(tr["lr_patch"])
        self.lr = PatchSampler(self.data.train_lr, p, f"{self.cfg['dataset']} LR stream")
        self.hr = PatchSampler(self.data.train_hr, p * k, f"{self.cfg['dataset']} HR stream")
        self.shard = distributed.world().shard(self.bs)
        self.memory_format = (torch.channels_last if self.cfg["runtime"]["channels_last"]
                              else torch.contiguous_format)

    def next(self, rng: np.random.Generator) -> TrainBatch:
        lr_np, _ = self.lr.sample(self.bs, rng)     # the global batch, same on every rank
        hr_np, _, spacing = self.hr.draw(self.bs, rng)
        if self.make_pairs:   # LR = the HR patch under the dataset's own degradation
            lr_np = degrade_batch(hr_np, self.data.scale, self.data.protocol["degradation"])
        lr, hr = (torch.from_numpy(a[self.shard]).to(self.device, memory_format=self.memory_format)
                  for a in (lr_np, hr_np))
        return TrainBatch(lr, hr, self.make_pairs or self.data.paired,
                          None if spacing is None else torch.from_numpy(spacing[self.shard]))


def resume_state(method, run_dir: Path, manifest: dict, device) -> tuple[int, list, list]:
    """(first epoch, loss log, validation curve) from the newest good checkpoint, or (0, [], []).
    losses.csv and curve.csv are rebuilt from it: a kill between the writes leaves nothing stale."""
    ckpt, path, skipped = checkpoints.load_latest(run_dir / "checkpoints", device)
    manifest["notes"] += [f"resume skipped {s}" for s in skipped]
    if ckpt is None:
        if skipped:        # every checkpoint torn: the run starts over, and says so
            manifest["notes"].append("resume: no checkpoint could be loaded, so training "
                                     "restarted from epoch 0")
        return 0, [], []
    method.load_state_dict(ckpt["method"])
    manifest["resumed_from_epoch"] = ckpt["epoch"] + 1
    manifest["last_checkpoint"] = f"{path.relative_to(run_dir)} (epoch {ckpt['epoch']})"
    results.write_text(run_dir / "losses.csv", pd.DataFrame(ckpt["log"]).to_csv(index=False))
    curve = ckpt.get("curve", [])
    if curve:
        results.write_text(run_dir / "curve.csv", pd.DataFrame(curve).to_csv(index=False))
    elif (run_dir / "curve.csv").is_file():
        (run_dir / "curve.csv").unlink()
    return ckpt["epoch"] + 1, ckpt["log"], curve


def sync_ranks(method, start: int, log: list, batch_size: int) -> tuple[int, list]:
    """Under torchrun every rank starts from rank 0's weights, optimiser state and epoch."""
    world = distributed.world()
    if not world.active:
        return start, log
    state = distributed.broadcast({"method": method.state_dict(), "start": start, "log": log}
                                  if world.is_main else None)
    method.load_state_dict(state["method"])
    if batch_size % world.size:
        raise BenchError(f"train.batch_size {batch_size} is not divisible by the {world.size} ranks")
    return state["start"], state["log"]


def _meta(cfg: dict, ctx) -> dict:
    return {"method": cfg["method"], "preset": cfg["preset"], "scale": ctx.scale,
            "channels": ctx.channels}


def _checkpoint(method, cfg: dict, ctx, epoch: int, log: list, run_dir: Path, manifest: dict,
                curve: list):
    meta = _meta(cfg, ctx)
    path = checkpoints.save(run_dir / "checkpoints",
                            {"method": method.state_dict(), "epoch": epoch, "log": log,
                             "curve": curve, "meta": meta},
                            before_write=lambda: fault("checkpoint", epoch))
    manifest["last_checkpoint"] = f"{path.relative_to(run_dir)} (epoch {epoch})"
    if log:                             # zero epochs: no step, no losses.csv
        results.write_text(run_dir / "losses.csv", pd.DataFrame(log).to_csv(index=False))


def fit(method, data: PreparedData, cfg: dict, ctx, run_dir: Path, manifest: dict, stage,
        bar=None, log=None, validate=None) -> Timing:
    """Train `method` for cfg's epochs from its last checkpoint, if any; `bar()` after every
    step (runner.Bar: `bar.total(n)` first, with the steps left); `log` (runlog.RunLog) gets
    every step's losses and each epoch's means; losses.csv is written every log.every_steps.
    `validate(step)` (runner: a few evaluation images scored) runs every eval.every steps and
    returns curve rows, kept in the checkpoint and written to curve.csv."""
    tr, timing = cfg["train"], Timing()
    steps = int(tr["steps_per_epoch"])
    start, history, curve = resume_state(method, run_dir, manifest, ctx.device)
    start, history = sync_ranks(method, start, history, int(tr["batch_size"]))
    batches = Batches(data, cfg, ctx.device, type(method).data == "paired")
    if bar is not None:
        bar.total((int(tr["epochs"]) - start) * steps)
    method.train(True)
    for epoch in range(start, int(tr["epochs"])):
        rng = seed_epoch(cfg["seed"], epoch)
        t_epoch, t_data, t_val = time.perf_counter(), 0.0, 0.0
        for i in range(steps):
            t0 = time.perf_counter()
            batch = batches.next(rng)
            t_data += time.perf_counter() - t0
            step = epoch * steps + i
            with stage(f"step {step}"):
                fault("step", step)
                losses = distributed.mean_values(method.train_step(batch, step))
            history.append({"epoch": epoch, "step": step, **losses})
            _report_step(bar, log, cfg, run_dir, history, step, losses)
            every = int(cfg["eval"]["every"])
            if validate is not None and every and (step + 1) % every == 0:
                t0 = time.perf_counter()
                with stage(f"validation after step {step}"):
                    curve += validate(step + 1)
                    best.keep_if_best(method, _meta(cfg, ctx), run_dir, curve, step + 1)
                if curve:        # an empty frame would be a 1-byte file no reader can parse
                    results.write_text(run_dir / "curve.csv", pd.DataFrame(curve).to_csv(index=False))
                t_val += time.perf_counter() - t0
        method.end_epoch(epoch)
        timing.epoch_s.append(time.perf_counter() - t_epoch - t_val)   # training alone
        timing.data_s.append(t_data)
        timing.validation_s.append(t_val)
        with stage(f"checkpoint of epoch {epoch}"):
            _checkpoint(method, cfg, ctx, epoch, history, run_dir, manifest, curve)
        if log is not None:
            log.epoch(epoch, [r for r in history if r["epoch"] == epoch])
    if int(tr["epochs"]) == 0 and method.nets and start == 0:   # given weights, scored as
        with stage("checkpoint of the given weights"):           # they are: export and infer
            _checkpoint(method, cfg, ctx, -1, history, run_dir, manifest, curve)   # need one
    return timing


def _report_step(bar, log, cfg: dict, run_dir: Path, history: list, step: int, losses: dict):
    """The bar, TensorBoard, and losses.csv every log.every_steps (an epoch of the paper
    profile is 2,500 steps: its losses should not wait for the checkpoint)."""
    if bar is not None:
        bar(losses.get("total_g"))
    if log is not None:
        log.step(step, losses)
    every = int(cfg["log"]["every_steps"])
    if every and (step + 1) % every == 0 and distributed.world().is_main:
        results.write_text(run_dir / "losses.csv", pd.DataFrame(history).to_csv(index=False))
