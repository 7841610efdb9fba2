"""Leaderboard tables built from run folders only.

Per dataset and protocol (rows made under different protocols are never put in one table):
- quality: mean ± sd and the 95 % CI of each metric over seeds and volumes (uncertainty.py), its
  rank, and each row's comparison with the best one by the same units, Holm-corrected over the
  group's tests (a row worse than the best is marked †);
- cost: parameters, FLOPs, time per epoch, samples/s, ms per slice, peak memory;
- provenance: commit, device, precision, profile, seed, protocol, status.

Rows come from rows.py (seeds pooled, other config differences labelled, nothing hidden).

Each table comes as a frame of display strings plus a same-shaped mask of the best cells, so
Markdown, LaTeX and HTML renderers (publish.py) mark the best value the same way.
"""
from __future__ import annotations

import math
from pathlib import Path
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from benchsr.evaluation import uncertainty
from benchsr.evaluation.metrics import METRICS, holm
from benchsr.report.rows import protocol_key, row_units
from benchsr.config import PROFILES
from benchsr.results import checkpoint_kind, run_id

def ranked_titles(table: str = "paper", units: str = "HU") -> dict[str, str]:
    """The ranked columns of one table ("paper" or "clinical"), from the metric registry as it
    is now; errors in the HR domain's units name them (HU, or µCT scanner units)."""
    return {name: (m.title.replace("(HU)", f"({units})") if m.unit == "hr" else m.title)
            for name, m in METRICS.items() if m.ranked and m.table == table}


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
    caveats: list[str] = field(default_factory=list)   # said in the group's header
    clinical: Table | None = None                      # the clinical measures' table
    clinical_absent: list[str] = field(default_factory=list)   # measures no row has here
    checkpoint: str = "last"                           # results.checkpoint_kind of its runs
    profile: str = ""                                  # a profile's rows are never ranked with another's
    variants: bool = False                             # config variants (a paper table's ablations)

    @property
    def title(self) -> str:
        best = " (BEST-ON-VALIDATION checkpoints)" if self.checkpoint == "best" else ""
        through = (f" through-plane x{self.protocol.get('z_factor')} along z"
                   if self.protocol.get("plane") == "through" else "")
        # a design whose runs differ by more than the seed names itself (leave one patient out)
        design = (", " + str(self.protocol.get("split", "by " + str(self.protocol["replicate_keys"])))
                  .split(":")[0] if self.protocol.get("replicate_keys") else "")
        return (self.dataset + through + (" (SIMULATED)" if self.simulated else "")
                + self.own_data + design + (f", {self.profile}" if self.profile else "")
                + (", config variants" if self.variants else "") + best)

    @property
    def own_data(self) -> str:
        """' on your data (FOLDER)' for runs on a user's --data-dir, else ''."""
        folders = sorted({Path(d).name for r in self.runs
                          if (d := (r["manifest"].get("data_metadata") or {}).get("data_dir"))})
        return f" on your data ({', '.join(folders)})" if folders else ""

    @property
    def evaluation(self) -> str:
        """What the group was scored on ("3 volumes (A, B, C)."), from its caveats; '' if unsaid."""
        return next((c.split(":", 1)[1].strip() for c in self.caveats if c.startswith("Evaluation:")), "")

    @property
    def stem(self) -> str:
        return (f"{self.dataset}-{self.key}" + (f"-{self.profile}" if self.profile else "")
                + ("-variants" if self.variants else "") + ("-best-val" if self.checkpoint == "best" else ""))


