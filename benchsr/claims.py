"""A verdict for each ordering a paper states. A table in paper_tables.yaml may list `claims`:
`{better: ROW, than: ROW}` (ROW names of its rows). Each is tested on every metric the paper
reports for both rows, on the primary evaluation set and on every secondary set whose images have
that metric (ct-uct's true cross-modality pairs beside the bicubic proxy): ours as the mean ± sd
over seeds, a two-sided Wilcoxon signed-rank test on per-image values paired by (seed, image),
Holm-corrected over all the table's tests, and the verdict: holds, reversed, or not significant.
A claim that does not hold here is said so."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .metrics import METRICS, holm
from .results import read_json, set_stats

ALPHA = 0.05


PRIMARY = ""


def _per_image(runs: list, metric: str, group: str = PRIMARY) -> pd.Series:
    """Per-image values of a row's runs on one evaluation set, indexed by (seed, image)."""
    parts = []
    for run in runs:
        df = pd.read_csv(run / "metrics.csv", dtype={"image": "string", "group": "string"})
        df = df[df["group"].fillna("") == group]
        seed = read_json(run / "manifest.json").get("seed")
        parts.append(df.set_index("image")[metric].rename(lambda i, s=seed: (s, i)))
    return pd.concat(parts) if parts else pd.Series(dtype=float)


def _seed_means(runs: list, metric: str, group: str = PRIMARY) -> list[float]:
    return [set_stats(read_json(r / "summary.json"), group).get(metric, {}).get("mean")
            for r in runs]


def evaluation_sets(runs: list, metric: str) -> list[str]:
    """The primary set, then each secondary set where every run scored `metric`."""
    sets = [PRIMARY]
    groups = [set(read_json(r / "summary.json").get("groups", {})) for r in runs]
    for group in sorted(set.intersection(*groups) if groups else set()):
        if all(v is not None for v in _seed_means(runs, metric, group)):
            sets.append(group)
    return sets


def _p_value(a: pd.Series, b: pd.Series) -> float | None:
    from scipy.stats import wilcoxon
    pairs = pd.concat([a, b], axis=1, join="inner").dropna().to_numpy(np.float64)
    diff = pairs[:, 0] - pairs[:, 1] if len(pairs) else np.array([])
    if len(diff) < 2 or not np.any(diff):
        return None
    return float(wilcoxon(diff).pvalue)


def _fmt(values: list, digits: int) -> str:
    v = [x for x in values if x is not None]
    if not v:
        return "n/a"
    sd = f" ± {np.std(v, ddof=1):.{digits}f}" if len(v) > 1 else ""
    return f"{np.mean(v):.{digits}f}{sd} (n={len(v)})"


def verdicts(spec: dict, runs_by_row: dict[str, list]) -> pd.DataFrame:
    """One line per (claim, metric, evaluation set): paper, ours, adjusted p and the verdict."""
    paper = {row["name"]: row.get("paper", {}) for row in spec["rows"]}
    lines = []
    for claim in spec.get("claims", []):
        better, than = claim["better"], claim["than"]
        for metric in paper[better]:
            if metric not in paper[than]:
                continue
            a_runs, b_runs = runs_by_row.get(better, []), runs_by_row.get(than, [])
            for group in evaluation_sets(a_runs + b_runs, metric):
                line = _test(metric, a_runs, b_runs, group)
                lines.append({"Claim": f"{better} > {than}", "Metric": METRICS[metric].title,
                              "Evaluation set": group or "primary",
                              "Paper": f"{paper[better][metric]:.2f} vs {paper[than][metric]:.2f}",
                              **line})
    frame = pd.DataFrame(lines)
    if frame.empty:
        return frame
    frame["p (Holm)"] = holm(frame["_p"].tolist())
    frame["Verdict"] = [_verdict(p, d) for p, d in zip(frame["p (Holm)"], frame["_better"])]
    frame["p (Holm)"] = [("n/a" if pd.isna(p) else f"{p:.3g}") for p in frame["p (Holm)"]]
    return frame.drop(columns=["_p", "_better"])


def _test(metric: str, a_runs: list, b_runs: list, group: str) -> dict:
    m = METRICS[metric]
    a_means, b_means = _seed_means(a_runs, metric, group), _seed_means(b_runs, metric, group)
    diff = (np.mean([x for x in a_means if x is not None] or [np.nan])
            - np.mean([x for x in b_means if x is not None] or [np.nan]))
    p = (_p_value(_per_image(a_runs, metric, group), _per_image(b_runs, metric, group))
         if a_runs and b_runs else None)
    return {"Ours": f"{_fmt(a_means, m.digits)} vs {_fmt(b_means, m.digits)}", "_p": p,
            "_better": (1 if m.direction == "higher" else -1) * diff}


def _verdict(p, better: float) -> str:
    if pd.isna(p) or pd.isna(better):
        return "not tested (runs missing)" if pd.isna(better) else "not significant"
    if p >= ALPHA:
        return "not significant"
    return "holds" if better > 0 else "reversed"
