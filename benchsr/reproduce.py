"""`benchsr reproduce TABLE`: a paper's table as runs, printed beside the published numbers.

A method plugin may ship `paper_tables.yaml` beside its module: table name -> title, dataset and
rows (name, METHOD[:PRESET], optional `set` overrides, the published metric values). Each row is
run once per config: a finished run with the same config under <out>/runs is reused.
"""
from __future__ import annotations

import inspect
from pathlib import Path

import pandas as pd

from . import config, registry, results
from .contracts import BenchError
from .metrics import METRICS


def paper_tables() -> dict[str, dict]:
    """Every table that an installed method plugin declares (first declaration wins)."""
    found: dict[str, dict] = {}
    for name, entry in sorted(registry.discover("methods").items()):
        if entry.broken:
            continue
        doc = config.read_yaml(Path(inspect.getfile(entry.cls)).with_name("paper_tables.yaml"))
        for table, spec in doc.items():
            found.setdefault(table, spec)
    return found


def _variant(overrides: dict) -> str:
    """A short, stable name for a row's overrides: it labels the run and its table row."""
    return ",".join(f"{k.split('.')[-1]}={v}" for k, v in overrides.items())


def row_configs(spec: dict, profile: str, extra: list[str]) -> list[tuple[dict, type, dict]]:
    """(row, method class, resolved config) for each row of a table."""
    ds_cls = registry.get("datasets", spec["dataset"])
    out = []
    for row in spec["rows"]:
        name, _, preset = row["method"].partition(":")
        cls = registry.get("methods", name)
        sets = row.get("set") or {}
        overrides = [f"{k}={v}" for k, v in sets.items()] + list(extra)
        if sets:
            overrides.append(f"variant={_variant(sets)}")
        out.append((row, cls, config.resolve(cls, preset or "default", ds_cls, profile, overrides)))
    return out


def finished_run(root: Path, cfg: dict) -> Path | None:
    label = results.run_label(cfg["method"], cfg["preset"], cfg["variant"])
    for run in results.same_config_runs(root, cfg["dataset"], label, cfg):
        try:
            if results.read_json(run / "manifest.json").get("status") == "complete":
                return run
        except (OSError, ValueError):
            continue
    return None


def compare(rows: list[tuple[dict, Path]]) -> pd.DataFrame:
    """Published vs measured, one line per row of the paper's table."""
    lines = []
    for row, run in rows:
        summary, manifest = (results.read_json(run / n) for n in ("summary.json", "manifest.json"))
        line = {"Row": row["name"], "Run label": manifest["label"]}
        for metric, paper in row["paper"].items():
            ours = summary.get(metric) or {}
            digits, title = METRICS[metric].digits, METRICS[metric].title
            line[f"{title}: paper"] = f"{paper:.2f}"
            line[f"{title}: ours"] = ("n/a" if ours.get("mean") is None else
                                                     f"{ours['mean']:.{digits}f} ± {ours['std']:.{digits}f}")
        line["SSIM (windowed): ours"] = (f"{summary['ssim']['mean']:.3f}" if summary.get("ssim") else "n/a")
        line["Run"] = run.name
        lines.append(line)
    return pd.DataFrame(lines)


def report(table: str, spec: dict, frame: pd.DataFrame, profile: str, sets: list[str],
           missing: list[str]) -> tuple[str, str]:
    """(one-line caption, Markdown file) of a reproduced table, with the command that made it."""
    note = (f"{spec['title']}. Profile '{profile}'"
            + ("" if profile == "paper" else ": smaller nets and shorter training than the paper, "
               "so compare the ranking, not the absolute values") + ".")
    command = " ".join(["benchsr reproduce", table, "--profile", profile,
                        *sum((["--set", s] for s in sets), [])])
    md = f"# {table}\n\n{note}\n\nMade by `{command}`.\n\n{frame.to_markdown(index=False, disable_numparse=True)}\n"
    if missing:
        md += f"\nFailed rows (see their run folders): {', '.join(missing)}\n"
    return note, md


def check_known(name: str, tables: dict) -> dict:
    if name not in tables:
        raise BenchError(f"unknown paper table '{name}' (available: {', '.join(sorted(tables)) or 'none'})")
    return tables[name]