# -------------------------------------------------------------------------------------------
# quality
# -------------------------------------------------------------------------------------------
def _metric_stats(recs: list[dict], metric: str) -> pd.DataFrame:
    """One row per leaderboard row: the cell's numbers (rows.py, from per-image values), its
    rank, and its comparison with the best row (uncertainty.compare: runs and volumes)."""
    rows = []
    for rec in recs:
        s = rec["summary"].get(metric) or {}
        ci = s.get("ci95") or [None, None]
        rows.append({"label": rec["manifest"]["label"], "metric": metric, "mean": s.get("mean"),
                     "std": s.get("std"), "n": s.get("n", 0), "ci_low": ci[0], "ci_high": ci[1],
                     "n_seeds": s.get("n_seeds", 1), "n_volumes": s.get("n_volumes"),
                     "failed_seeds": s.get("failed_seeds", 0), "no_ci": s.get("no_ci", ""),
                     "seeds_per_fold": s.get("seeds_per_fold", ""),
                     "spread": s.get("spread", "images"), "ci_covers": s.get("ci_covers", "")})
    df = pd.DataFrame(rows)
    df["mean"] = pd.to_numeric(df["mean"])
    df["_comparison"] = pd.Series([None] * len(df), dtype=object)
    higher = METRICS[metric].direction == "higher"
    df["rank"] = df["mean"].rank(ascending=not higher, method="min")
    df["best"] = False
    for col in COMPARISON_NUMBERS:
        df[col] = np.nan
    df["verdict_vs_best"] = df["detail_vs_best"] = df["p_better_note"] = df["stands_on"] = ""
    if df["mean"].notna().any():
        best_i = int(df["mean"].idxmax() if higher else df["mean"].idxmin())
        df.loc[df["mean"] == df.loc[best_i, "mean"], "best"] = True
        ref = row_units(recs[best_i], metric)
        for i, rec in enumerate(recs):
            u = row_units(rec, metric)
            if i == best_i or pd.isna(df.loc[i, "mean"]) or ref is None or u is None:
                continue
            c = uncertainty.compare(ref, u, higher, ("the best row", rec["manifest"]["label"]))
            # oriented as this row minus the best: negative = worse on a higher-is-better metric
            pb = c.p_better_ci95 or [np.nan, np.nan]
            df.loc[i, ["p_raw_vs_best", "effect_vs_best", "p_better_than_best",
                       "p_better_low", "p_better_high", "mde_vs_best"]] = [
                np.nan if c.p is None else c.p, -c.effect,
                np.nan if c.p_better is None else 1 - c.p_better, 1 - pb[1], 1 - pb[0],
                np.nan if c.mde is None else c.mde]
            df.at[i, "p_better_note"] = c.p_better_note
            df.at[i, "stands_on"] = c.stands_on()
            df.at[i, "_comparison"] = c
    return df


COMPARISON_NUMBERS = ("p_raw_vs_best", "effect_vs_best", "ci_low_vs_best", "ci_high_vs_best",
                      "ci_level_vs_best", "p_better_than_best", "p_better_low", "p_better_high",
                      "mde_vs_best")


def _adjust_group(stats: dict[str, pd.DataFrame]) -> None:
    """Holm over every test of the group (each row against the best, on each ranked metric),
    then each test's verdict (worse (†), no detectable difference, or untestable) and its CI at
    its Holm step's level, so that the CI and the verdict stand on the same footing."""
    tests = [(m, i) for m, df in stats.items() for i in df.index
             if isinstance(df.at[i, "_comparison"], uncertainty.Comparison)]
    raw = [stats[m].at[i, "p_raw_vs_best"] for m, i in tests]
    adjusted, levels = holm(raw), uncertainty.holm_levels([None if pd.isna(p) else p for p in raw])
    for df in stats.values():
        df["p_vs_best"] = np.nan
        df["planning"] = ""
    for (m, i), p, level in zip(tests, adjusted, levels):
        df, c = stats[m], stats[m].at[i, "_comparison"]
        word = uncertainty.verdict(c, None if pd.isna(p) else p)
        df.at[i, "p_vs_best"] = p
        df.at[i, "verdict_vs_best"] = {"holds": "worse than the best", "reversed": "better than the best"
                                       }.get(word, word)
        df.at[i, "detail_vs_best"] = uncertainty.detail(c, word, METRICS[m].digits)
        df.at[i, "planning"] = uncertainty.planning_text(c, METRICS[m].digits)
        if level is not None:     # this row minus the best: the CI of -(best - row)
            lo, hi = c.ci(level)
            df.loc[i, ["ci_low_vs_best", "ci_high_vs_best", "ci_level_vs_best"]] = [-hi, -lo, level]
    for metric, df in stats.items():
        stats[metric] = df.drop(columns="_comparison")


