"""Leaderboard tables built from run folders only.

Per dataset and protocol (rows made under different protocols are never put in one table):
- quality: mean ± std and the 95 % bootstrap CI of each metric, its rank, and a Wilcoxon
  signed-rank test of each method against the best one on the same images, Holm-corrected for
  the number of methods compared;
- cost: parameters, FLOPs, time per epoch, samples/s, ms per slice, peak memory;
- provenance: commit, device, precision, profile, seed, protocol, status.

Rows come from rows.py (seeds pooled, other config differences labelled, nothing hidden).

Each table comes as a frame of display strings plus a same-shaped mask of the best cells, so
Markdown, LaTeX and HTML renderers (publish.py) mark the best value the same way.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .metrics import METRICS, holm, paired_wilcoxon
from .rows import protocol_key

def ranked_titles() -> dict[str, str]:
    """The ranked quality columns, from the metric registry as it is now."""
    return {name: m.title for name, m in METRICS.items() if m.ranked}


SIGNIFICANCE = 0.05
WORSE_MARK = "†"


@dataclass
class Table:
    """Display strings, the cells holding the best value, and the numbers behind them."""
    cells: pd.DataFrame
    best: pd.DataFrame
    numbers: pd.DataFrame = field(default_factory=pd.DataFrame)


@dataclass
class Group:
    dataset: str
    key: str
    protocol: dict
    simulated: bool
    runs: list[dict]
    quality: Table
    cost: Table
    provenance: Table

    @property
    def title(self) -> str:
        return self.dataset + (" (SIMULATED)" if self.simulated else "")

    @property
    def stem(self) -> str:
        return f"{self.dataset}-{self.key}"


# -------------------------------------------------------------------------------------------
# quality
# -------------------------------------------------------------------------------------------
def _metric_stats(recs: list[dict], metric: str) -> pd.DataFrame:
    """One row per run: mean/std/n/CI from summary.json, rank and paired test vs the best."""
    rows = []
    for rec in recs:
        s = rec["summary"].get(metric) or {}
        ci = s.get("ci95") or [None, None]
        rows.append({"label": rec["manifest"]["label"], "metric": metric, "mean": s.get("mean"),
                     "std": s.get("std"), "n": s.get("n", 0), "ci_low": ci[0], "ci_high": ci[1],
                     "n_seeds": s.get("n_seeds", 1), "spread": s.get("spread", "images")})
    df = pd.DataFrame(rows)
    df["mean"] = pd.to_numeric(df["mean"])
    higher = METRICS[metric].direction == "higher"
    df["rank"] = df["mean"].rank(ascending=not higher, method="min")
    df["p_vs_best"], df["best"] = np.nan, False
    if df["mean"].notna().any():
        best_i = int(df["mean"].idxmax() if higher else df["mean"].idxmin())
        df.loc[df["mean"] == df.loc[best_i, "mean"], "best"] = True
        ref = recs[best_i]["metrics"]
        for i, rec in enumerate(recs):
            if i != best_i and pd.notna(df.loc[i, "mean"]) and ref is not None and rec["metrics"] is not None:
                df.loc[i, "p_vs_best"] = paired_wilcoxon(ref.get(metric), rec["metrics"].get(metric))
        # one test per method against the best: Holm's correction for their number
        df["p_raw_vs_best"] = df["p_vs_best"]
        df["p_vs_best"] = holm(df["p_vs_best"].tolist())
    return df


def _cell(row, digits: int) -> str:
    if pd.isna(row["mean"]):
        return "n/a"
    text = f"{row['mean']:.{digits}f} ± {row['std']:.{digits}f}"   # sd over seeds if n_seeds > 1
    if pd.notna(row["ci_low"]):
        text += f" [{row['ci_low']:.{digits}f}, {row['ci_high']:.{digits}f}]"
    text += f" #{int(row['rank'])}"
    if pd.notna(row["p_vs_best"]) and row["p_vs_best"] < SIGNIFICANCE:
        text += f" {WORSE_MARK}"
    return text


def _notes(rec: dict) -> str:
    m = rec["manifest"]
    notes = [n for n in m.get("notes", []) if not n.startswith("LPIPS")]
    if m.get("simulated"):
        notes.insert(0, "SIMULATED data")
    if m.get("status") == "failed":
        last = m.get("last_checkpoint")
        notes.insert(0, f"FAILED: {m.get('reason', '?')}"
                        + (f" (last good checkpoint: {last})" if last else ""))
    return "; ".join(notes)


def _fmt(stat: dict | None, digits: int) -> str:
    if not stat or stat.get("mean") is None:
        return "n/a"
    return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"


def _other_sets(summary: dict) -> str:
    """Secondary evaluation sets in a few words, e.g. the true cross-modality pairs of a
    simulated specimen, or the LR-consistency PSNR of LR-only clinical slices."""
    parts = []
    for group, stats in (summary.get("groups") or {}).items():
        vals = [f"{m.short} {_fmt(stats.get(k), m.digits)}"
                for k, m in METRICS.items() if m.other_sets and stats.get(k)]
        parts.append(f"{group}: " + ", ".join(vals))
    return "; ".join(parts)


def quality_table(recs: list[dict]) -> Table:
    titles = ranked_titles()
    stats = {m: _metric_stats(recs, m) for m in titles}
    cells, best = [], []
    for i, rec in enumerate(recs):
        s = rec["summary"]
        row, mark = {"Method": rec["manifest"]["label"], "Profile": rec["manifest"]["profile"]}, {}
        for metric, title in titles.items():
            st = stats[metric].iloc[i]
            row[title] = _cell(st, METRICS[metric].digits)
            mark[title] = bool(st["best"])
        if s.get("lpips_note") and pd.isna(stats["lpips"].iloc[i]["mean"]):
            row["LPIPS"] = s["lpips_note"]
        row["n"] = int(stats["psnr"].iloc[i]["n"])
        row["Seeds"] = int(stats["psnr"].iloc[i]["n_seeds"])
        trend = s.get("training")
        row["G loss 1st→last epoch"] = (f"{trend['total_g_first_epoch']:.3f} → "
                                        f"{trend['total_g_last_epoch']:.3f}") if trend else "-"
        row["Other evaluation sets"] = _other_sets(s)
        row["Notes"] = _notes(rec)
        cells.append(row)
        best.append(mark)
    cells = pd.DataFrame(cells)
    best = pd.DataFrame(best).reindex(columns=cells.columns, fill_value=False)
    if not cells["Other evaluation sets"].any():
        cells, best = cells.drop(columns="Other evaluation sets"), best.drop(columns="Other evaluation sets")
    order = stats["psnr"]["mean"].fillna(-math.inf).sort_values(ascending=False, kind="stable").index
    numbers = pd.concat(stats.values(), ignore_index=True)
    return Table(cells.loc[order].reset_index(drop=True), best.loc[order].reset_index(drop=True),
                 numbers)


# -------------------------------------------------------------------------------------------
# cost and provenance
# -------------------------------------------------------------------------------------------
def _count(n) -> str:
    return "n/a" if n is None else f"{n:,}"


COST_NUMBERS = {  # display title -> (cost.json key, format, lower is better)
    "s / epoch": ("s_per_epoch", "{:.1f}", True),
    "samples / s": ("samples_per_s", "{:.1f}", False),
    "ms / slice": ("ms_per_slice", "{:.1f}", True),
    "Peak memory (MiB)": ("peak_memory_mib", "{:.0f}", True),
}


def cost_table(recs: list[dict]) -> Table:
    rows, numbers = [], []
    for rec in recs:
        c, m = rec["cost"], rec["manifest"]
        flops = c.get("flops_per_lr_input")
        shape = "x".join(str(v) for v in c.get("flops_input_shape", [])[2:])
        row = {"Method": m["label"], "Profile": m["profile"],
               "Params": _count(c.get("params_total")),
               "Params per network": ", ".join(f"{k} {v:,}" for k, v in c.get("params", {}).items()) or "-",
               # torch's flop counter counts a multiply and an add: MACs = FLOPs / 2, as SR papers report
               "GMACs / LR input": f"{flops / 2e9:.2f} ({shape})" if flops else "n/a (no network)"}
        for title, (key, fmt, _) in COST_NUMBERS.items():
            row[title] = fmt.format(c[key]) if c.get(key) else "-"
        row["Device"] = f"{m['provenance'].get('device_name', '?')} ({c.get('device', '?')})"
        row["Precision"] = m.get("precision", "?")
        rows.append(row)
        numbers.append({"label": m["label"], "params": c.get("params_total"), "flops": flops,
                        "macs": flops / 2 if flops else None,
                        **{key: c.get(key) for key, _, _ in COST_NUMBERS.values()}})
    cells, nums = pd.DataFrame(rows), pd.DataFrame(numbers)
    best = pd.DataFrame(False, index=cells.index, columns=cells.columns)
    for title, (key, _, lower) in COST_NUMBERS.items():
        col = pd.to_numeric(nums[key])
        if col.notna().any():
            best[title] = col == (col.min() if lower else col.max())
    return Table(cells, best, nums)


def _member_runs(rec: dict):
    """(run record, status shown) for every run folder behind a row, superseded ones too."""
    for run in rec.get("seed_runs", [rec]):
        yield run, run["manifest"].get("status")
        for old in run.get("supersedes", []):
            yield old, f"superseded by {run['dir'].name}"


def provenance_table(recs: list[dict]) -> Table:
    rows = []
    for row in recs:
        for rec, status in _member_runs(row):
            m, p = rec["manifest"], rec["manifest"].get("provenance", {})
            commit = (p.get("commit") or "?")[:10] + ("+dirty" if p.get("dirty") else "")
            rows.append(_provenance_row(row["manifest"]["label"], rec, m, p, commit, status))
    cells = pd.DataFrame(rows)
    return Table(cells, pd.DataFrame(False, index=cells.index, columns=cells.columns), cells)


def _provenance_row(label, rec, m, p, commit, status) -> dict:
    return {"Method": label, "Run": rec["dir"].name, "Status": status,
            "Commit": commit, "Device": p.get("device", "?"),
            "Precision": m.get("precision", "?"), "Profile": m["profile"],
            "Seed": m.get("seed"), "Protocol": protocol_key(m.get("protocol", {})),
            "Finished": m.get("finished", "?")}


def groups(recs: list[dict]) -> list[Group]:
    """Rows are only compared within one dataset and one protocol."""
    by_key: dict[tuple, list[dict]] = {}
    for rec in recs:
        m = rec["manifest"]
        by_key.setdefault((m["dataset"], protocol_key(m.get("protocol", {}))), []).append(rec)
    out = []
    for (dataset, key), members in sorted(by_key.items()):
        protocol = members[0]["manifest"].get("protocol", {})
        out.append(Group(dataset, key, protocol, any(r["manifest"].get("simulated") for r in members),
                         members, quality_table(members), cost_table(members),
                         provenance_table(members)))
    return out


def direction_sentence() -> str:
    return "; ".join(f"{m.title}: {m.direction} is better" for m in METRICS.values())
