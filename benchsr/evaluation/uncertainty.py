"""Uncertainty from the units the benchmark samples: training runs (seeds), then patients
(volumes), then slices in blocks. The facts are in the specs' statistics.md; rliable (Agarwal et
al. 2021) is the reference for the run-level bootstrap and the probability of improvement.

One model, per design (docs/leaderboard.md has it as a table). A row's per-image values become a
runs x units matrix of means, where the unit below the run is the volume (patient) or, with one
volume, the block of neighbouring slices (slabs, or evaluation blocks separated by gaps):
neighbouring slices of one CT are never independent draws.
- `cell`: the mean over runs of the mean over units. Its 95 % CI is never narrower than any of
  the design's t intervals: t(R-1) over the run scores (trained rows), t(L-1) over the unit
  means (L >= 2 units), and t on their combined standard error (Satterthwaite df), widened to a
  two-level bootstrap (units, then runs) where that is wider. A trained row with one run has no
  interval (its seed variance is unknown), nor has an untrained row on one block.
- Leave-one-patient-out rows (`Units.nested`: each run scored its one held-out patient): the
  cell is the mean over patients of each patient's seed mean; its CI resamples patients, then
  seeds within them, never narrower than t(V-1) over the patient means; comparisons pair the
  patient means (t over V-1 df).
- `compare`: the effect A - B on the units both have (paired on them), tested on the same parts:
  the runs of each trained side (Welch's df: R_A + R_B - 2 when their sds agree, toward R - 1
  of the noisier when they do not; R - 1 against an untrained row), the
  paired unit differences (df L - 1), and both combined. p, the CI at any level and the minimum
  detectable effect take the widest part, so a CI excludes 0 exactly when p is below its level.
  P(A better than B) over pairs of runs, with an interval only from 5 runs a side (a percentile
  bootstrap over 3 v 3 runs is degenerate). Planning: the MDE at 3, 5 and 10 seeds from the
  observed between-run sd (never power at the observed effect).
- `verdict`: holds / reversed / no detectable difference / reversed, not significant after
  Holm / untestable, from a Holm-adjusted p.

A method without trained weights (interpolation) has no run-to-run variance: its one run is
complete information about it. Images that name no volume count as one unnamed volume: one
cannot assume they come from different patients.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import special

ALPHA = 0.05
POWER = 0.8
N_BOOT = 2000
UNNAMED = "(unnamed volume)"
PLANNED_SEEDS = (3, 5, 10)
MIN_RUNS_FOR_P_BETTER_CI = 5      # below it, a percentile bootstrap of P(A better) is degenerate

_SLAB_SLICE = re.compile(r"^(.*slab.*)-z\d+$")        # a through-plane slab's thin slice
_SLICE_NUMBER = re.compile(r"(?:_z|slice)(\d+)$")      # an axial slice's number in its volume


@dataclass
class Units:
    """Per-run means of one metric for one row on one evaluation set, per unit: a volume, or,
    with one volume (`level` "blocks"), a block of neighbouring slices of it."""
    values: np.ndarray                 # (runs, units), NaN where a run lacks that unit
    columns: list[str]                 # the units' names
    trained: bool = True               # False: no trained weights, runs cannot differ
    slices: list[np.ndarray] = field(default_factory=list)   # per run, in image order
    level: str = "volumes"             # or "blocks" (of the one volume)
    n_images: int = 0                  # distinct images over the runs

    @property
    def n_runs(self) -> int:
        return self.values.shape[0]

    @property
    def n_units(self) -> int:
        return self.values.shape[1]

    @property
    def n_volumes(self) -> int:
        return self.n_units if self.level == "volumes" else 1

    def restrict(self, columns: list[str]) -> "Units":
        idx = [self.columns.index(c) for c in columns]
        return Units(self.values[:, idx], list(columns), self.trained, self.slices, self.level,
                     self.n_images)

    def collapsed(self) -> "Units":
        """An untrained row's runs are one run in expectation: keep their mean as one run (a
        repeated deterministic run must not look like seed replication)."""
        if self.trained or self.n_runs < 2:
            return self
        return Units(np.nanmean(self.values, 0, keepdims=True), self.columns, False,
                     self.slices[:1], self.level, self.n_images)

    def run_scores(self) -> np.ndarray:
        """Each run's score: the mean over units of its per-unit means."""
        return np.nanmean(self.values, axis=1)

    def unit_means(self) -> np.ndarray:
        """Each unit's mean over the runs that have it."""
        return np.nanmean(self.values, axis=0)

    @property
    def nested(self) -> bool:
        """Leave-one-patient-out: every (fold, seed) run scored one volume, its held-out
        patient, and the runs cover several volumes. Runs are then nested in volumes."""
        finite = np.isfinite(self.values)
        return (self.trained and self.level == "volumes" and self.n_units > 1
                and bool((finite.sum(1) == 1).all()))

    def volume_runs(self) -> list[np.ndarray]:
        """Nested design: each volume's run values (its seeds), in volume order."""
        return [self.values[np.isfinite(self.values[:, j]), j] for j in range(self.n_units)]


