"""A verdict for each ordering a paper states. A table in paper_tables.yaml may list `claims`:
`{better: ROW, than: ROW}` (ROW names of its rows). Each is tested on every metric the paper
reports for both rows, on the primary evaluation set and on every secondary set whose images have
that metric (ct-uct's true cross-modality pairs beside the bicubic proxy).

The units of replication are training runs (seeds) and volumes (patients), never slices
(uncertainty.py): ours is the mean ± between-seed sd; the effect A - B comes with its 95 % CI and
P(A better than B) over pairs of runs; p is Holm-corrected over all the table's tests, and the CI
printed beside the verdict is at the test's step level in Holm's sequence (the unadjusted 95 % CI
beside it, labelled); the verdict is holds, reversed, no detectable difference (with the smallest
detectable effect and planning MDEs), reversed, not significant after Holm, or untestable (with
what is missing). A claim that does not hold here is said so."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from benchsr.evaluation import uncertainty
from benchsr.evaluation.metrics import METRICS, holm
from benchsr.results import read_json, read_run
from benchsr.report.rows import row_units

PRIMARY = ""


def records(runs: list[Path]) -> list[dict]:
    """The finished run folders of one table row (one per seed)."""
    return [rec for rec in (read_run(Path(r)) for r in runs) if rec is not None]


def as_row(recs: list[dict], label: str = "") -> dict:
    """A table row's runs in the shape rows.py gives a leaderboard row."""
    first = recs[0] if recs else {"manifest": {}, "cost": {}}
    return {**first, "manifest": {**first["manifest"], "label": label}, "seed_runs": recs}


def _units(recs: list[dict], metric: str, group: str) -> uncertainty.Units | None:
    return row_units(as_row(recs), metric, group) if recs else None


def evaluation_sets(runs: list, metric: str) -> list[str]:
    """The primary set, then each secondary set where every run scored `metric`."""
    sets = [PRIMARY]
    summaries = [read_json(Path(r) / "summary.json") for r in runs]
    groups = [set(s.get("groups") or {}) for s in summaries]
    for group in sorted(set.intersection(*groups) if groups else set()):
        if all((s["groups"][group].get(metric) or {}).get("mean") is not None for s in summaries):
            sets.append(group)
    return sets


def describe(u: uncertainty.Units | None, digits: int) -> str:
    """A row's value on one metric: mean ± between-seed sd, and how many runs it rests on."""
    if u is None:
        return "n/a"
    x = u.run_scores()
    if not u.trained:
        return f"{x.mean():.{digits}f} (no training)"
    if len(x) == 1:
        return f"{x[0]:.{digits}f} (1 seed)"
    return f"{x.mean():.{digits}f} ± {np.std(x, ddof=1):.{digits}f} ({len(x)} seeds)"


def _tagged(name: str, recs: dict) -> str:
    """A row's name, with what the environment changed in its recipe (e.g. perceptual=off)."""
    changes = {k: v for r in recs.get(name, []) for k, v in (r["manifest"].get("recipe_changes") or {}).items()}
    return f"{name} [{', '.join(f'{k}={v}' for k, v in sorted(changes.items()))}]" if changes else name


def _interval(values: list | None, digits: int) -> str:
    return "" if not values else f" [{values[0]:.{digits}f}, {values[1]:.{digits}f}]"


def _mde(c: uncertainty.Comparison, digits: int) -> str:
    """The smallest effect this test detects (power 0.8, alpha 0.05 before Holm), with its runs."""
    runs = " v ".join(str(r) if r else "untrained" for r in c.runs)
    return f"{c.mde:.{digits}f} ({runs} runs, {c.n_volumes} volumes)"


def _claim_line(better: str, than: str, recs: dict, m, group: str, paper: dict, ua, ub,
                c: uncertainty.Comparison | None) -> dict:
    """One claim's line before Holm: the paper's numbers, ours, the effect and P(A better)."""
    return {"Claim": f"{_tagged(better, recs)} > {_tagged(than, recs)}", "Metric": m.title,
            "Evaluation set": group or "primary",
            "Paper": f"{paper[better][m.name]:.2f} vs {paper[than][m.name]:.2f}",
            "Ours": f"{describe(ua, m.digits)} vs {describe(ub, m.digits)}",
            "_effect": "n/a" if c is None else f"{c.effect:+.{m.digits}f}",
            "95 % CI before Holm": "n/a" if c is None or c.ci95 is None else
            _interval(c.ci95, m.digits).strip(),
            "P(A better) [95 % CI]": "n/a" if c is None or c.p_better is None else
            f"{c.p_better:.2f}" + (_interval(c.p_better_ci95, 2) if c.p_better_ci95
                                   else f" ({c.p_better_note})" if c.p_better_note else ""),
            "_digits": m.digits}


def verdicts(spec: dict, runs_by_row: dict[str, list], same: dict[str, str] | None = None) -> pd.DataFrame:
    """One line per (claim, metric, evaluation set): paper, ours, effect, P(better), adjusted p,
    verdict and what it rests on. `same`: row -> the row whose config it is at this profile (a
    claim between them compares a config with itself: untestable, and said so)."""
    paper = {row["name"]: row.get("paper", {}) for row in spec["rows"]}
    recs = {name: records(runs) for name, runs in runs_by_row.items()}
    same = same or {}
    lines, tests, why_not = [], [], []
    for claim in spec.get("claims", []):
        better, than = claim["better"], claim["than"]
        itself = same.get(better, better) == same.get(than, than)
        for metric in paper[better]:
            if metric not in paper[than]:
                continue
            m = METRICS[metric]
            for group in evaluation_sets(runs_by_row.get(better, []) + runs_by_row.get(than, []), metric):
                ua, ub = (_units(recs.get(name, []), metric, group) for name in (better, than))
                c = (uncertainty.compare(ua, ub, m.direction == "higher", (better, than))
                     if ua is not None and ub is not None and not itself else None)
                tests.append(c)
                why_not.append("the same config at this profile: nothing to compare" if itself
                               else "runs missing")
                lines.append(_claim_line(better, than, recs, m, group, paper, ua, ub, c))
    frame = pd.DataFrame(lines)
    if frame.empty:
        return frame
    raw = [None if c is None else c.p for c in tests]
    adjusted, levels = holm(raw), uncertainty.holm_levels(raw)
    words = [("untestable" if c is None else uncertainty.verdict(c, None if np.isnan(p) else p))
             for c, p in zip(tests, adjusted)]
    # the CI beside the verdict is at the test's step level in Holm's sequence: the same footing
    frame.insert(frame.columns.get_loc("_effect"), "Effect (A − B) [CI at its Holm level]", [
        e if level is None else f"{e}{_interval(c.ci(level), d)} at {100 * level:.2f} %"
        for e, c, level, d in zip(frame["_effect"], tests, levels, frame["_digits"])])
    frame = frame.drop(columns="_effect")
    frame["p (Holm)"] = ["n/a" if np.isnan(p) else f"{p:.3g}" for p in adjusted]
    frame["Verdict"] = words
    frame["MDE at these seeds"] = ["n/a" if c is None or c.mde is None else _mde(c, d)
                                   for c, d in zip(tests, frame["_digits"])]
    frame["Why"] = [reason if c is None else uncertainty.detail(c, w, d)
                    for c, w, d, reason in zip(tests, words, frame["_digits"], why_not)]
    return frame.drop(columns="_digits")
