"""Writes the leaderboard from run folders: Markdown, CSV, LaTeX (booktabs, best value in bold)
and one static HTML page with the comparison grids and loss curves embedded.

<root>/README.md (front.py: the answer first, unless a README.md benchsr did not write is
there), <root>/leaderboard.md, <root>/leaderboard.html and, per dataset, protocol, profile and
checkpoint kind, <root>/leaderboard/<dataset>-<protocol>-<profile>[-best-val]-{quality,stats,cost,provenance}.csv,
-{quality,cost}.tex and -grid.png.
"""
from __future__ import annotations

import base64
import html
import os
import re
import shutil
import uuid
from pathlib import Path

import pandas as pd

from benchsr.evaluation.clinical import LUNG_MASK_RULE, MIN_TISSUE_PIXELS, TISSUES_HU
from benchsr.evaluation.metrics import METRICS
from benchsr.report import figures, front, layout, planes
from benchsr.report.order import reading_order
from benchsr.report.curves import TREND_RULE, stops_frame
from benchsr.report.rows import load_runs
from benchsr.report.tables import (SIGNIFICANCE, WORSE_MARK, Group, Table, direction_sentence,
                                   groups, ranked_titles, tests_table)
from benchsr.results import code_version, staging_folder, write_text


def legend() -> str:
    return (f"Cells: mean ± sd [95 % CI] #rank; best in bold. The mean is over training runs "
            f"(seeds) of each run's mean over volumes (patients) of its per-slice values; with one "
            f"volume, over its blocks of neighbouring slices. The ± is the sd between seeds; for a "
            f"row with no training or one seed, between its volumes (or blocks); with one of those, "
            f"over images. `Seeds` says 'no training', or the seeds counted and any that failed. "
            f"The CI is never narrower than any t interval of the units sampled: t(R−1) over the "
            f"seeds, t(L−1) over the volumes (or blocks), and t on both combined, nor than a "
            f"two-level bootstrap; 'CI covers' names the design, or why there is no interval "
            f"(docs/leaderboard.md has the model per design). {WORSE_MARK} = worse than the best "
            f"row by the same parts (Holm over every test of the group, p < {SIGNIFICANCE}); "
            f"'Tests against the best' gives each effect with its CI at its Holm level, P(better), "
            f"verdict, MDE and planning. Compute is in GMACs (multiply-adds; "
            f"FLOPs = 2 x MACs). {direction_sentence()}.")   # built when asked: the registry may grow


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                  "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                  "^": r"\textasciicircum{}", "±": r"$\pm$", WORSE_MARK: r"$^\dagger$",
                  "→": r"$\rightarrow$", "µ": r"$\mu$", "×": r"$\times$"}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))


def _render(table: Table, escape, bold) -> pd.DataFrame:
    out = table.cells.astype(str).map(escape)
    return out.mask(table.best, out.map(bold))


