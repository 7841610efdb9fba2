"""Leaderboard tables built from run folders only.

Per dataset and protocol (rows made under different protocols are never put in one table):
- quality: mean ± std and the 95 % bootstrap CI of each metric, its rank, and a Wilcoxon
  signed-rank test of each method against the best one on the same images, Holm-corrected for
  the number of methods compared;
- cost: parameters, FLOPs, time per epoch, samples/s, ms per slice, peak memory;
- provenance: commit, device, precision, profile, seed, protocol, status.

Rows: runs that differ only in their seed form one row (mean ± sd across seeds, per-image
values pooled); runs that differ in any other config key are separate rows whose labels name the
keys. A run repeated with the same config and seed counts once (the newest), and the provenance
table lists the older one as superseded: no run folder is hidden.

Each table comes as a frame of display strings plus a same-shaped mask of the best cells, so
Markdown, LaTeX and HTML renderers (publish.py) mark the best value the same way.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .config import flatten
from .metrics import METRICS, bootstrap_summary, holm, paired_wilcoxon
from .results import finished_runs

def ranked_titles() -> dict[str, str]:
    """The ranked quality columns, from the metric registry as it is now."""
    return {name: m.title for name, m in METRICS.items() if m.ranked}


SIGNIFICANCE = 0.05
WORSE_MARK = "†"


def protocol_key(protocol: dict) -> str:
    return hashlib.sha1(json.dumps(protocol, sort_keys=True).encode()).hexdigest()[:8]


def _row_config(rec: dict) -> dict:
    """What makes runs one row: their whole config except the seed."""
    return {k: v for k, v in flatten(rec["config"]).items() if k != "seed"}


def _differing(configs: list[dict]) -> list[str]:
    keys = sorted(set().union(*configs))
    return [k for k in keys if len({json.dumps(c.get(k), sort_keys=True) for c in configs}) > 1]


def _merge_seeds(members: list[dict], label: str) -> dict:
    """One row from the runs of one config: per seed the newest run, the others superseded."""
    by_seed: dict = {}
    for rec in members:                        # oldest first: the newest run of a seed wins
        old = by_seed.get(rec["manifest"].get("seed"))
        if old is not None:
            rec.setdefault("supersedes", []).extend([old, *old.get("supersedes", [])])
        by_seed[rec["manifest"].get("seed")] = rec
    runs = sorted(by_seed.values(), key=lambda r: str(r["manifest"].get("seed")))
    newest = max(runs, key=lambda r: r["dir"].name)
    row = dict(newest, manifest={**newest["manifest"], "label": label}, seed_runs=runs)
    if len(runs) > 1:
        row["summary"] = _pooled_summary(runs, newest["summary"])
        complete = [r for r in runs if r["metrics"] is not None]
        if complete:   # per-image means over seeds: what the paired tests compare
            row["metrics"] = pd.concat([r["metrics"] for r in complete]).groupby(level=0).mean(
                numeric_only=True)
    return row


def _pooled_summary(runs: list[dict], base: dict) -> dict:
    """Across seeds: mean and sd of the per-seed means; n and the CI from the per-image values
    of all seeds pooled (a cluster bootstrap over volumes, or over images, since one image seen
    under several seeds is one observation's worth of independence)."""
    frames = [r["all_metrics"] for r in runs if r["all_metrics"] is not None]
    out = dict(base)
    for metric in METRICS:
        means = [r["summary"].get(metric, {}).get("mean") for r in runs]
        means = [m for m in means if m is not None]
        if not means or not frames:
            continue
        pooled = pd.concat(frames)
        clusters = pooled["volume"] if pooled["volume"].notna().all() else pooled["image"]
        stat = bootstrap_summary(pooled[metric].tolist(), 0, clusters.astype(str).tolist())
        stat.update(mean=float(np.mean(means)),
                    std=float(np.std(means, ddof=1)) if len(means) > 1 else 0.0,
                    n_seeds=len(means), spread="seeds")
        out[metric] = stat
    return out


def load_runs(paths: list[Path]) -> list[dict]:
    """Leaderboard rows from the finished run folders under `paths` (results roots, run folders
    or anything between). Runs of one (dataset, label, profile, protocol) and one config but for
    the seed form one row; other config differences make separate rows, labelled by them."""
    families: dict[tuple, list[dict]] = {}
    for rec in finished_runs(paths):                       # oldest first
        m = rec["manifest"]
        key = (m["dataset"], m["label"], m["profile"], protocol_key(m.get("protocol", {})))
        families.setdefault(key, []).append(rec)
    rows = []
    for (_, label, _, _), members in families.items():
        by_config: dict[str, list[dict]] = {}
        for rec in members:
            by_config.setdefault(json.dumps(_row_config(rec), sort_keys=True, default=str),
                                 []).append(rec)
        configs = [_row_config(group[0]) for group in by_config.values()]
        differ = _differing(configs) if len(configs) > 1 else []
        for cfg, group in zip(configs, by_config.values()):
            tag = ", ".join(f"{k}={json.dumps(cfg.get(k))}" for k in differ)
            rows.append(_merge_seeds(group, f"{label} [{tag}]" if tag else label))
    return rows


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
