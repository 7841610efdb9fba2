"""Simulated benchmarks whose truth is known, to measure what the intervals of uncertainty.py
cover (statistics.md, "Checking the machinery"). Used by the test suite (which also runs broken
variants and asserts they are caught) and by benchmarks/coverage.py (the published grid).

Two methods, A better than B by `delta`. A value of method m, run r, patient v, block b, slice s:
mu_m + run_{m,r} + patient_v + block_{v,b} + content_{v,b,s} + interaction_{m,v} + own_{m,r,v,b,s}.
Patients, blocks and slice content are shared by both methods (they see the same scans); the
run effect is absent for an untrained method; slices follow AR(1) with correlation rho within
a block, and blocks are separated by gaps (independent). With one volume the truth is that
patient's value (its effect and each method's interaction with it); with several, the
population's."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from benchsr.evaluation import uncertainty

# sds in dB. The patient sd is of the order the three embedded patients show (bicubic's
# between-patient sd 3.6 dB, its seed-free slice sd within a patient 0.6); the seed sd is of the
# order the trained rows show (0.1-3.8 dB)
SD = {"run": 1.0, "patient": 2.0, "block": 0.5, "slice": 0.8, "interaction": 0.5}


@dataclass(frozen=True)
class Design:
    runs_a: int                  # trained runs of A (0: A is untrained)
    runs_b: int                  # trained runs of B (0: B is untrained)
    volumes: int
    rho: float = 0.8             # AR(1) correlation of neighbouring slices
    blocks: int = 3              # evaluation blocks per volume (separated by gaps)
    per_block: int = 8           # slices per block

    def __str__(self) -> str:
        side = lambda r: f"{r} runs" if r else "untrained"   # noqa: E731
        return (f"A {side(self.runs_a)} vs B {side(self.runs_b)}, {self.volumes} volume"
                f"{'s' if self.volumes > 1 else ''}, rho {self.rho}")


def _ar1(rng, shape, rho: float) -> np.ndarray:
    e = rng.normal(0, 1, shape)
    out = np.empty(shape)
    out[..., 0] = e[..., 0]
    for i in range(1, shape[-1]):
        out[..., i] = rho * out[..., i - 1] + math.sqrt(1 - rho ** 2) * e[..., i]
    return out


def values(rng, d: Design, delta: float = 0.5, sd: dict = SD):
    """Per-slice values {"A", "B"}: (runs, volumes, blocks, slices), and each method's truth."""
    shape = (d.volumes, d.blocks, d.per_block)
    patient = rng.normal(0, sd["patient"], d.volumes)
    shared = (patient[:, None, None] + rng.normal(0, sd["block"], shape[:2])[:, :, None]
              + sd["slice"] / math.sqrt(2) * _ar1(rng, shape, d.rho))
    out, truth = {}, {}
    for name, mu, runs in (("A", delta, d.runs_a), ("B", 0.0, d.runs_b)):
        interaction = rng.normal(0, sd["interaction"], d.volumes)
        n = max(runs, 1)
        run = rng.normal(0, sd["run"], n) if runs else np.zeros(1)
        own = sd["slice"] / math.sqrt(2) * _ar1(rng, (n, *shape), d.rho)
        out[name] = (20 + mu + run[:, None, None, None]
                     + (shared + interaction[:, None, None])[None] + own)
        # one volume: that patient's value (the mean over its blocks has expectation 0)
        truth[name] = 20 + mu + (float(patient[0] + interaction[0]) if d.volumes == 1 else 0.0)
    return out, truth


def as_units(v: np.ndarray, trained: bool, slices_as_units: bool = False) -> uncertainty.Units:
    """The Units uncertainty.units builds from such values: per-volume means with several
    volumes, per-block means with one (or, broken on purpose, per-slice values)."""
    runs, volumes, blocks, per = v.shape
    if volumes > 1:
        return uncertainty.Units(v.mean((2, 3)), [f"v{i}" for i in range(volumes)], trained,
                                 [r.ravel() for r in v], "volumes", volumes * blocks * per)
    cols = v[:, 0].reshape(runs, -1) if slices_as_units else v[:, 0].mean(2)
    return uncertainty.Units(cols, [f"u{i}" for i in range(cols.shape[1])], trained,
                             [r.ravel() for r in v], "blocks", blocks * per)


def frames(v: np.ndarray, gap: int = 4) -> list[pd.DataFrame]:
    """One metrics.csv-like frame per run (image names `v0_zNNN`, blocks `gap` slices apart,
    no block column: uncertainty.blocks infers them as the pipeline does for old runs)."""
    _, volumes, blocks, per = v.shape
    names = [f"v{i}_z{b * (per + gap) + s:03d}" for i in range(volumes) for b in range(blocks)
             for s in range(per)]
    vols = [f"v{i}" for i in range(volumes) for _ in range(blocks * per)]
    return [pd.DataFrame({"image": names, "volume": vols, "psnr": run.ravel()}) for run in v]


GRID = tuple(Design(ra, rb, v, rho) for ra, rb in ((1, 1), (2, 2), (3, 3), (5, 5), (2, 0), (3, 0),
                                                     (5, 0), (0, 0))
             for v in (1, 3, 30) for rho in (0.0, 0.8))


def coverage(d: Design, n: int, seed: int = 0, n_boot: int = 0, slices_as_units: bool = False,
             sd: dict = SD) -> dict:
    """Over n simulated benchmarks of design d: how often A's cell CI covers A's truth and the
    CI of A - B covers the true difference, and how many of each were published (a row or test
    with no interval is not counted: it claims nothing)."""
    rng = np.random.default_rng(seed)
    hits = {"cell": 0, "compare": 0}
    shown = {"cell": 0, "compare": 0}
    for _ in range(n):
        v, truth = values(rng, d, sd=sd)
        a = as_units(v["A"], d.runs_a > 0, slices_as_units)
        b = as_units(v["B"], d.runs_b > 0, slices_as_units)
        ci = uncertainty.cell(a, n_boot=n_boot)["ci95"]
        c = uncertainty.compare(a, b, n_boot=n_boot).ci95
        for key, interval, target in (("cell", ci, truth["A"]), ("compare", c, truth["A"] - truth["B"])):
            if interval is not None:
                shown[key] += 1
                hits[key] += interval[0] <= target <= interval[1]
    return {key: (hits[key] / shown[key] if shown[key] else None) for key in hits} | {
        f"{key}_shown": shown[key] for key in shown}