def blocks(frame: pd.DataFrame) -> pd.Series:
    """Each image's block of neighbouring slices within its volume: the dataset's `block` where
    it names one; else a through-plane slab (image `...slab...-zNN`); else a run of consecutive
    slice numbers (`_zNNN`, `sliceNN`: one skipped slice or more starts a new block). Images
    whose names give no slice number are one block: never assumed independent."""
    names = frame["image"].astype(str)
    given = frame["block"] if "block" in frame else pd.Series(None, index=frame.index)
    out = given.astype(object).where(given.notna(), names.str.extract(_SLAB_SLICE)[0])
    z = pd.to_numeric(names.str.extract(_SLICE_NUMBER)[0], errors="coerce")
    for _, idx in frame.groupby("volume", dropna=False).groups.items():
        todo = z[idx][out[idx].isna() & z[idx].notna()].sort_values()
        first = todo.groupby((todo.diff() != 1).cumsum()).transform("min")
        out[first.index] = "z" + first.astype(int).astype(str)
    return out.fillna("all").astype(str)


def _keyed(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with each image's volume named (UNNAMED where it names none) and its block
    keyed by its volume ("VOLUME#BLOCK")."""
    df = frame.copy() if "volume" in frame else frame.assign(volume=None)
    df["volume"] = df["volume"].astype(object).where(df["volume"].notna(), UNNAMED).astype(str)
    df["block"] = df["volume"] + "#" + blocks(df)
    return df


def _tidy(frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    """image, volume, block and the finite values of `metric`, in (volume, image) order."""
    df = _keyed(frame)[["image", "volume", "block", metric]]
    df = df[np.isfinite(pd.to_numeric(df[metric], errors="coerce").astype(float))]
    return df.astype({metric: float}).sort_values(["volume", "image"])


def units(frames: list[pd.DataFrame], metric: str, trained: bool = True) -> Units | None:
    """Units from one per-image frame per run (columns image, volume, optional block,
    `metric`); None when no run has a finite value."""
    parts = [df for df in (_tidy(f, metric) for f in frames) if not df.empty]
    if not parts:
        return None
    volumes = set().union(*(set(p["volume"]) for p in parts))
    key = "volume" if len(volumes) > 1 else "block"
    columns = sorted(set().union(*(set(p[key]) for p in parts)))
    values = np.array([p.groupby(key)[metric].mean().reindex(columns).to_numpy() for p in parts])
    return Units(values, columns, trained, [p[metric].to_numpy() for p in parts],
                 "volumes" if key == "volume" else "blocks",
                 len(set().union(*(set(p["image"]) for p in parts))))


def unit_keys(frame: pd.DataFrame) -> tuple[list[str], str]:
    """Each image's unit below the run, in order, and their level: its volume ("volumes"), or
    with one volume its block of neighbouring slices ("blocks")."""
    df = _keyed(frame)
    if df["volume"].nunique() > 1:
        return df["volume"].tolist(), "volumes"
    return df["block"].tolist(), "blocks"


# ---- the parts an interval stands on ----------------------------------------------------------
@dataclass
class Part:
    """One source of variation of an estimate: its standard error and degrees of freedom."""
    what: str
    se: float
    df: float


def _t(q: float, df: float) -> float:
    """The q quantile of Student's t (scipy.special's ufunc: 100 times faster than stats.t)."""
    return float(special.ndtri(q) if math.isinf(df) else special.stdtrit(df, q))


def _two_sided_p(z: float, df: float) -> float:
    return float(2 * (special.ndtr(-z) if math.isinf(df) else special.stdtr(df, -z)))


def _satterthwaite(parts: list[Part]) -> float:
    """Degrees of freedom of a sum of variance components."""
    total = sum(p.se ** 2 for p in parts)
    denom = sum(p.se ** 4 / p.df for p in parts if p.se > 0 and p.df > 0)
    return total ** 2 / denom if denom > 0 else math.inf


def _with_combined(parts: list[Part]) -> list[Part]:
    """The parts, and with two, their sum: each level's t floor alone misses the other's
    variance when both matter; the sum alone (Satterthwaite df) is too narrow with 3 runs."""
    if len(parts) < 2:
        return parts
    return [*parts, Part(" + ".join(p.what for p in parts),
                         math.sqrt(sum(p.se ** 2 for p in parts)), _satterthwaite(parts))]


def _sd(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    return float(np.std(x, ddof=1)) if len(x) > 1 else 0.0


def half_width(parts: list[Part], level: float = 1 - ALPHA) -> float:
    """The widest t half-width over the parts at a two-sided `level`."""
    return max((_t(1 - (1 - level) / 2, p.df) * p.se for p in parts), default=0.0)


def _p_value(effect: float, parts: list[Part]) -> float:
    """Two-sided p of the widest part: below a level exactly when the CI at it excludes 0."""
    return max(_two_sided_p(abs(effect) / p.se, p.df) if p.se > 0 else
               (0.0 if effect != 0 else 1.0) for p in parts)


def _unit_word(u: Units) -> str:
    n = u.n_units
    return f"volumes ({n})" if u.level == "volumes" else f"blocks ({n}) of 1 volume"


def _seeds_per_fold(u: Units) -> str:
    """Nested design: the seeds each held-out patient has, e.g. "3" or "2/3"."""
    return "/".join(map(str, sorted({len(r) for r in u.volume_runs()})))


def cell_parts(u: Units) -> list[Part]:
    """A (collapsed, not nested) row's parts: its run scores if it trains and has 2 runs or
    more, its unit means if it has 2 units or more, and their sum."""
    parts = []
    if u.trained and u.n_runs > 1:
        parts.append(Part("runs", _sd(u.run_scores()) / math.sqrt(u.n_runs), u.n_runs - 1))
    if u.n_units > 1:
        parts.append(Part(u.level, _sd(u.unit_means()) / math.sqrt(u.n_units), u.n_units - 1))
    return _with_combined(parts)


def no_interval(u: Units) -> str:
    """Why a (collapsed) row's cell has no interval; "" when it has one."""
    if u.trained and u.n_runs < 2:
        return "1 training run: its seed variance is unknown"
    if not u.trained and u.n_units < 2:
        return "no training and 1 block of 1 volume: nothing sampled to vary"
    return ""