def tests_table(table: Table, titles: dict[str, str]) -> pd.DataFrame:
    """Every test of a group against its best row, in words: the effect with its CI at the
    test's Holm step level, P(better than the best), adjusted p, verdict, MDE and planning."""
    df = table.numbers
    if df.empty or "verdict_vs_best" not in df:
        return pd.DataFrame()
    df = df[df["verdict_vs_best"] != ""]
    rows = []
    for _, r in df.iterrows():
        d = METRICS[r["metric"]].digits
        ci = ("" if pd.isna(r["ci_low_vs_best"]) else
              f" [{r['ci_low_vs_best']:.{d}f}, {r['ci_high_vs_best']:.{d}f}] at {100 * r['ci_level_vs_best']:.2f} %")
        pb = ("n/a" if pd.isna(r["p_better_than_best"]) else f"{r['p_better_than_best']:.2f}"
              + (f" [{r['p_better_low']:.2f}, {r['p_better_high']:.2f}]" if pd.notna(r["p_better_low"])
                 else f" ({r['p_better_note']})" if r["p_better_note"] else ""))
        rows.append({"Metric": titles.get(r["metric"], r["metric"]), "Method": r["label"],
                     "Effect vs best [CI at its Holm level]": f"{r['effect_vs_best']:+.{d}f}{ci}",
                     "P(better than the best)": pb,
                     "p (Holm)": "n/a" if pd.isna(r["p_vs_best"]) else f"{r['p_vs_best']:.3g}",
                     "Verdict": r["verdict_vs_best"],
                     "MDE": "n/a" if pd.isna(r["mde_vs_best"]) else f"{r['mde_vs_best']:.{d}f}",
                     "Why": r["detail_vs_best"]})
    return pd.DataFrame(rows)


def seeds_text(st) -> str:
    """A row's runs in words: "no training", "3", "2 of 3 (1 failed)", "3 per fold (9 runs)"."""
    failed = int(st.get("failed_seeds", 0) or 0)
    n = int(st.get("n_seeds", 0) or 0)
    if n == 0 and not failed:
        return "no training"
    per = st.get("seeds_per_fold")
    if isinstance(per, str) and per:               # leave one patient out: seeds within folds
        return f"{per} per fold ({n} runs)" + (f", {failed} failed" if failed else "")
    return f"{n} of {n + failed} ({failed} failed)" if failed else str(n)


def _cell(row, digits: int) -> str:
    if pd.isna(row["mean"]):
        return "n/a"
    text = f"{row['mean']:.{digits}f} ± {row['std']:.{digits}f}"   # sd over seeds if n_seeds > 1
    if pd.notna(row["ci_low"]):
        text += f" [{row['ci_low']:.{digits}f}, {row['ci_high']:.{digits}f}]"
    text += f" #{int(row['rank'])}"
    if row.get("verdict_vs_best") == "worse than the best":
        text += f" {WORSE_MARK}"
    return text


def _notes(rec: dict) -> str:
    m = rec["manifest"]
    notes = m.get("notes") or []
    notes = [notes] if isinstance(notes, str) else [str(n) for n in notes]   # a hand-edited string
    notes = [n for n in notes if not n.startswith("LPIPS")]
    if m.get("simulated"):
        notes.insert(0, "SIMULATED data")
    if m.get("status") == "failed":
        last = m.get("last_checkpoint")
        notes.insert(0, f"FAILED: {m.get('reason', '?')}"
                        + (f" (last good checkpoint: {last})" if last else ""))
    for run in rec.get("seed_runs", []):       # a failed seed beside complete ones: not counted
        if run["manifest"].get("status") == "failed" and run["dir"] != rec["dir"]:
            notes.insert(0, f"seed {run['manifest'].get('seed')} FAILED, not counted: "
                            f"{run['manifest'].get('reason', '?')}")
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


def _ranked_stats(recs: list[dict], titles: dict[str, str]) -> dict[str, pd.DataFrame]:
    stats = {m: _metric_stats(recs, m) for m in titles}
    _adjust_group(stats)        # Holm over this table's tests
    return stats


def _psnr_order(recs: list[dict]) -> pd.Index:
    """Rows best first by the paper's PSNR: both quality tables list them in this order."""
    means = pd.Series([(r["summary"].get("psnr") or {}).get("mean") for r in recs], dtype=float)
    return means.fillna(-math.inf).sort_values(ascending=False, kind="stable").index


def quality_table(recs: list[dict]) -> Table:
    titles = ranked_titles()
    stats = _ranked_stats(recs, titles)
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
        row["Seeds"] = seeds_text(stats["psnr"].iloc[i])
        row["CI covers"] = stats["psnr"].iloc[i]["ci_covers"] or "-"
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
    order = _psnr_order(recs)
    numbers = pd.concat(stats.values(), ignore_index=True)
    return Table(cells.loc[order].reset_index(drop=True), best.loc[order].reset_index(drop=True),
                 numbers)


