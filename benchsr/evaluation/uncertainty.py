"""Uncertainty from the units the benchmark samples: training runs (seeds), then patients
(volumes), then slices. The facts are in the specs' statistics.md; rliable (Agarwal et al. 2021)
is the reference for the run-level bootstrap and the probability of improvement.

A row's per-image values become a runs x volumes matrix of per-volume means: slices are averaged
within their volume first, because neighbouring slices of one CT are not independent. On it:
- `cell`: the row's value (mean over runs of the mean over volumes), the between-run sd and a
  95 % CI. The CI is a two-level bootstrap (volumes, then runs), never narrower than either t
  floor, t(R-1) sd_run / sqrt(R) and t(V-1) sd_vol / sqrt(V): with 3 runs a percentile
  bootstrap alone draws only 3 values and is far too narrow.
- Leave-one-patient-out rows (`Units.nested`: each run scored its one held-out patient): the
  cell is the mean over patients of each patient's seed mean, its CI resamples patients, then
  seeds within them, never narrower than t(V-1) over the patient means; comparisons pair the
  patient means (t over V-1 df).
- `compare`: the effect A - B on the volumes both have (paired on them), its standard error,
  p-value and 95 % CI from the same construction, P(A better than B) over pairs of runs with a
  bootstrap CI, the minimum detectable effect and, where it is too few, how many seeds would do.
- `verdict`: holds / reversed / no detectable difference / untestable, from a Holm-adjusted p.

A method without trained weights (interpolation) has no run-to-run variance: its one run is
complete information about it. A trained method with one run has an unknown run variance, so a
comparison with it is untestable. Images that name no volume count as one unnamed volume: one
cannot assume they come from different patients.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

ALPHA = 0.05
POWER = 0.8
N_BOOT = 2000
UNNAMED = "(unnamed volume)"
MAX_SEEDS = 100


@dataclass
class Units:
    """Per-run, per-volume means of one metric for one row on one evaluation set."""
    values: np.ndarray                 # (runs, volumes), NaN where a run lacks that volume
    volumes: list[str]
    trained: bool = True               # False: no trained weights, runs cannot differ
    slices: list[np.ndarray] = field(default_factory=list)   # per run, in image order

    @property
    def n_runs(self) -> int:
        return self.values.shape[0]

    @property
    def n_volumes(self) -> int:
        return self.values.shape[1]

    def restrict(self, volumes: list[str]) -> "Units":
        idx = [self.volumes.index(v) for v in volumes]
        return Units(self.values[:, idx], list(volumes), self.trained, self.slices)

    def collapsed(self) -> "Units":
        """An untrained row's runs are one run in expectation: keep their mean as one run (a
        repeated deterministic run must not look like seed replication)."""
        if self.trained or self.n_runs < 2:
            return self
        return Units(np.nanmean(self.values, 0, keepdims=True), self.volumes, False, self.slices[:1])

    def run_scores(self) -> np.ndarray:
        """Each run's score: the mean over volumes of its per-volume means."""
        return np.nanmean(self.values, axis=1)

    @property
    def nested(self) -> bool:
        """Leave-one-patient-out: every (fold, seed) run scored one volume, its held-out
        patient, and the runs cover several volumes. Runs are then nested in volumes."""
        finite = np.isfinite(self.values)
        return (self.trained and self.n_volumes > 1 and bool((finite.sum(1) == 1).all()))

    def volume_runs(self) -> list[np.ndarray]:
        """Nested design: each volume's run values (its seeds), in volume order."""
        return [self.values[np.isfinite(self.values[:, j]), j] for j in range(self.n_volumes)]


def units(frames: list[pd.DataFrame], metric: str, trained: bool = True) -> Units | None:
    """Units from one per-image frame per run (columns image, volume, `metric`); None when no
    run has a finite value."""
    parts = []
    for frame in frames:
        df = frame[["image", "volume", metric]].copy() if "volume" in frame else \
            frame[["image", metric]].assign(volume=None)
        df["volume"] = df["volume"].astype(object).where(df["volume"].notna(), UNNAMED).astype(str)
        df = df[np.isfinite(pd.to_numeric(df[metric], errors="coerce").astype(float))]
        if not df.empty:
            parts.append(df.astype({metric: float}).sort_values(["volume", "image"]))
    if not parts:
        return None
    volumes = sorted(set().union(*(set(p["volume"]) for p in parts)))
    values = np.array([p.groupby("volume")[metric].mean().reindex(volumes).to_numpy()
                       for p in parts])
    return Units(values, volumes, trained, [p[metric].to_numpy() for p in parts])


