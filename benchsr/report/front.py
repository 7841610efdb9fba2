"""The front page of a results folder (README.md): the answer first, one short ranked table per
task, each with its verdict against the best, its cost, one sentence on what the evidence
covers and a link to the full table. Written by `benchsr leaderboard` from the same groups as
leaderboard.md, so it never disagrees with it; a README.md that benchsr did not write is never
overwritten.
"""
from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from benchsr.report import layout
from benchsr.report.tables import Group, seeds_text
from benchsr.results import cpu_name

MARK = "<!-- written by `benchsr leaderboard`; edits are lost at the next build -->"


def _number(stats: pd.Series | None, digits: int) -> str:
    if stats is None or pd.isna(stats["mean"]):
        return "n/a"
    return f"{stats['mean']:.{digits}f} ± {stats['std']:.{digits}f}"


def _failed(rec: dict) -> str:
    """Why a row has no number: its runs failed (the newest one's reason, in a few words)."""
    runs = rec.get("seed_runs") or [rec]
    failed = [r for r in runs if r["manifest"].get("status") == "failed"]
    if not failed:
        return "no result (see the full table)"
    reason = str(rec["manifest"].get("reason") or failed[0]["manifest"].get("reason") or "?")
    return (f"no result: {len(failed)} of {len(runs)} run(s) failed "
            f"({reason.replace('BenchError: ', '').split(':')[0][:60]})")


def _verdict(stats: pd.Series | None, rec: dict) -> str:
    """A row's PSNR against the group's best, in the leaderboard's words (Holm over the group)."""
    if stats is None or pd.isna(stats["mean"]):
        return _failed(rec)
    if stats["best"]:
        return "best"
    word = stats["verdict_vs_best"] or "n/a"
    if word == "no detectable difference" and pd.notna(stats["mde_vs_best"]):
        word += f" (MDE {stats['mde_vs_best']:.2f} dB)"
    return word


def _cost(numbers: pd.DataFrame, label: str, key: str) -> str:
    row = numbers[numbers["label"] == label]
    value = row[key].iloc[0] if not row.empty else None
    return "-" if value is None or pd.isna(value) else f"{value:.1f}"


def ranked(group: Group) -> pd.DataFrame:
    """The group's rows by PSNR, best first: PSNR, SSIM, verdict against the best, runs, cost."""
    numbers = group.quality.numbers
    by = {m: numbers[numbers["metric"] == m].set_index("label") for m in ("psnr", "ssim")}
    recs = {rec["manifest"]["label"]: rec for rec in group.runs}
    lines = []
    for label in group.quality.cells["Method"]:
        psnr = by["psnr"].loc[label] if label in by["psnr"].index else None
        ssim = by["ssim"].loc[label] if label in by["ssim"].index else None
        lines.append({"#": "-" if psnr is None or pd.isna(psnr["rank"]) else f"{int(psnr['rank'])}",
                      "Method": label, "PSNR (dB)": _number(psnr, 2), "SSIM": _number(ssim, 3),
                      "PSNR against the best": _verdict(psnr, recs[label]),
                      "Training runs": "-" if psnr is None else seeds_text(psnr),
                      "Train s / epoch": _cost(group.cost.numbers, label, "s_per_epoch"),
                      "Infer ms / slice": _cost(group.cost.numbers, label, "ms_per_slice")})
    return pd.DataFrame(lines)


def evidence(group: Group) -> str:
    """One sentence: the patients, the training runs, the profile, and what to beware of."""
    volumes = group.evaluation or "volumes not recorded."
    psnr = group.quality.numbers[group.quality.numbers["metric"] == "psnr"]
    seeds = sorted({int(n) for n in psnr["n_seeds"].dropna() if n})
    runs = ((f"{seeds[0]}" if len(seeds) == 1 else f"{seeds[0]} to {seeds[-1]}")
            + " training run(s) per trained method") if seeds else "no method here trains"
    warn = [c.split(":")[0] for c in group.caveats if c.startswith(("MIXED CODE", "Config variants"))]
    return (f"Evidence: {volumes.rstrip('.')}; {runs}; profile "
            f"{group.profile}" + (" (SIMULATED data)" if group.simulated else "")
            + (f"; {', '.join(warn).lower()}: see the full table" if warn else "") + ".")


def _section(group: Group, link: str) -> list[str]:
    return [f"## {group.title}", "", layout.prose(evidence(group)), "",
            layout.table(ranked(group)), "", f"Full table, costs, provenance and figures: [{link}]({link}).",
            ""]


def _machine() -> str:
    return f"{cpu_name()}, {os.cpu_count()} cores"


def page(shown: list[Group], elsewhere: list[Group], anchors: dict[int, str], folder: Path,
         code: dict) -> str:
    """The front page: `shown` groups as ranked tables, `elsewhere` as links, then the reports
    and history the folder holds. `anchors`: id(group) -> its link into leaderboard.md."""
    commit = (code.get("commit") or "unknown")[:10] + ("+dirty" if code.get("dirty") else "")
    lines = [MARK, "# Results: the current answer", "", layout.prose(
        f"Built by `benchsr leaderboard` at commit {commit} on {_machine()}, "
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, from the run folders under runs/ only. One "
        "table per task (dataset, track, design, profile), rows ranked by PSNR (mean ± sd over "
        "training runs; rank 1 is best). 'Against the best' is the leaderboard's test of each row "
        "against the best one, Holm-corrected over the task: worse than the best, no detectable "
        "difference (with the smallest difference the test could detect, MDE), or untestable. "
        "Cost: median training seconds per epoch and inference milliseconds per slice, on the "
        "machine each run used."), ""]
    for group in shown:
        lines += _section(group, anchors[id(group)])
    if elsewhere:
        lines += ["## Also on the leaderboard", ""]
        lines += [f"- [{g.title}]({anchors[id(g)]}): {len(g.quality.cells)} rows" for g in elsewhere]
        lines.append("")
    reports = sorted((folder / "reproduce").glob("*.md")) if (folder / "reproduce").is_dir() else []
    more = [("leaderboard.md", "every table in full; leaderboard.html, the same in a browser"),
            ("leaderboard-archive.md", "superseded protocols"),
            *((f"reproduce/{r.name}", "a paper table reproduced, with its claims") for r in reports),
            *((("HISTORY.md", "the dated narrative and superseded numbers"),)
              if (folder / "HISTORY.md").is_file() else ())]
    lines += ["## More", "", *[f"- [{name}]({name}): {what}" for name, what in more]]
    known = {"README.md", "runs", "leaderboard", "reproduce", "leaderboard.html", *(n for n, _ in more)}
    others = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir()
                    if p.name not in known and not p.name.startswith("."))
    if others:
        lines.append("- also here: " + ", ".join(f"[{n}]({n})" for n in others)
                     + (" (HISTORY.md says what each holds)" if (folder / "HISTORY.md").is_file() else ""))
    return "\n".join(lines + [""])


def ours(path: Path) -> bool:
    """Whether a README.md there may be (re)written: absent, or written by benchsr."""
    return not path.exists() or path.read_text(errors="replace").startswith(MARK)