def covers(u: Units) -> str:
    """What a row's CI stands on (its design), in words for the table."""
    if u.nested:
        return (f"held-out patients ({u.n_units}, one per fold) and seeds within them "
                f"({_seeds_per_fold(u)} per patient)")
    u = u.collapsed()
    why = no_interval(u)
    if why:
        return f"no interval: {why}"
    if not u.trained:
        return f"{_unit_word(u)}; no training"
    if u.n_units > 1:
        return f"runs ({u.n_runs}) × {_unit_word(u)}"
    return f"runs ({u.n_runs}); 1 volume, 1 block: conditional on these slices"


# ---- resampling -------------------------------------------------------------------------------
def _unit_draws(n_units: int, rng, n_boot: int) -> np.ndarray:
    if n_units < 2:
        return np.zeros((n_boot, n_units), dtype=int)
    return rng.integers(0, n_units, size=(n_boot, n_units))


def _run_draws(u: Units, rng, n_boot: int) -> np.ndarray:
    if u.n_runs < 2 or not u.trained:
        return np.tile(np.arange(u.n_runs), (n_boot, 1))
    return rng.integers(0, u.n_runs, size=(n_boot, u.n_runs))


def _replicates(u: Units, unit_draws: np.ndarray, rng, n_boot: int) -> np.ndarray:
    """(B, runs) run scores after drawing units (shared by the rows of one comparison), then
    runs within this row."""
    per_run = np.nanmean(u.values[:, unit_draws], axis=2).T
    return np.take_along_axis(per_run, _run_draws(u, rng, n_boot), axis=1)


