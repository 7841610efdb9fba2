"""The method of a run, built: its context, seeded networks, imported weights, fast paths, and
under torchrun each net wrapped for data parallelism."""
from __future__ import annotations

import torch

from benchsr.config import total_steps, wrong_track
from benchsr.contracts import BenchError, PreparedData, RunContext
from benchsr.nn import weights
from benchsr.run.training import seed_epoch
from benchsr.run import fastpaths
from benchsr.runtime import distributed


def build_method(method_cls, cfg: dict, device, data: PreparedData, notes: list):
    method = _built(method_cls, cfg, device, data, notes)
    fastpaths.apply(method, cfg["runtime"], method.ctx)
    if distributed.world().active:
        for name, net in method.nets.items():
            method.nets[name] = distributed.wrap(distributed.sync_batchnorm(net, device), device)
        if device.type != "cuda" and any(map(distributed.has_batchnorm, method.nets.values())):
            method.ctx.notes.append("data-parallel on CPU: BatchNorm statistics are per rank "
                                    "(SyncBatchNorm needs CUDA)")
    return method


def check_fits(cfg: dict, data: PreparedData, method_cls=None) -> None:
    """What only the data can check, before any run folder exists (else a FAILED run): the
    method runs the data's track (plane), the training patch fits the streams' images, and
    the border the scores leave out leaves something of the evaluation images."""
    plane = data.protocol.get("plane", "axial")
    why = wrong_track(method_cls, plane, cfg["dataset"]) if method_cls is not None else ""
    if why:
        raise BenchError(why)
    k, p = data.scale, int(cfg["train"]["lr_patch"])
    for what, stack, size in (("LR", data.train_lr, p), ("HR", data.train_hr, p * k)):
        images = stack.images
        sizes = ([images.slice_shape(z) for z in range(images.shape[0])]
                 if hasattr(images, "slice_shape") else [images.shape[1:]])
        h, w = max(sizes, key=min)   # patches come from the slices they fit (PatchSampler)
        if size > min(h, w):
            raise BenchError(f"train.lr_patch={p}: the {what} stream's images are {h}x{w}, "
                             f"smaller than its {size}x{size} patch")
    border = cfg["eval"]["border_crop"]
    crop = int(cfg["eval"]["crop"])
    sides = [crop or (min(img.hr.shape) if img.hr is not None else min(img.lr.shape) * k)
             for img in data.eval_images]
    if border is not None and sides and 2 * int(border) >= min(sides):
        raise BenchError(f"eval.border_crop={border}: leaves nothing of a {min(sides)}-pixel "
                         f"evaluation image (2 x {border} pixels are left out)")


def check_init(method_cls, cfg: dict, data: PreparedData) -> None:
    """init.from tried on a method built on the CPU, before any run folder exists: a file that
    does not fit is a one-line error, never a failed run."""
    if cfg["init"]["from"]:
        _built(method_cls, cfg, torch.device("cpu"), data, [])


def _built(method_cls, cfg: dict, device, data: PreparedData, notes: list):
    """The method's context and seeded networks, with init.from loaded."""
    tr, k = cfg["train"], data.scale
    if k not in method_cls.scales:
        raise BenchError(f"{method_cls.name} does not support scale {k}")
    ctx = RunContext(device=device, precision=cfg["precision"], scale=k, channels=1,
                     epochs=int(tr["epochs"]), notes=notes, total_steps=total_steps(cfg),
                     degradation=data.protocol.get("degradation", "bicubic"))
    if cfg["precision"] == "fp16":
        ctx.scaler = torch.amp.GradScaler("cuda")
    seed_epoch(cfg["seed"], -1)     # network init is seeded too
    method = method_cls(cfg, ctx)
    method.build()
    if cfg["init"]["from"]:
        notes.append(weights.init_from(method, cfg["init"]))
    return method
