"""A small Python API for notebooks (docs/api.md): build a method as the harness would, load a
dataset, score a method on it, read a run folder, and the metric functions the tables use."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from benchsr import config, registry
from benchsr.contracts import BenchError, Method, PreparedData, RunContext
from benchsr.evaluation.metrics import psnr, rmse, ssim_global, ssim_windowed  # noqa: F401
from benchsr.results import read_run

__all__ = ["create_method", "load_dataset", "evaluate", "load_run", "Run",
           "psnr", "ssim_windowed", "ssim_global", "rmse"]


def create_method(spec: str, scale: int = 4, profile: str = "smoke", dataset: str = "lung-ct",
                  overrides: tuple[str, ...] = (), device: str = "cpu") -> Method:
    """'name[:preset]' built with its networks on `device`, configured as `benchsr run` would
    for `dataset` and `profile` (with `overrides`, as --set KEY=VALUE items)."""
    name, _, preset = spec.partition(":")
    cls = registry.get("methods", name)
    ds = registry.get("datasets", dataset)
    cfg = config.resolve(cls, preset or "default", ds, profile, list(overrides))
    plane, want, degradation = config.track(cfg, ds)
    why = config.wrong_track(cls, plane, dataset)
    if why:
        raise BenchError(f"{why}: data.plane in overrides chooses the track")
    if want != scale:
        what = "along z (data.z_factor)" if plane == "through" else \
            "dataset (its presets and patches are sized for that)"
        raise BenchError(f"scale={scale}: {dataset} is a {want}x {what}; pass scale={want} or "
                         f"another dataset")
    if scale not in cls.scales:
        raise BenchError(f"{name} does not support scale {scale} (it supports {cls.scales})")
    ctx = RunContext(torch.device(device), scale=scale, epochs=int(cfg["train"]["epochs"]),
                     total_steps=config.total_steps(cfg), degradation=degradation)
    method = cls(cfg, ctx)
    method.build()
    return method


def load_dataset(name: str = "lung-ct", profile: str = "smoke", data_dir=None,
                 overrides: tuple[str, ...] = ()) -> PreparedData:
    """The dataset as `benchsr run --dataset NAME --profile PROFILE` loads it: its training
    streams, evaluation images and protocol."""
    cls = registry.get("datasets", name)
    cfg = config.resolve(registry.get("methods", "nearest"), "default", cls, profile, list(overrides))
    return cls(cfg, Path(data_dir) if data_dir else None).read()


def evaluate(method: Method, data: PreparedData | None = None, device: str = "cpu"):
    """Score `method` (from create_method, or a finished run's `Run.method()`) on the
    evaluation images of `data` (default: the dataset and profile the method was configured
    for), as a run scores them: a pandas DataFrame, one row per image, with the set it belongs
    to. LPIPS is left out, and nothing is written."""
    import pandas as pd
    from benchsr.evaluation import clinical
    from benchsr.evaluation.evaluate import choose_images, evaluate as score_images
    cfg = method.cfg
    if data is None:
        data = load_dataset(cfg["dataset"], cfg["profile"])
    if data.scale != method.ctx.scale:
        raise BenchError(f"the method super-resolves x{method.ctx.scale}, the data is x{data.scale}")
    measures = clinical.Context(lpips=None, hr_window=data.protocol.get("hr_window"),
                                hr_units=data.protocol.get("hr_units", "HU"))
    rows, _, _ = score_images(method, choose_images(data, cfg), cfg, torch.device(device), measures)
    return pd.DataFrame(rows)


@dataclass
class Run:
    """A finished run folder: its manifest, config, summary, cost and per-image metrics."""
    path: Path
    manifest: dict
    config: dict
    summary: dict
    cost: dict
    metrics: object          # pandas DataFrame of the primary evaluation set, or None

    def method(self, device: str = "cpu", checkpoint: Path | None = None):
        """The trained method, weights loaded (as `benchsr infer` loads it)."""
        from benchsr.run.infer import load_trained
        return load_trained(self.path, checkpoint, torch.device(device), "fp32").method


def load_run(path) -> Run:
    rec = read_run(Path(path))
    if rec is None:
        raise BenchError(f"{path}: not a finished run folder")
    return Run(Path(path), rec["manifest"], rec["config"], rec["summary"], rec["cost"],
               rec["all_metrics"])