# ---- resampling -------------------------------------------------------------------------------
def _volume_draws(n_volumes: int, rng, n_boot: int) -> np.ndarray:
    if n_volumes < 2:
        return np.zeros((n_boot, n_volumes), dtype=int)
    return rng.integers(0, n_volumes, size=(n_boot, n_volumes))


def _run_draws(u: Units, rng, n_boot: int) -> np.ndarray:
    if u.n_runs < 2 or not u.trained:
        return np.tile(np.arange(u.n_runs), (n_boot, 1))
    return rng.integers(0, u.n_runs, size=(n_boot, u.n_runs))


def _per_run_replicates(u: Units, vol_draws: np.ndarray) -> np.ndarray:
    """(B, runs): each run's score under each replicate's draw of volumes."""
    return np.nanmean(u.values[:, vol_draws], axis=2).T


def _replicates(u: Units, per_run: np.ndarray, rng, n_boot: int) -> np.ndarray:
    """(B, runs) scores after drawing volumes (`per_run`, from _per_run_replicates) and then
    runs (within this method)."""
    return np.take_along_axis(per_run, _run_draws(u, rng, n_boot), axis=1)


def _block_bootstrap_means(v: np.ndarray, rng, n_boot: int) -> np.ndarray:
    """Moving-block bootstrap of the mean of ordered, correlated slices (block length n^(1/3),
    at least 2), for the one case with nothing else to resample: one run of one volume."""
    n = len(v)
    b = min(n, max(2, math.ceil(n ** (1 / 3))))
    starts = rng.integers(0, n - b + 1, size=(n_boot, math.ceil(n / b)))
    idx = (starts[:, :, None] + np.arange(b)).reshape(n_boot, -1)[:, :n]
    return v[idx].mean(1)


def slice_block_ci(v: np.ndarray, seed: int = 0, n_boot: int = N_BOOT) -> list[float] | None:
    """95 % CI of the mean of one volume's ordered slices (moving-block bootstrap)."""
    v = np.asarray(v, dtype=np.float64)
    if v.size < 2:
        return None
    reps = _block_bootstrap_means(v, np.random.default_rng(seed), n_boot)
    return [float(np.percentile(reps, 2.5)), float(np.percentile(reps, 97.5))] if np.ptp(reps) > 0 else None


def _satterthwaite(components: list[tuple[float, int]]) -> float:
    """Degrees of freedom of a sum of variance components (variance, its df)."""
    total = sum(var for var, _ in components)
    denom = sum(var ** 2 / df for var, df in components if var > 0 and df > 0)
    return total ** 2 / denom if denom > 0 else math.inf


def _t(q: float, df: float) -> float:
    return float(stats.norm.ppf(q) if math.isinf(df) else stats.t.ppf(q, df))


# ---- one row ----------------------------------------------------------------------------------
def covers(u: Units) -> str:
    """Which sampled units a row's CI covers, in words for the table."""
    if u.nested:
        seeds = sorted({len(r) for r in u.volume_runs()})
        return (f"held-out patients ({u.n_volumes}, one per fold) and seeds within them "
                f"({'/'.join(map(str, seeds))} per patient)")
    runs = u.trained and u.n_runs > 1
    vols = u.n_volumes > 1
    if runs and vols:
        return f"runs ({u.n_runs}) and volumes ({u.n_volumes})"
    if runs:
        return f"runs ({u.n_runs}); 1 volume only"
    why = "no training" if not u.trained else "1 run: seed variance not included"
    if vols:
        return f"volumes ({u.n_volumes}); {why}"
    return f"slices of 1 volume only; {why}"