# ---- one row ----------------------------------------------------------------------------------
def cell(u: Units, seed: int = 0, n_boot: int = N_BOOT) -> dict:
    """mean, between-run sd (None without 2 trained runs), 95 % CI (None, with `no_ci` saying
    why) and what it covers."""
    if u.nested:
        return _nested_cell(u, seed, n_boot)
    n_runs, u = u.n_runs, u.collapsed()
    x = u.run_scores()
    mean = float(np.mean(x))
    out = {"mean": mean, "sd_runs": _sd(x) if u.trained and u.n_runs > 1 else None,
           "n_seeds": n_runs if u.trained else 0, "n_volumes": u.n_volumes, "n_units": u.n_units,
           "n_images": u.n_images, "ci_covers": covers(u), "ci95": None, "no_ci": no_interval(u)}
    if out["no_ci"]:
        return out
    h = half_width(cell_parts(u))
    lo, hi = mean - h, mean + h
    if n_boot:
        rng = np.random.default_rng(seed)
        reps = _replicates(u, _unit_draws(u.n_units, rng, n_boot), rng, n_boot).mean(1)
        lo, hi = min(lo, float(np.percentile(reps, 2.5))), max(hi, float(np.percentile(reps, 97.5)))
    out["ci95"] = [lo, hi]
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
    mean = float(means.mean())
    h = half_width([Part("patients", _sd(means) / math.sqrt(len(runs)), len(runs) - 1)])
    lo, hi = mean - h, mean + h
    if n_boot:
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
        lo, hi = min(lo, float(np.percentile(reps, 2.5))), max(hi, float(np.percentile(reps, 97.5)))
    return {"mean": mean, "sd_runs": sd_runs, "n_seeds": u.n_runs, "n_volumes": u.n_volumes,
            "n_units": u.n_units, "n_images": u.n_images, "ci_covers": covers(u),
            "ci95": [lo, hi], "no_ci": "",
            "seeds_per_fold": _seeds_per_fold(u)}


