"""Leaderboards built from run folders only: a quality table (paper Tables 4/6) and a cost table
(paper Table 5) per dataset and protocol, as Markdown and CSV, and as rich tables."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd

from .metrics import DIRECTION
from .results import read_json, write_text

METRIC_NAMES = {"psnr": "PSNR (dB)", "ssim": "SSIM", "ssim_global": "SSIM global (paper)",
                "lpips": "LPIPS"}
OTHER_NAMES = {"psnr": "PSNR", "ssim": "SSIM", "lr_consistency_psnr": "LR-consistency PSNR"}


def protocol_key(protocol: dict) -> str:
    return hashlib.sha1(json.dumps(protocol, sort_keys=True).encode()).hexdigest()[:8]


def load_runs(root: Path) -> list[dict]:
    """Every run folder with a readable manifest; the newest per (dataset, label, profile)."""
    runs = {}
    for manifest_path in sorted((root / "runs").glob("*/*/*/manifest.json")):
        run_dir = manifest_path.parent
        try:
            manifest = read_json(manifest_path)
        except (OSError, ValueError):
            continue  # being written by another process: only complete files are read
        if manifest.get("status") == "running":
            continue
        rec = {"dir": run_dir, "manifest": manifest}
        for name in ("summary", "cost"):
            path = run_dir / f"{name}.json"
            rec[name] = read_json(path) if path.is_file() else {}
        key = (manifest["dataset"], manifest["label"], manifest["profile"],
               protocol_key(manifest.get("protocol", {})))
        runs[key] = rec   # sorted by run id (time): the newest wins
    return list(runs.values())


def _fmt(stat: dict | None, digits: int) -> str:
    if not stat or stat.get("mean") is None:
        return "n/a"
    return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"


def _count(n: int | None) -> str:
    return "n/a" if n is None else f"{n:,}"


def _notes(rec: dict) -> str:
    m = rec["manifest"]
    notes = [n for n in m.get("notes", []) if not n.startswith("LPIPS")]
    if m.get("simulated"):
        notes.insert(0, "SIMULATED data")
    if m.get("status") == "failed":
        notes.insert(0, f"FAILED: {m.get('reason', '?')}")
    return "; ".join(notes)


def _other_sets(summary: dict) -> str:
    """Secondary evaluation sets in a few words, e.g. the true cross-modality pairs of a
    simulated specimen, or the LR-consistency PSNR of LR-only clinical slices."""
    parts = []
    for group, stats in (summary.get("groups") or {}).items():
        vals = [f"{OTHER_NAMES[k]} {_fmt(stats.get(k), 2 if 'psnr' in k else 3)}"
                for k in ("psnr", "ssim", "lr_consistency_psnr") if stats.get(k)]
        parts.append(f"{group}: " + ", ".join(vals))
    return "; ".join(parts)


def quality_frame(recs: list[dict]) -> pd.DataFrame:
    rows = []
    for rec in recs:
        s, m = rec["summary"], rec["manifest"]
        row = {"Method": m["label"], "Profile": m["profile"]}
        for key, title in METRIC_NAMES.items():
            row[title] = _fmt(s.get(key), 3 if key != "psnr" else 2)
        if s.get("lpips_note") and (s.get("lpips") or {}).get("mean") is None:
            row["LPIPS"] = s["lpips_note"]
        row["n"] = (s.get("psnr") or {}).get("n", 0)
        trend = s.get("training")
        row["G loss 1st→last epoch"] = (f"{trend['total_g_first_epoch']:.3f} → "
                                        f"{trend['total_g_last_epoch']:.3f}") if trend else "-"
        other = _other_sets(s)
        if other:
            row["Other evaluation sets"] = other
        row["Notes"] = _notes(rec)
        row["_sort"] = (s.get("psnr") or {}).get("mean") or float("-inf")
        rows.append(row)
    df = pd.DataFrame(rows)
    if not df.empty:
        df = df.sort_values("_sort", ascending=False).drop(columns="_sort")
    return df


def cost_frame(recs: list[dict]) -> pd.DataFrame:
    rows = []
    for rec in recs:
        c, m = rec["cost"], rec["manifest"]
        flops = c.get("flops_per_lr_input")
        shape = "x".join(str(v) for v in c.get("flops_input_shape", [])[2:])
        rows.append({
            "Method": m["label"], "Profile": m["profile"],
            "Params": _count(c.get("params_total")),
            "Params per network": ", ".join(f"{k} {v:,}" for k, v in c.get("params", {}).items()) or "-",
            "GFLOPs / LR input": f"{flops / 1e9:.2f} ({shape})" if flops else "n/a (no network)",
            "s / epoch": f"{c['s_per_epoch']:.1f}" if c.get("s_per_epoch") else "-",
            "samples / s": f"{c['samples_per_s']:.1f}" if c.get("samples_per_s") else "-",
            "ms / slice": f"{c['ms_per_slice']:.1f}" if c.get("ms_per_slice") else "n/a",
            "Peak memory (MiB)": f"{c['peak_memory_mib']:.0f}" if c.get("peak_memory_mib") else "n/a",
            "Device": f"{m['provenance'].get('device_name', '?')} ({c.get('device', '?')})",
            "Precision": m.get("precision", "?"),
        })
    return pd.DataFrame(rows)


def groups(recs: list[dict]) -> dict[tuple, list[dict]]:
    """Rows are only compared within one dataset and one protocol."""
    out: dict[tuple, list[dict]] = {}
    for rec in recs:
        m = rec["manifest"]
        out.setdefault((m["dataset"], protocol_key(m.get("protocol", {}))), []).append(rec)
    return out


def build(root: Path) -> tuple[str, list[tuple[str, pd.DataFrame, pd.DataFrame]]]:
    """Write leaderboard.md + per-group CSVs under root; return the Markdown and the frames."""
    recs = load_runs(root)
    better = "; ".join(f"{({**METRIC_NAMES, **OTHER_NAMES})[m]}: {d} is better"
                       for m, d in DIRECTION.items())
    parts = ["# benchsr leaderboard", "",
             "Built by `benchsr leaderboard` from the run folders under `runs/` only. "
             f"{better}. "
             "Values are mean ± std over evaluation images; per-image values, 95 % bootstrap "
             "intervals and provenance are in each run folder.", ""]
    frames = []
    for (dataset, pkey), members in sorted(groups(recs).items()):
        q, c = quality_frame(members), cost_frame(members)
        protocol = members[0]["manifest"].get("protocol", {})
        simulated = any(r["manifest"].get("simulated") for r in members)
        title = f"{dataset}" + (" (SIMULATED)" if simulated else "")
        parts += [f"## {title} — protocol {pkey}", "",
                  "Protocol: " + ", ".join(f"{k}={v}" for k, v in protocol.items()), "",
                  "### Quality", "", q.to_markdown(index=False), "",
                  "### Cost", "", c.to_markdown(index=False), ""]
        stem = f"{dataset}-{pkey}"
        write_text(root / "leaderboard" / f"{stem}-quality.csv", q.to_csv(index=False))
        write_text(root / "leaderboard" / f"{stem}-cost.csv", c.to_csv(index=False))
        frames.append((title, q, c))
    if not recs:
        parts.append("No finished runs yet.")
    md = "\n".join(parts) + "\n"
    write_text(root / "leaderboard.md", md)
    return md, frames


def rich_tables(frames) -> list:
    from rich.table import Table
    out = []
    for title, q, c in frames:
        for kind, df in (("quality", q), ("cost", c)):
            t = Table(title=f"{title}: {kind}", show_lines=False)
            for col in df.columns:
                t.add_column(str(col), overflow="fold")
            for _, row in df.iterrows():
                t.add_row(*[str(v) for v in row])
            out.append(t)
    return out