def clinical_table(recs: list[dict], units: str) -> tuple[Table | None, list[str]]:
    """The second quality table: the clinical measures (clinical.py) the group's runs have, in
    the paper table's row order, and the names of those none of its rows could compute."""
    titles = ranked_titles("clinical", units)
    stats = {m: _metric_stats(recs, m) for m in titles}
    absent = [titles[m] for m in titles if not stats[m]["mean"].notna().any()]
    titles = {m: t for m, t in titles.items() if stats[m]["mean"].notna().any()}
    if not titles:
        return None, absent
    stats = {m: stats[m] for m in titles}
    _adjust_group(stats)
    cells, best = [], []
    for i, rec in enumerate(recs):
        row, mark = {"Method": rec["manifest"]["label"], "Profile": rec["manifest"]["profile"]}, {}
        for metric, title in titles.items():
            row[title] = _cell(stats[metric].iloc[i], METRICS[metric].digits)
            mark[title] = bool(stats[metric].iloc[i]["best"])
        row["Seeds"] = seeds_text(stats[next(iter(titles))].iloc[i])
        cells.append(row)
        best.append(mark)
    cells = pd.DataFrame(cells)
    best = pd.DataFrame(best).reindex(columns=cells.columns, fill_value=False)
    order = _psnr_order(recs)
    return (Table(cells.loc[order].reset_index(drop=True), best.loc[order].reset_index(drop=True),
                  pd.concat(stats.values(), ignore_index=True)), absent)


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


TRAINING_TIMES = ("s_per_epoch", "samples_per_s")


def timed_with_validation(rec: dict) -> bool:
    """A run made before training time left out the validation points (cost.json without
    `epoch_excludes_validation`) that did validate (it wrote curve.csv): its s / epoch and
    samples / s count the validation too, and say so."""
    folder = rec.get("dir")
    return (not rec["cost"].get("epoch_excludes_validation") and folder is not None
            and (Path(folder) / "curve.csv").is_file())


def measured_costs(rec: dict) -> dict[str, tuple[float | None, int]]:
    """Per cost number, (the median over the row's complete seed runs that measured it, how
    many): every seed's time counts, as every seed's score does, and one slow run (a shared
    machine) does not speak for the row."""
    runs = [r for r in rec.get("seed_runs", [rec])
            if r["manifest"].get("status", "complete") == "complete"] or [rec]
    out = {}
    for key, _, _ in COST_NUMBERS.values():
        values = [float(r["cost"][key]) for r in runs if (r.get("cost") or {}).get(key)]
        out[key] = (float(np.median(values)) if values else None, len(values))
    return out


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
        measured = measured_costs(rec)
        for title, (key, fmt, _) in COST_NUMBERS.items():
            value, n = measured[key]
            row[title] = fmt.format(value) if value else ("n/a" if c.get("not_measured") else "-")
            if value and n > 1:
                row[title] += f" (median of {n})"
            if key in TRAINING_TIMES and value and timed_with_validation(rec):
                row[title] += " (incl. validation)"
        row["Device"] = f"{(m.get('provenance') or {}).get('device_name', '?')} ({c.get('device', '?')})"
        row["Precision"] = m.get("precision", "?")
        rows.append(row)
        numbers.append({"label": m["label"], "params": c.get("params_total"), "flops": flops,
                        "macs": flops / 2 if flops else None,
                        **{key: measured[key][0] for key, _, _ in COST_NUMBERS.values()}})
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


def _commit(rec: dict) -> str:
    p = rec["manifest"].get("provenance", {})
    return (p.get("commit") or "?")[:10] + ("+dirty" if p.get("dirty") else "")


def _plugins(rec: dict) -> dict[str, str]:
    return {str(v.get("name")): str(v.get("version"))
            for v in (rec["manifest"].get("plugins") or {}).values() if isinstance(v, dict)}


def _table_code(recs: list[dict]) -> tuple[str, dict[str, str]]:
    """The commit most of a table's counted runs were made by, and each plugin's most common
    version (ties: the newest run's). Different methods are different plugins, not mixed code."""
    counted = sorted((run for row in recs for run in row.get("seed_runs", [row])),
                     key=lambda r: run_id(r["dir"]), reverse=True)
    commits = [_commit(r) for r in counted]
    versions: dict[str, list[str]] = {}
    for run in counted:
        for name, version in _plugins(run).items():
            versions.setdefault(name, []).append(version)
    majority = lambda xs: max(dict.fromkeys(xs), key=xs.count)   # noqa: E731
    return (majority(commits) if commits else "",
            {name: majority(vs) for name, vs in versions.items()})


def _differs(rec: dict, main: tuple[str, dict[str, str]]) -> str:
    """'' when a run was made by the table's code; otherwise what differs."""
    commit, versions = main
    parts = [] if _commit(rec) == commit else [f"commit {_commit(rec)}"]
    parts += [f"{name} {v}" for name, v in _plugins(rec).items() if versions.get(name, v) != v]
    return ", ".join(parts)