# ---- two rows ---------------------------------------------------------------------------------
@dataclass
class Comparison:
    """A - B, oriented so that `better` > 0 means A is better on this metric."""
    effect: float                      # A - B in the metric's unit
    better: float                      # effect with the metric's direction: > 0 = A better
    parts: list[Part] = field(default_factory=list)   # what the test stands on
    p: float | None = None             # two-sided; None = untestable
    ci95: list[float] | None = None
    p_better: float | None = None      # P(A better than B) over pairs of runs
    p_better_ci95: list[float] | None = None
    p_better_note: str = ""            # why P(A better) has no interval
    mde: float | None = None           # smallest |effect| this test detects at ALPHA, POWER
    n_volumes: int = 0
    n_units: int = 0
    level: str = "volumes"
    runs: tuple[int, int] = (0, 0)     # training runs of A and B (0: no training)
    untestable: str = ""               # why, and what would be needed
    planning: dict = field(default_factory=dict)   # planned seeds -> MDE, from the seed sd
    sigma_run: float | None = None     # the pooled between-run sd the planning uses

    @property
    def widest(self) -> Part | None:
        """The decisive part: the widest 95 % half-width."""
        return max(self.parts, key=lambda p: _t(1 - ALPHA / 2, p.df) * p.se) if self.parts else None

    @property
    def df(self) -> float | None:
        return self.widest.df if self.parts else None

    @property
    def se(self) -> float | None:
        return self.widest.se if self.parts else None

    def ci(self, level: float) -> list[float] | None:
        """The effect's CI at a two-sided `level` (a Holm step's, say)."""
        if self.p is None:
            return None
        h = half_width(self.parts, level)
        return [self.effect - h, self.effect + h]

    def stands_on(self) -> str:
        """The parts in words, e.g. "runs (df 4), volumes (df 2), both (df 3.1)"."""
        return ", ".join(f"{p.what} (df {p.df:.3g})" for p in self.parts)


def _prob_better(xa: np.ndarray, xb: np.ndarray, sign: int) -> np.ndarray:
    """P(A better than B) over all pairs of runs (Mann-Whitney U / (R_A R_B)); the last axis
    holds the runs, leading axes are replicates."""
    diff = sign * (xa[..., :, None] - xb[..., None, :])
    return ((diff > 0) + 0.5 * (diff == 0)).mean(axis=(-1, -2))


def planned_mde(sigma_run: float, both_trained: bool, seeds=PLANNED_SEEDS) -> dict[int, float]:
    """Planning, never post-hoc power: the MDE (ALPHA two-sided before Holm, POWER) of the run
    component with R seeds per trained method, df 2R-2 (R-1 against an untrained row)."""
    out = {}
    for r in seeds:
        df = 2 * r - 2 if both_trained else r - 1
        out[r] = (_t(1 - ALPHA / 2, df) + _t(POWER, df)) * sigma_run * math.sqrt((2 if both_trained else 1) / r)
    return out


def _sigma_run(a: Units, b: Units) -> float | None:
    """The between-run sd pooled over the trained rows with 2 runs or more."""
    ss = [(_sd(u.run_scores()) ** 2 * (u.n_runs - 1), u.n_runs - 1)
          for u in (a, b) if u.trained and u.n_runs > 1]
    return math.sqrt(sum(s for s, _ in ss) / sum(d for _, d in ss)) if ss else None


def _untestable(a: Units, b: Units, names: tuple[str, str], n_units: int) -> str:
    for u, name in zip((a, b), names):
        if u.trained and u.n_runs < 2:
            return f"{name} has {u.n_runs} training run: needs at least 2 (3 to see its spread)"
        if u.trained and np.ptp(u.run_scores()) == 0:
            return (f"the {u.n_runs} runs of {name} score identically: its seed variance cannot "
                    f"be estimated (a method no seed changes declares `deterministic`)")
    if n_units < 1:
        return "nothing scored in common"
    if not (a.trained or b.trained) and n_units < 2:
        return "neither method trains and there is 1 block of 1 volume: needs at least 2 blocks"
    return ""