def _shown(cells: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """A group's table as a page shows it, and a note for under it: every row has the group's
    profile, so no column says it; a metric no row could compute is one note ("every row:
    LPIPS: n/a: weights not found"), not a column of the same words, nor a row of the table."""
    cells = cells.drop(columns=[c for c in ("Profile",) if c in cells.columns])
    absent = [c for c in cells.columns[1:] if cells[c].nunique() == 1
              and str(cells[c].iloc[0]).startswith("n/a") and len(cells) > 1]
    said = "; ".join(f"{c}: {cells[c].iloc[0]}" for c in absent)
    return cells.drop(columns=absent), said


def markdown(table: Table) -> str:
    cells, said = _shown(_render(table, lambda s: s.replace("|", "\\|"), lambda s: f"**{s}**"))
    text = layout.table(cells)
    gap = "\n\n" if text.splitlines()[-1].startswith("|") else "\n"   # a list after a table, or in its list
    return text + (gap + layout.bullet("every row", said) if said else "")


def latex(table: Table, caption: str) -> str:
    cells = _render(table, latex_escape, lambda s: rf"\textbf{{{s}}}")
    cells.columns = [latex_escape(c) for c in cells.columns]
    return cells.to_latex(index=False, escape=False, caption=latex_escape(caption), position="t")


_INTERVAL = re.compile(r"\s*\[[^\]]*\]")     # ' [23.65, 24.19]': the 95 % CI


def paper_latex(table: Table, caption: str) -> str:
    """The quality table as a paper shows it: the method (its label whole: an environment's
    change of recipe stays in it), the runs behind each row and, per metric that has numbers,
    its mean ± sd, rank and significance marker; no interval, note, path or provenance."""
    titles = {m.title for m in METRICS.values()}
    metric_cols = [c for c in table.cells.columns if c in titles
                   and table.cells[c].astype(str).str.contains(r"\d", regex=True).any()]
    keep = ["Method", *metric_cols, *[c for c in ("Seeds",) if c in table.cells.columns]]
    cells = table.cells[keep].astype(str)
    cells[metric_cols] = cells[metric_cols].map(lambda s: _INTERVAL.sub("", s))
    rendered = _render(Table(cells, table.best[keep]), latex_escape, lambda s: rf"\textbf{{{s}}}")
    rendered.columns = [latex_escape(c) for c in rendered.columns]
    note = (" Mean $\\pm$ sd over training runs (seeds); \\#: rank; $^\\dagger$: worse than the "
            "best by a Holm-corrected test.")
    return rendered.to_latex(index=False, escape=False, position="t",
                             caption=latex_escape(caption) + note)


def html_table(table: Table) -> str:
    """The table, its cells on one line each (the page scrolls sideways instead), with a
    `Notes` column as a list under it."""
    cells, said = _shown(_render(table, html.escape, lambda s: f"<strong>{s}</strong>"))
    notes = []
    if "Notes" in cells.columns:
        notes = [(row[cells.columns[0]], row["Notes"]) for _, row in cells.iterrows()
                 if str(row["Notes"]).strip() not in ("", "-")]
        cells = cells.drop(columns=["Notes"])
    notes += [("every row", said)] if said else []
    out = ('<div class="scroll">' + cells.to_html(index=False, escape=False, border=0,
                                                  classes="board") + "</div>")
    if notes:
        out += '<ul class="note">' + "".join(f"<li><strong>{head}</strong>: {text}</li>"
                                             for head, text in notes) + "</ul>"
    return out


def _img(path: Path, alt: str, css: str = "") -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}"{f" class={css!r}" if css else ""}>'


def _protocol_line(group: Group) -> str:
    return ", ".join(f"{k}={v}" for k, v in group.protocol.items())


def _grid(group: Group, folder: Path) -> Path | None:
    order = {label: i for i, label in enumerate(group.quality.cells["Method"])}
    runs = sorted(group.runs, key=lambda r: order.get(r["manifest"]["label"], len(order)))
    png = folder / f"{group.stem}-grid.png"
    draw = planes.leaderboard_grid if group.protocol.get("plane") == "through" else \
        figures.dataset_grid
    return png if draw(runs, png, group.title) else None


def _tables(group: Group) -> list[tuple[str, Table]]:
    return [("quality", group.quality), *([("clinical", group.clinical)] if group.clinical else []),
            ("cost", group.cost)]


def clinical_legend(group: Group) -> str:
    """What the clinical table measures, and what it could not here."""
    units = group.protocol.get("hr_units", "HU")
    text = (f"Errors are in {units}, in the HR domain's window (values outside it are clipped "
            f"before scoring, as the method sees them). Tissue classes of the HR image: "
            + ", ".join(f"{k} [{lo:g}, {hi:g}) HU" for k, (lo, hi) in TISSUES_HU.items())
            + f" (a class with under {MIN_TISSUE_PIXELS} pixels in a slice is not scored). "
            f"Body-masked PSNR/SSIM use the dataset's body mask; {LUNG_MASK_RULE}; the per-volume "
            f"scores stack each volume's evaluation slices (3D SSIM: MONAI, Gaussian sigma 1.5).")
    if group.clinical_absent:
        text += " Not computed here: " + ", ".join(group.clinical_absent) + (
            " (no HU classes in these units, no body mask, or too few slices per volume).")
    return text


TESTS_NOTE = ("Each row against the group's best on each ranked metric: the effect (this row "
              "minus the best) with its CI at the level of its step in Holm's sequence over the "
              "group's tests (so it excludes 0 where the adjusted p is below 0.05), P(better than "
              "the best) over pairs of runs, the verdict, and the MDE of this test; planning MDEs "
              "come from the seed sd at 3, 5 and 10 seeds (never power at the observed effect).")


def _tests(group: Group) -> pd.DataFrame:
    units = group.protocol.get("hr_units", "HU")
    return tests_table(group.quality, ranked_titles("paper", units))


