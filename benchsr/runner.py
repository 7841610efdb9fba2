"""The loop every method shares: device, precision, seeds, training with checkpoints and resume,
evaluation, costs, and the self-describing run folder."""
from __future__ import annotations

import io
import os
import re
import random
import shutil
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk
import torch

from . import checkpoints, cost, distributed, fastpaths, figures, metrics, results
from .guards import fault, time_limit
from .contracts import BenchError, PreparedData, RunContext, TrainBatch
from .evaluate import evaluate
from .patches import PatchSampler
from .volumes import degrade_batch

def pick_device(name: str) -> torch.device:
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", str(name)):
        raise BenchError(f"--device {name}: expected auto, cpu, cuda or cuda:N")
    if name == "auto":
        if torch.cuda.is_available():   # torchrun: one GPU per local rank
            return torch.device("cuda", distributed.world().local_rank)
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise BenchError(f"--device {name}: CUDA is not available on this machine")
    return torch.device(name)


def check_precision(precision: str, device: torch.device) -> None:
    if precision not in ("fp32", "bf16", "fp16"):
        raise BenchError(f"unknown precision '{precision}' (fp32, bf16, fp16)")
    if precision == "fp16" and device.type != "cuda":
        raise BenchError("fp16 autocast needs CUDA; use bf16 on the CPU")


def seed_epoch(seed: int, epoch: int) -> np.random.Generator:
    """Every epoch starts from a seed of its own, so a resumed run replays it exactly."""
    s = seed * 100_003 + epoch + 1   # epoch -1 seeds the network initialisation
    random.seed(s)
    torch.manual_seed(s)
    return np.random.default_rng([seed, epoch + 1])


def _png(path: Path, arr: np.ndarray) -> None:
    tmp = path.with_name(f".{path.stem}.tmp.png")
    sitk.WriteImage(sitk.GetImageFromArray((np.clip(arr, 0, 1) * 255).round().astype(np.uint8)),
                    str(tmp))
    os.replace(tmp, path)


def save_samples(run_dir: Path, kept, scale: int) -> None:
    """LR (nearest-enlarged) | SR | HR side by side, one PNG per sample image, and the arrays
    themselves (float16 .npz) for the leaderboard's comparison grid."""
    (run_dir / "samples").mkdir(exist_ok=True)
    for img, sr in kept:
        buf = io.BytesIO()
        arrays = {"lr": img.lr, "sr": sr} | ({"hr": img.hr} if img.hr is not None else {})
        np.savez_compressed(buf, group=np.array(img.group),
                            **{k: np.asarray(v, np.float16) for k, v in arrays.items()})
        results.atomic_write_bytes(run_dir / "samples" / f"{img.name}.npz", buf.getvalue())
        lr_big = np.kron(img.lr, np.ones((scale, scale), np.float32))
        panels = [lr_big, sr] + ([img.hr] if img.hr is not None else [])
        gap = np.ones((sr.shape[0], 4), np.float32)
        _png(run_dir / "samples" / f"{img.name}.png",
             np.concatenate([p for pair in zip(panels, [gap] * len(panels)) for p in pair][:-1], 1))


def check_finite_metrics(rows: list[dict]) -> None:
    """An infinite or NaN score is not a result: the run fails, naming the image (an SR equal
    to its reference gives PSNR inf, e.g. under a degenerate window)."""
    for row in rows:
        for m in metrics.DIRECTION:
            v = row.get(m)
            if v is not None and not np.isfinite(v):
                raise BenchError(f"{m} is {v} on image {row['image']}: not a result (an output "
                                 f"identical to its reference, or a broken window?)")


def summarise(df: pd.DataFrame, seed: int) -> dict:
    """Per-metric mean/std/n/CI over the primary evaluation set (group ""); the same for each
    secondary set under "groups"; and, where images know their volume, the mean of per-volume
    means (the COVID-19-20 protocol averages per volume, then over volumes)."""
    def block(part: pd.DataFrame) -> dict:
        out = {}
        for m in metrics.DIRECTION:
            if m not in part or part[m].isna().all():
                continue
            by_volume = part["volume"].notna().all() and part["volume"].nunique() > 1
            out[m] = metrics.bootstrap_summary(part[m].tolist(), seed,
                                               part["volume"].tolist() if by_volume else None)
            if part["volume"].notna().any():
                out[m]["volume_mean"] = float(part.groupby("volume")[m].mean().mean())
        return out

    groups = df["group"].fillna("")
    summary = block(df[groups == ""])
    summary["groups"] = {g: block(df[groups == g]) for g in sorted(set(groups) - {""})}
    return summary