def cell(u: Units, seed: int = 0, n_boot: int = N_BOOT) -> dict:
    """mean, between-run sd (None for one run), 95 % CI and what it covers."""
    if u.nested:
        return _nested_cell(u, seed, n_boot)
    rng = np.random.default_rng(seed)
    n_runs, u = u.n_runs, u.collapsed()
    x = u.run_scores()
    mean = float(np.mean(x))
    sd_runs = float(np.std(x, ddof=1)) if u.n_runs > 1 else None
    out = {"mean": mean, "sd_runs": sd_runs, "n_seeds": n_runs, "n_volumes": u.n_volumes,
           "ci_covers": covers(u), "ci95": None}
    if u.n_runs == 1 and u.n_volumes == 1:
        out["ci95"] = slice_block_ci(u.slices[0], seed, n_boot)
        return out
    per_run = _per_run_replicates(u, _volume_draws(u.n_volumes, rng, n_boot))
    reps = _replicates(u, per_run, rng, n_boot).mean(1)
    # never narrower than either t floor (statistics.md): t(R-1) sd_run / sqrt(R) over the run
    # scores, t(V-1) sd_vol / sqrt(V) over the volume means (a Satterthwaite df on the combined
    # standard error gave narrower intervals, and under-covered)
    h = 0.0
    if sd_runs is not None and u.trained:
        h = _t(0.975, u.n_runs - 1) * sd_runs / math.sqrt(u.n_runs)
    if u.n_volumes > 1:
        vol_means = np.nanmean(u.values, axis=0)
        h = max(h, _t(0.975, u.n_volumes - 1) * float(np.std(vol_means, ddof=1))
                / math.sqrt(u.n_volumes))
    lo, hi = float(np.percentile(reps, 2.5)), float(np.percentile(reps, 97.5))
    if h > 0 or hi > lo:
        out["ci95"] = [min(lo, mean - h), max(hi, mean + h)]
    return out


def _nested_cell(u: Units, seed: int, n_boot: int) -> dict:
    """Leave-one-patient-out (statistics.md): a cell is the mean over patients of the mean over
    that patient's seeds. Its CI resamples patients, then seeds within each patient, and is
    never narrower than t(V-1) over the patient means (which carry their seeds' noise, so
    this one floor covers both levels)."""
    runs = u.volume_runs()
    means = np.array([r.mean() for r in runs])
    within = [r for r in runs if len(r) > 1]
    # the between-seed sd: pooled within patients (seeds of one fold differ only by seed)
    sd_runs = (float(np.sqrt(sum(((r - r.mean()) ** 2).sum() for r in within)
                             / sum(len(r) - 1 for r in within))) if within else None)
    rng = np.random.default_rng(seed)
    counts = np.array([len(r) for r in runs])
    table = np.zeros((len(runs), counts.max()))
    for j, r in enumerate(runs):
        table[j, :len(r)] = r
    pick = rng.integers(0, len(runs), (n_boot, len(runs)))          # patients
    n = counts[pick]
    seeds = (rng.random((*pick.shape, counts.max())) * n[..., None]).astype(int)   # within
    drawn = np.where(np.arange(counts.max()) < n[..., None], table[pick[..., None], seeds], 0.0)
    reps = (drawn.sum(2) / n).mean(1)
    h = _t(0.975, len(runs) - 1) * float(np.std(means, ddof=1)) / math.sqrt(len(runs))
    mean = float(means.mean())
    lo, hi = float(np.percentile(reps, 2.5)), float(np.percentile(reps, 97.5))
    return {"mean": mean, "sd_runs": sd_runs, "n_seeds": u.n_runs, "n_volumes": u.n_volumes,
            "ci_covers": covers(u), "ci95": [min(lo, mean - h), max(hi, mean + h)]}


# ---- two rows ---------------------------------------------------------------------------------
@dataclass
class Comparison:
    """A - B, oriented so that `better` > 0 means A is better on this metric."""
    effect: float                      # A - B in the metric's unit
    better: float                      # effect with the metric's direction: > 0 = A better
    se: float | None = None
    df: float | None = None
    p: float | None = None             # two-sided; None = untestable
    ci95: list[float] | None = None
    p_better: float | None = None      # P(A better than B) over pairs of runs
    p_better_ci95: list[float] | None = None
    mde: float | None = None           # smallest |effect| detectable at ALPHA, POWER
    n_volumes: int = 0
    runs: tuple[int, int] = (0, 0)     # training runs of A and B (0: no training)
    untestable: str = ""               # why, and what would be needed
    seeds_needed: str = ""             # seeds per method that would resolve |effect|


def _prob_better(xa: np.ndarray, xb: np.ndarray, sign: int) -> np.ndarray:
    """P(A better than B) over all pairs of runs (Mann-Whitney U / (R_A R_B)); the last axis
    holds the runs, leading axes are replicates."""
    diff = sign * (xa[..., :, None] - xb[..., None, :])
    return ((diff > 0) + 0.5 * (diff == 0)).mean(axis=(-1, -2))


