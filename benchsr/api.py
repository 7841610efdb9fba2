"""A small Python API for notebooks: build a method as the harness would, or read a run folder."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from benchsr import config, registry
from benchsr.contracts import BenchError, Method, RunContext
from benchsr.results import read_run


def create_method(spec: str, scale: int = 4, profile: str = "smoke", dataset: str = "lung-ct",
                  overrides: tuple[str, ...] = (), device: str = "cpu") -> Method:
    """'name[:preset]' built with its networks on `device`, configured as `benchsr run` would
    for `dataset` and `profile` (with `overrides`, as --set KEY=VALUE items)."""
    name, _, preset = spec.partition(":")
    cls = registry.get("methods", name)
    ds = registry.get("datasets", dataset)
    if getattr(ds, "scale", scale) != scale:
        raise BenchError(f"scale={scale}: {dataset} is a {ds.scale}x dataset (its presets and "
                         f"patches are sized for that); pass scale={ds.scale} or another dataset")
    if scale not in cls.scales:
        raise BenchError(f"{name} does not support scale {scale} (it supports {cls.scales})")
    cfg = config.resolve(cls, preset or "default", ds, profile, list(overrides))
    ctx = RunContext(torch.device(device), scale=scale, epochs=int(cfg["train"]["epochs"]),
                     total_steps=config.total_steps(cfg))
    method = cls(cfg, ctx)
    method.build()
    return method


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