def compare_parts(a: Units, b: Units) -> list[Part]:
    """The parts of A - B on common units: the trained sides' runs (Welch df), the paired unit
    differences, and their sum."""
    # the run part's df is Welch's: R_A + R_B - 2 when the two seed sds agree, down to R - 1 of
    # the noisier side when they do not (a pooled df would overstate a 0.06 against a 0.57 sd)
    runs = [Part("runs", _sd(u.run_scores()) / math.sqrt(u.n_runs), u.n_runs - 1)
            for u in (a, b) if u.trained]
    parts = []
    if runs:
        se = math.sqrt(sum(p.se ** 2 for p in runs))
        parts.append(Part("runs", se, _satterthwaite(runs) if se > 0 else sum(p.df for p in runs)))
    if a.n_units > 1:
        d = a.unit_means() - b.unit_means()
        parts.append(Part(a.level, _sd(d) / math.sqrt(len(d)), len(d) - 1))
    return _with_combined(parts)


def compare(a: Units, b: Units, higher: bool = True, names: tuple[str, str] = ("A", "B"),
            seed: int = 0, n_boot: int = N_BOOT) -> Comparison:
    """A against B on the units both have: paired on them, runs of each side apart."""
    if a.nested or b.nested:
        return _nested_compare(a, b, higher, names)
    common = [v for v in a.columns if v in b.columns]
    sign = 1 if higher else -1
    a, b = a.collapsed().restrict(common), b.collapsed().restrict(common)
    xa, xb = a.run_scores(), b.run_scores()
    effect = float(np.mean(xa) - np.mean(xb)) if common else math.nan
    out = Comparison(effect, sign * effect, n_volumes=a.n_volumes if common else 0,
                     n_units=len(common), level=a.level,
                     runs=(a.n_runs if a.trained else 0, b.n_runs if b.trained else 0))
    out.untestable = _untestable(a, b, names, len(common))
    out.sigma_run = _sigma_run(a, b)
    if out.sigma_run:
        out.planning = planned_mde(out.sigma_run, a.trained and b.trained)
    if common:
        out.p_better = float(_prob_better(xa, xb, sign))
        _p_better_interval(out, a, b, sign, seed, n_boot)
    if out.untestable:
        return out
    out.parts = compare_parts(a, b)
    _finish(out)
    return out


def _finish(out: Comparison) -> None:
    out.p = _p_value(out.effect, out.parts)
    out.ci95 = out.ci(1 - ALPHA)
    out.mde = max((_t(1 - ALPHA / 2, p.df) + _t(POWER, p.df)) * p.se for p in out.parts)


def _p_better_interval(out: Comparison, a: Units, b: Units, sign: int, seed: int,
                       n_boot: int) -> None:
    sizes = [u.n_runs for u in (a, b) if u.trained]
    if not sizes or min(sizes) < MIN_RUNS_FOR_P_BETTER_CI or not n_boot:
        out.p_better_note = ("no interval at " + " v ".join(
            str(u.n_runs) if u.trained else "untrained" for u in (a, b)) + " runs")
        return
    rng = np.random.default_rng(seed)
    draws = _unit_draws(a.n_units, rng, n_boot)
    pb = _prob_better(_replicates(a, draws, rng, n_boot), _replicates(b, draws, rng, n_boot), sign)
    out.p_better_ci95 = [float(np.percentile(pb, 2.5)), float(np.percentile(pb, 97.5))]


