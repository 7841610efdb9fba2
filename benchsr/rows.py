"""Leaderboard rows from run folders. Runs that differ only in their seed form one row (mean ± sd
across seeds, per-image values pooled); runs that differ in any other config key are separate
rows whose labels name the keys. A run repeated with the same config and seed counts once (the
newest); the provenance table lists the older one as superseded: no run folder is hidden."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd

from .config import flatten
from .metrics import METRICS, bootstrap_summary
from .results import finished_runs


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