def _seeds_needed(sigmas: list[float], var_vols: float, n_volumes: int, effect: float) -> str:
    """Seeds per trained method for which the minimum detectable effect (statistics.md, with
    this test's Welch-Satterthwaite degrees of freedom and the volume component) reaches |effect|,
    at ALPHA before Holm's correction. `sigmas`: the between-run sd of each trained method."""
    if not sigmas or max(sigmas) <= 0 or not effect or not np.isfinite(effect):
        return ""
    for r in range(2, MAX_SEEDS + 1):
        comps = [(sd ** 2 / r, r - 1) for sd in sigmas] + [(var_vols, n_volumes - 1)]
        df = _satterthwaite(comps)
        mde = (_t(1 - ALPHA / 2, df) + _t(POWER, df)) * math.sqrt(sum(v for v, _ in comps))
        if mde <= abs(effect):
            return str(r)
    return f"more than {MAX_SEEDS}"


def _untestable(a: Units, b: Units, names: tuple[str, str], n_volumes: int) -> str:
    for u, name in zip((a, b), names):
        if u.trained and u.n_runs < 2:
            return f"{name} has {u.n_runs} training run: needs at least 2 (3 to see its spread)"
        if u.trained and np.ptp(u.run_scores()) == 0:
            return (f"the {u.n_runs} runs of {name} score identically: its seed variance cannot "
                    f"be estimated (a method no seed changes declares `deterministic`)")
    if not (a.trained or b.trained) and n_volumes < 2:
        return "neither method trains and there is 1 volume: needs at least 2 volumes"
    if n_volumes < 1:
        return "no volume in common"
    return ""


def _run_sigmas(a: Units, b: Units) -> list[float]:
    return [float(np.std(u.run_scores(), ddof=1)) for u in (a, b) if u.trained and u.n_runs > 1]


def compare(a: Units, b: Units, higher: bool = True, names: tuple[str, str] = ("A", "B"),
            seed: int = 0, n_boot: int = N_BOOT) -> Comparison:
    """A against B on the volumes both have: volumes drawn jointly, runs of each separately."""
    if a.nested or b.nested:
        return _nested_compare(a, b, higher, names)
    common = [v for v in a.volumes if v in b.volumes]
    sign = 1 if higher else -1
    a, b = a.collapsed().restrict(common), b.collapsed().restrict(common)
    xa, xb = a.run_scores(), b.run_scores()
    effect = float(np.mean(xa) - np.mean(xb)) if common else math.nan
    out = Comparison(effect, sign * effect, n_volumes=len(common),
                     runs=(a.n_runs if a.trained else 0, b.n_runs if b.trained else 0))
    out.untestable = _untestable(a, b, names, len(common))
    if common:
        out.p_better = float(_prob_better(xa, xb, sign))
    sigmas = _run_sigmas(a, b)
    if out.untestable:
        # a trained method with one run: plan with the other's spread, for both if both train
        out.seeds_needed = _seeds_needed((sigmas * 2)[:a.trained + b.trained], 0.0, 1, effect) \
            if sigmas else ""
        return out
    rng = np.random.default_rng(seed)
    vol_draws = _volume_draws(len(common), rng, n_boot)
    pa, pb_runs = _per_run_replicates(a, vol_draws), _per_run_replicates(b, vol_draws)
    ra, rb = _replicates(a, pa, rng, n_boot), _replicates(b, pb_runs, rng, n_boot)
    pb = _prob_better(ra, rb, sign)
    out.p_better_ci95 = [float(np.percentile(pb, 2.5)), float(np.percentile(pb, 97.5))]
    comps = [(float(np.var(u.run_scores(), ddof=1)) / u.n_runs, u.n_runs - 1)
             for u in (a, b) if u.trained and u.n_runs > 1]
    var_vols = 0.0
    if len(common) > 1:   # the volume component: volumes redrawn, every run kept
        fixed = pa.mean(1) - pb_runs.mean(1)
        var_vols = float(fixed.var(ddof=1))
        comps.append((var_vols, len(common) - 1))
    out.se = max(math.sqrt(sum(v for v, _ in comps)), float(np.std(ra.mean(1) - rb.mean(1), ddof=1)))
    out.df = _satterthwaite(comps)
    if out.se == 0:     # nothing varies: the difference is exact
        out.p, out.ci95, out.mde = (0.0 if effect != 0 else 1.0), [effect, effect], 0.0
    else:
        z = abs(effect) / out.se
        out.p = float(2 * (stats.norm.sf(z) if math.isinf(out.df) else stats.t.sf(z, out.df)))
        h = _t(1 - ALPHA / 2, out.df) * out.se
        out.ci95 = [effect - h, effect + h]
        out.mde = (_t(1 - ALPHA / 2, out.df) + _t(POWER, out.df)) * out.se
    if sigmas:
        out.seeds_needed = _seeds_needed(sigmas, var_vols, len(common), effect)
    return out