def _patient_means(u: Units, volumes: list[str]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Per volume: the mean over its runs, and the runs (a nested or untrained row alike)."""
    runs = u.collapsed().restrict(volumes).volume_runs()
    return np.array([r.mean() if len(r) else np.nan for r in runs]), runs


def _nested_compare(a: Units, b: Units, higher: bool, names: tuple[str, str]) -> Comparison:
    """Leave-one-patient-out: the paired difference of the patients' seed means, a t-test over
    patients (df V-1): each patient mean carries its seeds' noise. P(A better) averages the
    pairs of runs within each patient."""
    sign = 1 if higher else -1
    common = [v for v in a.columns if v in b.columns]
    ma, ra = _patient_means(a, common)
    mb, rb = _patient_means(b, common)
    ok = np.isfinite(ma) & np.isfinite(mb)
    d = (ma - mb)[ok]
    effect = float(d.mean()) if len(d) else math.nan
    out = Comparison(effect, sign * effect, n_volumes=int(ok.sum()), n_units=int(ok.sum()),
                     runs=(a.n_runs if a.trained else 0, b.n_runs if b.trained else 0),
                     p_better_note="no interval: runs nested in patients")
    if len(d):
        out.p_better = float(np.mean([_prob_better(x, y, sign)
                                      for x, y, keep in zip(ra, rb, ok) if keep]))
    if len(d) < 2:
        out.untestable = "leave-one-patient-out needs at least 2 held-out patients in common"
        return out
    out.parts = [Part("patients", _sd(d) / math.sqrt(len(d)), float(len(d) - 1))]
    _finish(out)
    return out


# ---- verdicts ---------------------------------------------------------------------------------
REVERSED_NS = "reversed, not significant after Holm"
VERDICTS = ("holds", "reversed", "no detectable difference", REVERSED_NS, "untestable")


def verdict(c: Comparison, p_adjusted: float | None, alpha: float = ALPHA) -> str:
    """One of VERDICTS, for the claim "A is better than B" (c.better > 0 means it is)."""
    if c.untestable or p_adjusted is None or not np.isfinite(p_adjusted):
        return "untestable"
    if p_adjusted < alpha:
        return "holds" if c.better > 0 else "reversed"
    return REVERSED_NS if c.better < 0 else "no detectable difference"


def holm_levels(p_values: list) -> list[float | None]:
    """Each test's confidence level at its step of Holm's sequence: 1 - ALPHA / (m - k) for
    the k-th smallest of m p-values (None where a test has no p)."""
    ok = sorted((p, i) for i, p in enumerate(p_values) if p is not None and np.isfinite(p))
    out: list[float | None] = [None] * len(p_values)
    for k, (_, i) in enumerate(ok):
        out[i] = 1 - ALPHA / (len(ok) - k)
    return out


def _runs_text(c: Comparison) -> str:
    return " vs ".join(f"{r} runs" if r else "no training" for r in c.runs)


def planning_text(c: Comparison, digits: int = 2) -> str:
    """The planned designs' MDEs, labelled as planning."""
    if not c.planning:
        return ""
    both = all(c.runs)
    mdes = " / ".join(f"{v:.{digits}f}" for v in c.planning.values())
    return (f"Planning: MDE {mdes} at {' / '.join(map(str, c.planning))} seeds per trained "
            f"method (seed sd {c.sigma_run:.{digits}f}, df {'2R−2' if both else 'R−1'}, "
            f"α {ALPHA} before Holm, power {POWER}; run component only).")


def scope(c: Comparison) -> str:
    if c.level == "blocks":
        return f"1 volume ({c.n_units} blocks of slices): does not generalise across patients."
    return "1 volume: does not generalise across patients." if c.n_volumes == 1 else ""


def detail(c: Comparison, verdict_word: str, digits: int = 2) -> str:
    """The reason behind a verdict, in a few words: what was missing, or the smallest
    difference this test could detect and what planned designs would."""
    plan = planning_text(c, digits)
    if verdict_word == "untestable":
        return " ".join(s for s in (f"{c.untestable}.", plan, scope(c)) if s)
    if verdict_word in ("no detectable difference", REVERSED_NS):
        holm_only = (f"p = {c.p:.2g} before Holm's correction over the table's tests, "
                     f"not after it." if c.p is not None and c.p < ALPHA else "")
        units = f"{c.n_units} {c.level if c.n_units > 1 else c.level[:-1]}"
        return " ".join(s for s in (
            f"MDE {c.mde:.{digits}f} with {_runs_text(c)} on {units} (t on {c.stands_on()}).",
            holm_only, plan, scope(c)) if s)
    return scope(c)
