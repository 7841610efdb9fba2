"""Leaderboard rows from run folders. Runs that differ only in their seed form one row (mean ± sd
across seeds, a CI over seeds and volumes from uncertainty.py); runs that differ in any other config key are separate
rows whose labels name the keys. A run repeated with the same config and seed counts once (the
newest complete one); the provenance table lists the others as superseded, and a seed whose
only runs failed is counted as failed: no run folder is hidden."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from benchsr.evaluation import uncertainty
from benchsr.config import flatten
from benchsr.evaluation.metrics import METRICS
from benchsr.results import display_label, finished_runs, run_id


def protocol_key(protocol: dict) -> str:
    return hashlib.sha1(json.dumps(protocol, sort_keys=True).encode()).hexdigest()[:8]


def replicate_keys(rec: dict) -> tuple[str, ...]:
    """The config keys that tell a row's runs apart: the seed, and those the protocol names as
    replicates (a leave-one-patient-out design's fold: `replicate_keys` in contracts.py)."""
    return ("seed", *(rec["manifest"].get("protocol") or {}).get("replicate_keys", []))


def _row_config(rec: dict) -> dict:
    """What makes runs one row: their whole config except the replicate keys (the seed)."""
    skip = replicate_keys(rec)
    return {k: v for k, v in flatten(rec["config"]).items() if k not in skip}


def _replicate(rec: dict) -> tuple:
    flat = flatten(rec["config"])
    return tuple(str(rec["manifest"].get("seed") if k == "seed" else flat.get(k))
                 for k in replicate_keys(rec))


def _differing(configs: list[dict]) -> list[str]:
    keys = sorted(set().union(*configs))
    return [k for k in keys if len({json.dumps(c.get(k), sort_keys=True) for c in configs}) > 1]


def _complete(rec: dict) -> bool:
    return rec["manifest"].get("status", "complete") == "complete"


def _merge_seeds(members: list[dict], label: str) -> dict:
    """One row from the runs of one config: per seed the newest complete run (a failed one
    only where the seed has none), the others superseded; failed seeds are counted."""
    by_seed: dict = {}
    for rec in members:
        by_seed.setdefault(_replicate(rec), []).append(rec)
    runs = []
    for recs in by_seed.values():
        winner = max(recs, key=lambda r: (_complete(r), run_id(r["dir"])))
        older = [r for r in recs if r is not winner]
        winner.setdefault("supersedes", []).extend(
            [x for r in older for x in (r, *r.get("supersedes", []))])
        runs.append(winner)
    runs.sort(key=_replicate)
    # the row speaks for its newest complete run; a failed seed is a note beside it (tables.py)
    newest = max(runs, key=lambda r: (_complete(r), run_id(r["dir"])))
    row = dict(newest, manifest={**newest["manifest"], "label": label}, seed_runs=runs)
    row["failed_seeds"] = sum(not _complete(r) for r in runs)
    row["summary"] = _row_summary(row, newest["summary"])
    return row


def trained(rec: dict) -> bool:
    """Whether a row's runs can differ between seeds. The manifest says so (the method's
    `deterministic`); runs made before it did: a method with no parameters is interpolation,
    unless it is an outside model's predictions (one training run of unknown spread)."""
    m = rec.get("manifest") or {}
    if "deterministic" in m:
        return not m["deterministic"]
    return bool((rec.get("cost") or {}).get("params_total")) or str(m.get("method")).startswith("external")


def row_units(row: dict, metric: str, group: str = "") -> uncertainty.Units | None:
    """The runs x volumes matrix of one row's metric on one evaluation set ("" = primary),
    from the per-image values of its complete runs."""
    cache = row.setdefault("_units", {})     # the cell and the test against the best both use it
    if (metric, group) not in cache:
        cache[(metric, group)] = _units(row, metric, group)
    return cache[(metric, group)]


def _units(row: dict, metric: str, group: str) -> uncertainty.Units | None:
    frames = []
    key = "per_volume" if METRICS[metric].per_volume else "per_image"   # volumes.csv / metrics.csv
    for run in row.get("seed_runs", [row]):
        df = run.get(key)
        if df is not None and metric in df:
            frames.append(df[df["group"].fillna("") == group])
    return uncertainty.units(frames, metric, trained(row)) if frames else None


def _row_summary(row: dict, base: dict) -> dict:
    """The primary set's statistics from the per-image values (statistics.md): the mean over
    runs of per-unit means, the sd it shows (between seeds; without two trained runs, between
    its volumes or blocks; with one of those, over images), and a CI that says its design."""
    out = dict(base)
    for metric in METRICS:
        u = row_units(row, metric)
        if u is None:
            continue
        stat = uncertainty.cell(u)
        stat.update(n=u.n_images, failed_seeds=row.get("failed_seeds", 0), **_shown_spread(u, stat))
        out[metric] = stat
    return out


def _shown_spread(u: uncertainty.Units, stat: dict) -> dict:
    """The ± of a cell and what it is over."""
    if stat["sd_runs"] is not None:
        return {"std": stat["sd_runs"], "spread": "seeds"}
    c = u.collapsed()
    if c.n_units > 1:
        return {"std": float(np.std(c.unit_means(), ddof=1)), "spread": c.level}
    images = c.slices[0]
    return {"std": float(np.std(images, ddof=1)) if images.size > 1 else 0.0, "spread": "images"}


def load_runs(paths: list[Path]) -> list[dict]:
    """Leaderboard rows from the finished run folders under `paths` (results roots, run folders
    or anything between). Runs of one (dataset, label, profile, protocol) and one config but for
    the seed form one row; other config differences make separate rows, labelled by them."""
    families: dict[tuple, list[dict]] = {}
    for rec in finished_runs(paths):                       # oldest first
        m = rec["manifest"]
        key = (m["dataset"], display_label(m), m["profile"], protocol_key(m.get("protocol", {})))
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
