"""A verdict for each ordering a paper states. A table in paper_tables.yaml may list `claims`:
`{better: ROW, than: ROW}` (ROW names of its rows). Each is tested on every metric the paper
reports for both rows: ours as the mean ± sd over seeds, a two-sided Wilcoxon signed-rank test on
per-image values paired by (seed, image), Holm-corrected over all the table's tests, and the
verdict: holds, reversed, or not significant. A claim that does not hold here is said so."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .metrics import METRICS, holm
from .results import read_json

ALPHA = 0.05


def _per_image(runs: list, metric: str) -> pd.Series:
    """Per-image values of a row's runs, indexed by (seed, image)."""
    parts = []
    for run in runs:
        df = pd.read_csv(run / "metrics.csv", dtype={"image": "string", "group": "string"})
        df = df[df["group"].fillna("") == ""]
        seed = read_json(run / "manifest.json").get("seed")
        parts.append(df.set_index("image")[metric].rename(lambda i, s=seed: (s, i)))
    return pd.concat(parts) if parts else pd.Series(dtype=float)


def _seed_means(runs: list, metric: str) -> list[float]:
    return [read_json(r / "summary.json").get(metric, {}).get("mean") for r in runs]


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
    """One line per (claim, metric): paper, ours, adjusted p and the verdict."""
    paper = {row["name"]: row.get("paper", {}) for row in spec["rows"]}
    lines = []
    for claim in spec.get("claims", []):
        better, than = claim["better"], claim["than"]
        for metric in paper[better]:
            if metric not in paper[than]:
                continue
            m = METRICS[metric]
            a_runs, b_runs = runs_by_row.get(better, []), runs_by_row.get(than, [])
            a_means, b_means = _seed_means(a_runs, metric), _seed_means(b_runs, metric)
            diff = (np.mean([x for x in a_means if x is not None] or [np.nan])
                    - np.mean([x for x in b_means if x is not None] or [np.nan]))
            sign = 1 if m.direction == "higher" else -1
            lines.append({
                "Claim": f"{better} > {than}", "Metric": m.title,
                "Paper": f"{paper[better][metric]:.2f} vs {paper[than][metric]:.2f}",
                "Ours": f"{_fmt(a_means, m.digits)} vs {_fmt(b_means, m.digits)}",
                "_p": _p_value(_per_image(a_runs, metric), _per_image(b_runs, metric))
                if a_runs and b_runs else None,
                "_better": sign * diff})
    frame = pd.DataFrame(lines)
    if frame.empty:
        return frame
    frame["p (Holm)"] = holm(frame["_p"].tolist())
    frame["Verdict"] = [_verdict(p, d) for p, d in zip(frame["p (Holm)"], frame["_better"])]
    frame["p (Holm)"] = [("n/a" if pd.isna(p) else f"{p:.3g}") for p in frame["p (Holm)"]]
    return frame.drop(columns=["_p", "_better"])


def _verdict(p, better: float) -> str:
    if pd.isna(p) or pd.isna(better):
        return "not tested (runs missing)" if pd.isna(better) else "not significant"
    if p >= ALPHA:
        return "not significant"
    return "holds" if better > 0 else "reversed"