@dataclass
class RunOutcome:
    label: str
    run_dir: Path
    status: str
    reason: str = ""


class Runner:
    def __init__(self, data: PreparedData, out_root: Path, progress=None):
        self.data, self.out_root, self.progress = data, out_root, progress
        self._lpips = None

    def lpips_metric(self, device):
        if self._lpips is None:
            self._lpips = metrics.LPIPSMetric(device)
        return self._lpips

    # ------------------------------------------------------------------------------------------
    def run(self, method_cls, cfg: dict, resume: bool = False) -> RunOutcome:
        device = pick_device(cfg["device"])
        check_precision(cfg["precision"], device)
        if method_cls.data == "paired" and not self.data.protocol.get("degradation"):
            raise BenchError(f"{method_cls.name} trains on pairs, but {cfg['dataset']} declares "
                             f"no degradation to make them from its HR patches")
        label = results.run_label(cfg["method"], cfg["preset"], cfg["variant"])
        world = distributed.world()
        if world.is_main:
            found = results.find_resumable(self.out_root, cfg["dataset"], label, cfg) if resume else None
            run_dir, lock = found or results.new_run_dir(self.out_root, cfg["dataset"], label, cfg["profile"])
        else:   # other ranks write into a scratch folder that is thrown away: rank 0 publishes
            run_dir, lock = Path(tempfile.mkdtemp(prefix="benchsr-rank")), None
        main_dir = distributed.broadcast(str(run_dir))
        manifest = {"label": label, "method": cfg["method"], "preset": cfg["preset"],
                    "variant": cfg["variant"],
                    "dataset": cfg["dataset"], "profile": cfg["profile"], "seed": cfg["seed"],
                    "scale": self.data.scale,
                    "precision": cfg["precision"], "status": "running", "started": results.now(),
                    "protocol": self.data.protocol, "simulated": self.data.simulated,
                    "data_metadata": self.data.metadata, "notes": [],
                    "provenance": results.provenance(device), "resumed_from_epoch": None,
                    "last_checkpoint": None, "world_size": world.size}
        self.where = "set-up"
        try:
            results.write_yaml(run_dir / "config.yaml", cfg)
            results.write_json(run_dir / "manifest.json", manifest)
            try:
                with time_limit(float(cfg["time_limit_s"])):
                    self._run(method_cls, cfg, device, run_dir, manifest)
                manifest["status"] = "complete"
            except Exception as exc:  # noqa: BLE001 - recorded as a failed run, the others go on
                manifest["status"] = "failed"
                reason = f"{type(exc).__name__}: {exc}"
                if self.where not in reason:
                    reason += f" (during {self.where})"
                manifest["reason"] = reason.replace("\n", " ")
                manifest["traceback"] = traceback.format_exc(limit=8)
            manifest["finished"] = results.now()
            results.write_json(run_dir / "manifest.json", manifest)
        finally:
            if lock is not None:
                lock.release()
            if not world.is_main:
                shutil.rmtree(run_dir, ignore_errors=True)
        return RunOutcome(label, Path(main_dir), manifest["status"], manifest.get("reason", ""))

    def _run(self, method_cls, cfg, device, run_dir: Path, manifest: dict) -> None:
        tr, k = cfg["train"], self.data.scale
        ctx = RunContext(device=device, precision=cfg["precision"], scale=k, channels=1,
                         epochs=int(tr["epochs"]), notes=manifest["notes"],
                         total_steps=int(tr["epochs"]) * int(tr["steps_per_epoch"]),
                         degradation=self.data.protocol.get("degradation", "bicubic"))
        if cfg["precision"] == "fp16":
            ctx.scaler = torch.amp.GradScaler("cuda")
        if k not in method_cls.scales:
            raise BenchError(f"{method_cls.name} does not support scale {k}")
        seed_epoch(cfg["seed"], -1)     # network init is seeded too
        method = method_cls(cfg, ctx)
        method.build()
        fastpaths.apply(method, cfg["runtime"], ctx)
        if distributed.world().active:
            for name, net in method.nets.items():
                method.nets[name] = distributed.sync_batchnorm(net, device)
            if device.type != "cuda" and any(map(distributed.has_batchnorm, method.nets.values())):
                ctx.notes.append("data-parallel on CPU: BatchNorm statistics are per rank "
                                 "(SyncBatchNorm needs CUDA)")
        memory = cost.PeakMemory(device)
        timing = {"epoch_s": [], "data_s": [], "steps": 0}
        if method_cls.data != "none":
            self._train(method, cfg, ctx, run_dir, manifest, timing)

        lp = self.lpips_metric(device) if cfg["eval"]["lpips"] else None
        if lp is not None and not lp.available:
            manifest["notes"].append(f"LPIPS {lp.reason}: {lp.detail}")
            lp = None
        limit = cfg["eval"]["max_images"] or None          # 0 = all; per evaluation set
        pool, images = self.data.eval_images + self.data.lr_only, []
        for group in dict.fromkeys(i.group for i in pool):
            images += [i for i in pool if i.group == group][:limit]
        task = self._task(f"eval  {manifest['label']}", len(images))
        self.where = "evaluation"

        def on_image(i: int) -> None:
            self.where = f"evaluation after image {i + 1}"
            fault("eval", i)
            self._advance(task)
        world = distributed.world()   # each rank scores every size-th image; rank 0 gets all rows
        mine = list(range(len(images)))[world.rank::world.size]
        rows, kept, ms = evaluate(method, [images[i] for i in mine], cfg, device, lp,
                                  on_image=on_image)
        rows = [row for _, row in sorted(distributed.gather(list(zip(mine, rows))), key=lambda p: p[0])]
        self._done(task)
        if not rows:
            raise BenchError("the dataset produced no evaluation images")
        for row in rows:
            row.setdefault("lpips", None)
        check_finite_metrics(rows)
        df = pd.DataFrame(rows)
        results.write_text(run_dir / "metrics.csv", df.to_csv(index=False))
        summary = summarise(df, cfg["seed"])
        summary["lpips_note"] = None if lp is not None else (
            (self._lpips.reason if self._lpips else "n/a: disabled (eval.lpips=false)"))
        summary["training"] = self._loss_trend(run_dir)
        if (run_dir / "losses.csv").is_file():
            figures.loss_plot(run_dir / "losses.csv", run_dir / "losses.png",
                              f"{manifest['label']} on {cfg['dataset']} ({cfg['profile']})")
        results.write_json(run_dir / "summary.json", summary)
        save_samples(run_dir, kept, k)

        params = cost.params_per_network(method)
        lr_shape = (1, 1, *self.data.eval_images[0].lr.shape)   # a whole evaluation slice
        epoch_s = float(np.mean(timing["epoch_s"])) if timing["epoch_s"] else None
        samples = tr["batch_size"] * tr["steps_per_epoch"]
        results.write_json(run_dir / "cost.json", {
            "params": params, "params_total": sum(params.values()),
            "inference_network": method_cls.inference_network,
            "flops_per_lr_input": cost.flops_per_input(method, lr_shape, device),
            "flops_input_shape": list(lr_shape),
            "s_per_epoch": epoch_s, "steps_per_epoch": tr["steps_per_epoch"],
            "batch_size": tr["batch_size"],
            "samples_per_s": samples / epoch_s if epoch_s else None,
            "data_fraction": (float(np.sum(timing["data_s"]) / np.sum(timing["epoch_s"]))
                              if timing["epoch_s"] else None),
            "ms_per_slice": ms, "eval_input_shape": [1, 1, *kept[0][0].lr.shape] if kept else None,
            "peak_memory_mib": memory.read_mib(), "peak_memory_kind": memory.kind,
            "device": str(device), "precision": cfg["precision"],
        })

    # ------------------------------------------------------------------------------------------
    def _train(self, method, cfg, ctx, run_dir: Path, manifest: dict, timing: dict) -> None:
        tr, k = cfg["train"], self.data.scale
        p, bs, steps = int(tr["lr_patch"]), int(tr["batch_size"]), int(tr["steps_per_epoch"])
        lr_sampler = PatchSampler(self.data.train_lr, p, f"{cfg['dataset']} LR stream")
        hr_sampler = PatchSampler(self.data.train_hr, p * k, f"{cfg['dataset']} HR stream")
        ckpt_dir = run_dir / "checkpoints"
        start, log = 0, []
        found = checkpoints.load_latest(ckpt_dir, ctx.device)
        if found is not None:
            ckpt, path, skipped = found
            manifest["notes"] += [f"resume skipped {s}" for s in skipped]
            method.load_state_dict(ckpt["method"])
            start, log = ckpt["epoch"] + 1, ckpt["log"]
            manifest["resumed_from_epoch"] = start
            manifest["last_checkpoint"] = f"{path.relative_to(run_dir)} (epoch {ckpt['epoch']})"
            # a kill after the checkpoint but before losses.csv leaves it stale: rebuild it now
            results.write_text(run_dir / "losses.csv", pd.DataFrame(log).to_csv(index=False))
        world = distributed.world()
        if world.active:   # every rank starts from rank 0's weights, optimiser state and epoch
            state = distributed.broadcast({"method": method.state_dict(), "start": start, "log": log}
                                          if world.is_main else None)
            method.load_state_dict(state["method"])
            start, log = state["start"], state["log"]
            if bs % world.size:
                raise BenchError(f"train.batch_size {bs} is not divisible by the {world.size} ranks")
        shard = world.shard(bs)
        make_pairs = type(method).data == "paired"   # the runner makes them: LR = degrade(HR)
        paired = make_pairs or self.data.paired
        memory_format = torch.channels_last if cfg["runtime"]["channels_last"] else torch.contiguous_format
        task = self._task(f"train {manifest['label']}", (int(tr["epochs"]) - start) * steps)
        method.train(True)
        for epoch in range(start, int(tr["epochs"])):
            rng = seed_epoch(cfg["seed"], epoch)
            t_epoch, t_data = time.perf_counter(), 0.0
            for i in range(steps):
                t0 = time.perf_counter()
                lr_np, _ = lr_sampler.sample(bs, rng)     # the global batch, same on every rank
                hr_np, _ = hr_sampler.sample(bs, rng)
                if make_pairs:   # LR = the HR patch under the dataset's own degradation
                    lr_np = degrade_batch(hr_np, k, ctx.degradation)
                batch = TrainBatch(*(torch.from_numpy(a[shard]).to(ctx.device, memory_format=memory_format)
                                     for a in (lr_np, hr_np)), paired)
                t_data += time.perf_counter() - t0
                step = epoch * steps + i
                self.where = f"step {step}"
                fault("step", step)
                losses = distributed.mean_values(method.train_step(batch, step))
                log.append({"epoch": epoch, "step": step, **losses})
                self._advance(task)
            method.end_epoch(epoch)
            timing["epoch_s"].append(time.perf_counter() - t_epoch)
            timing["data_s"].append(t_data)
            self.where = f"checkpoint of epoch {epoch}"
            meta = {"method": cfg["method"], "preset": cfg["preset"], "scale": k, "channels": ctx.channels}
            path = checkpoints.save(ckpt_dir, {"method": method.state_dict(), "epoch": epoch,
                                               "log": log, "meta": meta},
                                    before_write=lambda: fault("checkpoint", epoch))
            manifest["last_checkpoint"] = f"{path.relative_to(run_dir)} (epoch {epoch})"
            results.write_text(run_dir / "losses.csv", pd.DataFrame(log).to_csv(index=False))
        self._done(task)

    @staticmethod
    def _loss_trend(run_dir: Path) -> dict | None:
        """Mean generator loss of the first and the last epoch: does training learn?"""
        path = run_dir / "losses.csv"
        if not path.is_file():
            return None
        df = pd.read_csv(path)
        if "total_g" not in df or df.empty:
            return None
        per_epoch = df.groupby("epoch")["total_g"].mean().dropna()
        if per_epoch.empty:
            return None
        return {"total_g_first_epoch": float(per_epoch.iloc[0]),
                "total_g_last_epoch": float(per_epoch.iloc[-1]), "epochs": int(len(per_epoch))}

    # progress helpers (rich.progress.Progress or None)
    def _task(self, label: str, total: int):
        return self.progress.add_task(label, total=total) if self.progress else None

    def _advance(self, task) -> None:
        if self.progress is not None and task is not None:
            self.progress.advance(task)

    def _done(self, task) -> None:
        if self.progress is not None and task is not None:
            self.progress.update(task, visible=False)