def _write_group_files(group: Group, folder: Path, stops: pd.DataFrame) -> None:
    for kind, table in (*_tables(group), ("provenance", group.provenance)):
        write_text(folder / f"{group.stem}-{kind}.csv", table.cells.to_csv(index=False))
    write_text(folder / f"{group.stem}-stats.csv", group.quality.numbers.to_csv(index=False))
    if group.clinical:
        write_text(folder / f"{group.stem}-clinical-stats.csv",
                   group.clinical.numbers.to_csv(index=False))
    if not stops.empty:
        write_text(folder / f"{group.stem}-curves.csv", stops.to_csv(index=False))
    for kind, table in _tables(group):
        write_text(folder / f"{group.stem}-{kind}.tex",
                   latex(table, f"{group.title}: {kind} (protocol {group.key})"))
    write_text(folder / f"{group.stem}-quality-paper.tex",
               paper_latex(group.quality, f"{group.title}: image quality."))


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5em 2em; max-width: 1600px; }}
h1 {{ margin: 0 0 .3em; }} h2 {{ margin-top: 2em; border-top: 2px solid #ccc; padding-top: .6em; }}
.scroll {{ overflow-x: auto; margin-bottom: 1em; }}
table.board {{ border-collapse: collapse; font-size: 13px; }}
table.board th, table.board td {{ padding: 3px 8px; border-bottom: 1px solid #ddd; text-align: left;
  white-space: nowrap; }}
table.board th {{ background: #f3f3f3; }}
img {{ max-width: 100%; border: 1px solid #ccc; margin: 4px 0; }}
img.grid {{ max-width: none; }}
.losses img {{ max-width: 48%; }}
.note {{ color: #555; font-size: 13px; }}
nav ul {{ columns: 2; margin: .3em 0; font-size: 14px; }}
</style></head>
<body>
<h1>{title}</h1>
<p class="note">{intro}</p>
<nav><ul>{toc}</ul></nav>
{sections}
<h2 id="reading">How to read the cells</h2>
<p class="note">{legend}</p>
<script>
// self-checks read by the test suite's headless browser: images decoded, cells that wrap, images
// shown smaller than drawn, and whether the first ranking is on the first screen
window.addEventListener("load", () => {{
  const imgs = Array.from(document.images);
  const d = document.body.dataset;
  d.imagesLoaded = imgs.filter(i => i.complete && i.naturalWidth > 0).length + "/" + imgs.length;
  const cells = Array.from(document.querySelectorAll("table.board td"));
  const line = cells.length ? Math.min(...cells.map(c => c.getBoundingClientRect().height)) : 0;
  d.wrappedCells = cells.filter(c => c.getBoundingClientRect().height > 1.6 * line).length;
  d.shrunkGrids = imgs.filter(i => i.alt.endsWith("comparison grid") && i.width < 0.95 * i.naturalWidth).length;
  const first = document.querySelector("section table.board");
  d.firstTableTop = first ? Math.round(first.getBoundingClientRect().top) : -1;
  d.firstSection = (document.querySelector("section h2") || {{}}).textContent || "";
  d.viewport = window.innerWidth + "x" + window.innerHeight;
}});
</script>
</body></html>
"""


def _curves(group: Group, folder: Path) -> Path | None:
    png = folder / f"{group.stem}-curves.png"
    title = f"{group.title}: validation PSNR during training (seeds as bands)"
    return png if figures.curves_plot(group.runs, png, title) else None


def evidence(group: Group) -> str:
    """One sentence on what the group's numbers stand on."""
    volumes = group.evaluation
    return (f"{len(group.quality.cells)} rows at profile {group.profile or '?'}, protocol {group.key}"
            + (" (SIMULATED data)" if group.simulated else "") + (f". Evaluation: {volumes}"
                                                                    if volumes else "."))


def _html_section(group: Group, grid: Path | None, curves: Path | None,
                  stops: pd.DataFrame, heading: str) -> str:
    parts = [f'<section id="{group.stem}"><h2>{html.escape(heading)}</h2>',
             f'<p class="note">{html.escape(evidence(group))}</p>',
             *[f'<p class="note"><strong>{html.escape(line)}</strong></p>' for line in group.caveats
               if not line.startswith("Evaluation:")]]
    if group.simulated:
        parts.append('<p class="note"><strong>SIMULATED data</strong>: numbers and pictures '
                     "come from a simulated specimen, not from a scanner.</p>")
    parts += ["<h3>Ranking</h3>", html_table(group.quality)]
    tests = _tests(group)
    if not tests.empty:
        parts += ["<h3>Tests against the best</h3>", f'<p class="note">{html.escape(TESTS_NOTE)}</p>',
                  '<div class="scroll">' + tests.to_html(index=False, escape=True, border=0,
                                                         classes="board") + "</div>"]
    if grid is not None:
        parts += ["<h3>Comparison</h3>", '<div class="scroll">'
                  + _img(grid, f"{group.title} comparison grid", "grid") + "</div>"]
    if group.clinical:
        parts += ["<h3>Clinical measures</h3>",
                  f'<p class="note">{html.escape(clinical_legend(group))}</p>',
                  html_table(group.clinical)]
    if curves is not None:
        parts += ["<h3>Learning curves</h3>", _img(curves, f"{group.title} learning curves")]
    if not stops.empty:
        parts += ["<h3>Where each method stops on its curve</h3>",
                  f'<p class="note">{html.escape(TREND_RULE)}.</p>',
                  '<div class="scroll">' + stops.to_html(index=False, escape=True, border=0,
                                                         classes="board") + "</div>"]
    parts += ["<h3>Cost</h3>", html_table(group.cost), "<h3>Provenance</h3>",
              html_table(group.provenance), "<h3>Protocol</h3>",
              f'<p class="note">{html.escape(_protocol_line(group))}</p>']
    losses = [(r["manifest"]["label"], r["dir"] / "losses.png") for r in group.runs]
    losses = [(label, p) for label, p in losses if p.is_file()]
    if losses:
        parts += ["<h3>Training losses</h3>", '<div class="losses">']
        parts += [_img(p, f"{label} training losses") for label, p in losses]
        parts.append("</div>")
    return "\n".join(parts + ["</section>"])


def _md_section(group: Group, grid: Path | None, curves: Path | None, stops: pd.DataFrame,
                heading: str, lead: str = "") -> list[str]:
    md = [f"## {heading}", "", *([layout.prose(lead), ""] if lead else []),
          layout.prose(evidence(group)), "",
          *[f"**{layout.prose(line)}**\n" for line in group.caveats if not line.startswith("Evaluation:")],
          "### Ranking", "", markdown(group.quality), ""]
    tests = _tests(group)
    if not tests.empty:
        md += ["### Tests against the best", "", layout.prose(TESTS_NOTE), "", layout.table(tests), ""]
    for pic, alt in ((grid, "comparison"), (curves, "learning curves")):
        if pic is not None:     # where the folder will be once swapped in
            md += [f"![{group.title} {alt}](leaderboard/{pic.name})", ""]
    if group.clinical:
        md += ["### Clinical measures", "", layout.prose(clinical_legend(group)), "",
               markdown(group.clinical), ""]
    if not stops.empty:
        md += ["### Where each method stops on its curve", "", layout.prose(TREND_RULE + "."), "",
               layout.table(stops), ""]
    md += ["### Cost", "", markdown(group.cost), "", "### Provenance", "",
           markdown(group.provenance), "", "### Protocol", "",
           *[layout.bullet(k, str(v)) for k, v in group.protocol.items()], ""]
    return md


def anchor(heading: str) -> str:
    """The id GitHub's Markdown gives a heading."""
    keep = "".join(ch for ch in heading.lower() if ch.isalnum() or ch in " -_")
    return keep.replace(" ", "-")


ARCHIVE = "leaderboard-archive.md"


def build(paths: list[Path], out_root: Path) -> list[Group]:
    """Build every table and picture from the run folders under `paths` into a fresh folder,
    then swap it in for <out_root>/leaderboard: a crash never leaves a half-built leaderboard,
    and no file of a group that no longer exists survives a rebuild. leaderboard.md and .html
    show the current protocol of each task; leaderboard-archive.md the superseded ones."""
    out_root.mkdir(parents=True, exist_ok=True)
    folder = staging_folder(out_root, ".leaderboard-new-")
    os.chmod(folder, 0o755)             # mkdtemp makes it private; a leaderboard is to be read
    try:
        found, current, md, archive, page = _build_into(paths, folder)
        _swap(folder, out_root / "leaderboard")
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    write_text(out_root / "leaderboard.md", "\n".join(md) + "\n")
    write_text(out_root / ARCHIVE, "\n".join(archive) + "\n")
    write_text(out_root / "leaderboard.html", page)
    if front.ours(out_root / "README.md"):
        write_text(out_root / "README.md", front_page(current, out_root))
    return found


def front_page(current: list[Group], folder: Path) -> str:
    """README.md from the current groups in reading order: each task's ranking (last
    checkpoints of the methods as shipped, smoke runs only where nothing longer ran), then links
    to the other current sections."""
    ranked = [g for g in current if g.checkpoint == "last" and not g.variants]
    shown = [g for g in ranked if g.profile != "smoke"] or ranked
    anchors = {id(g): f"leaderboard.md#{anchor(g.title)}" for g in current}
    return front.page(shown, [g for g in current if g not in shown], anchors, folder,
                      code_version())


INTRO = ("Built by `benchsr leaderboard` from run folders only (per-image values and provenance "
         "are in each run folder). One section per task (dataset, track, profile), on its "
         "current protocol, the default dataset's real scans first and simulated data last; "
         f"superseded protocols are in {ARCHIVE}.")


def _build_into(paths: list[Path], folder: Path
                ) -> tuple[list[Group], list[Group], list[str], list[str], str]:
    """The group files written into `folder`; every group, the current ones in reading order,
    leaderboard.md's lines, the archive's lines and the HTML page."""
    found = groups(load_runs(paths))
    current, superseded = reading_order(found)
    md = ["# benchsr leaderboard", "", layout.prose(INTRO), ""]
    archive = ["# benchsr leaderboard: superseded protocols", "",
               layout.prose("Groups whose protocol a newer one of the same task replaced, each "
                            "under what changed. Their runs are kept and counted here; the "
                            "current tables are in leaderboard.md."), ""]
    toc, sections = [], []
    for group in [*current, *(s.group for s in superseded)]:
        stops = stops_frame(group.runs)   # reads every run's curve.csv: once per group
        _write_group_files(group, folder, stops)
        grid, curves = _grid(group, folder), _curves(group, folder)
        old = next((s for s in superseded if s.group is group), None)
        if old is None:
            md_lines = _md_section(group, grid, curves, stops, group.title)
            toc.append((group.title, group.stem, len(group.quality.cells)))
            sections.append(_html_section(group, grid, curves, stops, group.title))
            md += md_lines
        else:
            archive += _md_section(group, grid, curves, stops,
                                   f"{group.title}: protocol {group.key} (superseded)",
                                   f"Superseded by protocol {old.by.key}, which changed: {old.changes}.")
    md[4:4] = ["Contents:", "",
               *[f"- [{title}](#{anchor(title)}): {n} rows" for title, _, n in toc],
               f"- [{ARCHIVE}]({ARCHIVE}): {len(superseded)} superseded group(s)",
               "- [How to read the cells](#how-to-read-the-cells)", ""]
    md += ["## How to read the cells", "", layout.prose(legend()), ""]
    if not found:
        md.append("No finished runs yet.")
        sections.append("<p>No finished runs yet.</p>")
    if not superseded:
        archive.append("None.")
    items = [f'<li><a href="#{stem}">{html.escape(title)}</a> ({n} rows)</li>' for title, stem, n in toc]
    items += [f'<li><a href="{ARCHIVE}">superseded protocols</a> ({len(superseded)})</li>',
              '<li><a href="#reading">how to read the cells</a></li>']
    page = PAGE.format(title="benchsr leaderboard", intro=html.escape(INTRO), toc="".join(items),
                       sections="\n".join(sections), legend=html.escape(legend()))
    return found, current, md, archive, page


def _swap(new: Path, final: Path) -> None:
    """`new` renamed to `final`; the old folder, if any, moved aside first and removed after."""
    old = None
    if final.exists():
        old = final.with_name(f".leaderboard-old-{uuid.uuid4().hex[:8]}")
        os.rename(final, old)
    os.rename(new, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def rich_tables(found: list[Group]) -> list:
    from rich.table import Table as RichTable
    from rich.text import Text
    out = []
    for group in found:
        for kind, table in _tables(group):
            t = RichTable(title=f"{group.title}: {kind}")
            for col in table.cells.columns:
                t.add_column(str(col), overflow="fold")
            for (_, row), (_, best) in zip(table.cells.iterrows(), table.best.iterrows()):
                t.add_row(*[Text(str(v), style="bold" if b else "") for v, b in zip(row, best)])
            out.append(t)
    return out
