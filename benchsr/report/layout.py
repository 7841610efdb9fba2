"""Markdown a reader can use in any viewer: no line over MAX_LINE characters. Prose is wrapped;
a wide table is split into tables of fewer columns, each repeating the first (the method); a
cell too long for a table goes to a numbered note under it; a `Notes` column becomes a list."""
from __future__ import annotations

import textwrap

import pandas as pd

MAX_LINE = 300      # the longest Markdown line any page of the leaderboard has
PROSE = 100         # prose is wrapped here
LONG_CELL = 90      # a cell longer than this is a note under the table


def prose(text: str) -> str:
    """A paragraph wrapped at PROSE characters (Markdown joins the lines again)."""
    return "\n".join(textwrap.wrap(text, PROSE, break_long_words=False, break_on_hyphens=False))


def bullet(head: str, text: str) -> str:
    """A list item `- **head**: text`, wrapped, its continuation lines indented."""
    return "\n".join(textwrap.wrap(f"- **{head}**: {text}", PROSE, subsequent_indent="  ",
                                   break_long_words=False, break_on_hyphens=False))


def _width(cells: pd.DataFrame) -> int:
    """Characters of the widest line pandas' to_markdown gives these columns (measured: its
    padding is not a fixed 3 per column)."""
    return longest_line(cells.to_markdown(index=False, disable_numparse=True))


def _chunks(cells: pd.DataFrame) -> list[pd.DataFrame]:
    """Column groups, each with the first column, each within MAX_LINE."""
    key, rest = cells.columns[0], list(cells.columns[1:])
    out, current = [], [key]
    for col in rest:
        if len(current) > 1 and _width(cells[current + [col]]) > MAX_LINE:
            out.append(cells[current])
            current = [key]
        current.append(col)
    out.append(cells[current])
    return out


def table(cells: pd.DataFrame, notes_column: str = "Notes") -> str:
    """`cells` (strings, already escaped and emphasised) as one or more Markdown tables, with
    long cells as numbered notes and the `notes_column` as a list under them."""
    cells = cells.astype(str).copy()
    listed = []
    if notes_column in cells.columns:
        listed = [(row[cells.columns[0]], row[notes_column]) for _, row in cells.iterrows()
                  if row[notes_column].strip() not in ("", "-", "nan")]
        cells = cells.drop(columns=[notes_column])
    notes: list[str] = []

    def shorten(value: str) -> str:
        if len(value) <= LONG_CELL:
            return value
        notes.append(value)
        return f"note {len(notes)}"

    cells = cells.map(shorten)
    parts = [chunk.to_markdown(index=False, disable_numparse=True) for chunk in _chunks(cells)]
    lines = [bullet(f"note {i}", text) for i, text in enumerate(notes, 1)]
    lines += [bullet(str(head), text) for head, text in listed]
    return "\n\n".join(parts + (["\n".join(lines)] if lines else []))


def longest_line(text: str) -> int:
    return max((len(line) for line in text.splitlines()), default=0)
