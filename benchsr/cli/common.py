"""What every `benchsr` command shares: the Typer app, the consoles, progress bars, the
results folder check and the leaderboard print. The commands live in main.py (running, tables,
infer) and models.py (outside predictions and weights). Heavy imports stay inside the commands,
so `benchsr --help`, `list` and a bad argument answer quickly."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)

from benchsr.errors import BenchError

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None,
                  help="Super-resolution benchmark suite for CT.")
# wide tables stay readable when the output is a file or a CI log
# no markup, no emoji codes: user text ('bi[/red]cubic', '[bold].nii', 'cuda:-1:') prints as
# given; styles are rich Text objects
console = Console(width=None if sys.stdout.isatty() else 200, markup=False, emoji=False)
err_console = Console(stderr=True, markup=False, emoji=False)


def progress_bars() -> Progress:
    return Progress(TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                    console=console, transient=False)


def exit_unless_complete(outcomes: list[tuple[str, str, str]]) -> None:
    """(label, status, reason) of each run: when one did not complete, one line on stderr that
    names it and why, and exit 1 (the rows of the tables say the same)."""
    bad = [(label, status, reason) for label, status, reason in outcomes if status != "complete"]
    if not bad:
        return
    said = "; ".join(f"{label} {status}" + (f": {' '.join(str(reason).split())[:160]}" if reason else "")
                     for label, status, reason in bad)
    err_console.print(f"error: {len(bad)} of {len(outcomes)} run(s) did not complete: {said}",
                      highlight=False, soft_wrap=True)
    raise typer.Exit(1)


def check_data_dir(data_dir: Path | None) -> None:
    if data_dir is not None and not (data_dir.is_dir() and os.access(data_dir, os.R_OK | os.X_OK)):
        raise BenchError(f"--data-dir {data_dir}: not a readable folder")


def check_out_folder(out: Path) -> None:
    """--out must be a folder this process can write into (or be creatable), before any work."""
    if out.exists() and not out.is_dir():
        raise BenchError(f"--out {out}: is a file, not a folder")
    existing = out if out.exists() else next((p for p in out.parents if p.exists()), Path("."))
    if not os.access(existing, os.W_OK | os.X_OK):
        raise BenchError(f"--out {out}: {existing} is not writable")


def beside_runs(runs: list[Path] | None) -> Path:
    """Where a leaderboard of `runs` goes by default: the folder that holds their `runs` folder
    (as `run --out X` writes X/runs), else the folder that holds them all; results/ for none."""
    if not runs:
        return Path("results")
    common = Path(os.path.commonpath([p.resolve() for p in runs]))
    for folder in (common, *common.parents):
        if folder.name == "runs":
            return folder.parent
    return common if (common / "runs").is_dir() or len(runs) > 1 else common.parent


def show_leaderboard(root: Path, runs: list[Path] | None = None) -> None:
    from benchsr.report import publish   # lazy: tables pull in scipy, matplotlib and torch
    found = publish.build(runs or [root / "runs"], root)
    for table in publish.rich_tables(found):
        console.print(table)
    console.print(f"leaderboard: {root / 'leaderboard.md'} and {root / 'leaderboard.html'}")


def show_reproduced(title: str, frame, claims, path: Path) -> None:
    """A reproduced paper table and its claims' verdicts, as written to `path`."""
    from rich.table import Table
    table = Table(title=title)
    for col in frame.columns:
        table.add_column(col, overflow="fold")
    for _, row in frame.iterrows():
        table.add_row(*map(str, row))
    console.print(table)
    if not claims.empty:
        console.print(claims.to_string(index=False))
    console.print(f"written: {path}")