def _patient_means(u: Units, volumes: list[str]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Per volume: the mean over its runs, and the runs (a nested or untrained row alike)."""
    runs = u.collapsed().restrict(volumes).volume_runs()
    return np.array([r.mean() if len(r) else np.nan for r in runs]), runs


def _nested_compare(a: Units, b: Units, higher: bool, names: tuple[str, str]) -> Comparison:
    """Leave-one-patient-out: the paired difference of the patients' seed means, a t-test over
    patients (df V-1): each patient mean carries its seeds' noise. P(A better) averages the
    pairs of runs within each patient."""
    sign = 1 if higher else -1
    common = [v for v in a.volumes if v in b.volumes]
    ma, ra = _patient_means(a, common)
    mb, rb = _patient_means(b, common)
    ok = np.isfinite(ma) & np.isfinite(mb)
    d = (ma - mb)[ok]
    effect = float(d.mean()) if len(d) else math.nan
    out = Comparison(effect, sign * effect, n_volumes=int(ok.sum()),
                     runs=(a.n_runs if a.trained else 0, b.n_runs if b.trained else 0))
    if len(d):
        out.p_better = float(np.mean([_prob_better(x, y, sign)
                                      for x, y, keep in zip(ra, rb, ok) if keep]))
    if len(d) < 2:
        out.untestable = "leave-one-patient-out needs at least 2 held-out patients in common"
        return out
    out.df = float(len(d) - 1)
    out.se = float(np.std(d, ddof=1)) / math.sqrt(len(d))
    if out.se == 0:
        out.p, out.ci95, out.mde = (0.0 if effect != 0 else 1.0), [effect, effect], 0.0
        return out
    out.p = float(2 * stats.t.sf(abs(effect) / out.se, out.df))
    h = _t(1 - ALPHA / 2, out.df) * out.se
    out.ci95 = [effect - h, effect + h]
    out.mde = (_t(1 - ALPHA / 2, out.df) + _t(POWER, out.df)) * out.se
    return out


# ---- verdicts ---------------------------------------------------------------------------------
VERDICTS = ("holds", "reversed", "no detectable difference", "untestable")


def verdict(c: Comparison, p_adjusted: float | None, alpha: float = ALPHA) -> str:
    """One of VERDICTS, for the claim "A is better than B" (c.better > 0 means it is)."""
    if c.untestable or p_adjusted is None or not np.isfinite(p_adjusted):
        return "untestable"
    if p_adjusted < alpha:
        return "holds" if c.better > 0 else "reversed"
    return "no detectable difference"


def _runs_text(c: Comparison) -> str:
    return " vs ".join(f"{r} runs" if r else "no training" for r in c.runs)


def detail(c: Comparison, verdict_word: str, digits: int = 2) -> str:
    """The reason behind a verdict, in a few words: what was missing and what would be needed,
    or the smallest difference this design could detect (before Holm's correction)."""
    scope = " 1 volume: does not generalise across patients." if c.n_volumes == 1 else ""
    have = max(c.runs)
    need = (f" Resolving {abs(c.effect):.{digits}f} (p < {ALPHA} before Holm, power {POWER}) "
            f"needs {c.seeds_needed} seeds per trained method." if c.seeds_needed and
            not (c.seeds_needed.isdigit() and int(c.seeds_needed) <= have) else "")
    if verdict_word == "untestable":
        return f"{c.untestable}.{need}{scope}".strip()
    if verdict_word == "no detectable difference":
        holm_only = (f" p = {c.p:.2g} before Holm's correction over the table's tests, "
                     f"not after it." if c.p is not None and c.p < ALPHA else "")
        return (f"MDE {c.mde:.{digits}f} with {_runs_text(c)} on {c.n_volumes} volume"
                f"{'s' if c.n_volumes > 1 else ''}.{holm_only}{need}{scope}").strip()
    return scope.strip()