def provenance_table(recs: list[dict]) -> Table:
    rows, main = [], _table_code(recs)
    for row in recs:
        for rec, status in _member_runs(row):
            m, p = rec["manifest"], rec["manifest"].get("provenance", {})
            commit = (p.get("commit") or "?")[:10] + ("+dirty" if p.get("dirty") else "")
            line = _provenance_row(row["manifest"]["label"], rec, m, p, commit, status)
            odd = _differs(rec, main)
            line["Same code as the table"] = f"no: {odd}" if odd else "yes"
            rows.append(line)
    cells = pd.DataFrame(rows)
    return Table(cells, pd.DataFrame(False, index=cells.index, columns=cells.columns), cells)


def caveats(recs: list[dict]) -> list[str]:
    """What a reader must know before trusting a table: how many volumes (patients) its
    statistics rest on, and whether its counted runs come from different code."""
    volumes = set()
    for row in recs:
        for run in row.get("seed_runs", [row]):
            df = run.get("per_image")
            if df is not None:
                part = df[df["group"].fillna("") == ""]
                volumes |= set(part["volume"].fillna(uncertainty.UNNAMED).astype(str))
    out = []
    if volumes:
        names = ("images name no volume: counted as one" if volumes == {uncertainty.UNNAMED}
                 else ", ".join(sorted(volumes)))
        out.append(f"Evaluation: {len(volumes)} volume{'s' if len(volumes) > 1 else ''} "
                   f"({names})."
                   + (" With 1 volume (1 patient), intervals and tests cover training runs on "
                      "this volume only: no verdict here generalises across patients."
                      if len(volumes) == 1 else ""))
    main = _table_code(recs)
    odd = sorted({row["manifest"]["label"] for row in recs
                  for run in row.get("seed_runs", [row]) if _differs(run, main)})
    if odd:
        commits = {_commit(run) for row in recs for run in row.get("seed_runs", [row])}
        out.append(f"MIXED CODE: the runs come from {len(commits)} commit(s) or other plugin "
                   f"versions; rows with runs not made by {main[0]}: {', '.join(odd)} "
                   f"(see Provenance).")
    return out


def _provenance_row(label, rec, m, p, commit, status) -> dict:
    return {"Method": label, "Run": run_id(rec["dir"]), "Status": status,
            "Commit": commit, "Device": p.get("device", "?"),
            "Precision": m.get("precision", "?"), "Profile": m["profile"],
            "Seed": "-" if m.get("seed") is None else m["seed"],
            "Protocol": protocol_key(m.get("protocol", {})),
            "Finished": m.get("finished", "?")}


VARIANTS_NOTE = ("Config variants of a method (e.g. the rows of a paper's ablation table, run by "
                 "`benchsr reproduce`): ranked here among themselves; the methods as shipped are "
                 "ranked in their own section, and each reproduced table, with its claims, is in "
                 "reproduce/ beside the runs")


def groups(recs: list[dict]) -> list[Group]:
    """Rows are only compared within one dataset, protocol and profile, and last checkpoints
    apart from best-on-validation ones; a method's config variants (`variant`: the rows of a
    paper's ablation table) apart from the methods as shipped, which a reader chooses among."""
    by_key: dict[tuple, list[dict]] = {}
    for rec in recs:
        m = rec["manifest"]
        # best-on-validation checkpoints (best.py) are a protocol of their own: never ranked
        # beside the last checkpoints the leaderboard ranks
        by_key.setdefault((m["dataset"], protocol_key(m.get("protocol", {})), m["profile"],
                           checkpoint_kind(m), bool(m.get("variant"))), []).append(rec)
    out = []
    for (dataset, key, profile, checkpoint, variants), members in sorted(by_key.items(), key=lambda kv: (
            kv[0][0], kv[0][1], PROFILES.index(kv[0][2]) if kv[0][2] in PROFILES else 99,
            kv[0][2], kv[0][3] != "last", kv[0][4])):
        protocol = members[0]["manifest"].get("protocol", {})
        clinical, absent = clinical_table(members, protocol.get("hr_units", "HU"))
        out.append(Group(dataset, key, protocol, any(r["manifest"].get("simulated") for r in members),
                         members, quality_table(members), cost_table(members),
                         provenance_table(members), caveats(members) + (
                             [VARIANTS_NOTE] if variants else []), clinical, absent,
                         checkpoint, profile, variants))
    return out


def direction_sentence() -> str:
    return "; ".join(f"{m.title}: {m.direction} is better" for m in METRICS.values())
