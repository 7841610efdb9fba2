"""`benchsr reproduce TABLE`: a paper's table as runs, printed beside the published numbers.

A method plugin may ship `paper_tables.yaml` beside its module: table name -> title, an
optional note (printed under it), dataset, rows (name, METHOD[:PRESET], optional `set`
overrides, the published metric values) and claims (orderings the paper states, judged by
claims.py). Each row is run once per config and seed: a finished run with the same config under
<out>/runs is reused, and rows whose configs coincide at the profile run are one condition.
`--dataset` runs a table's rows on another dataset, at that dataset's scale, and says so.
"""
from __future__ import annotations

import inspect
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from benchsr import config, registry, results
from benchsr.errors import BenchError
from benchsr.evaluation.metrics import METRICS


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


def row_configs(spec: dict, profile: str, extra: list[str], dataset: str | None = None,
                seeds: list | None = None) -> list[tuple[dict, type, dict]]:
    """(row, method class, resolved config) for each row of a table and each seed, on the
    table's dataset or on `dataset`."""
    ds_cls = registry.get("datasets", dataset or spec["dataset"])
    out = []
    for row in spec["rows"]:
        name, _, preset = row["method"].partition(":")
        cls = registry.get("methods", name)
        sets = row.get("set") or {}
        overrides = [f"{k}={v}" for k, v in sets.items()] + list(extra)
        if sets:
            overrides.append(f"variant={_variant(sets)}")
        for seed in seeds or [None]:
            seeded = overrides + ([f"seed={seed}"] if seed is not None else [])
            out.append((row, cls, config.resolve(cls, preset or "default", ds_cls, profile, seeded)))
    return out


def same_config_rows(rows: list[tuple[dict, type, dict]]) -> dict[str, str]:
    """Row name -> the earlier row whose resolved config it equals (its variant label aside). A
    profile may already set what a row changes (quick trains 6 res-blocks on 24 px patches, as
    Table 7's rows 2 and 6 ask): such rows are one condition here, run once, never two."""
    owner: dict[str, str] = {}
    same = {}
    for row, _, cfg in rows:
        key = json.dumps({k: v for k, v in cfg.items() if k != "variant"}, sort_keys=True, default=str)
        first = owner.setdefault(key, row["name"])
        if first != row["name"]:
            same[row["name"]] = first
    return same


def settings_here(spec: dict, rows: list[tuple[dict, type, dict]]) -> dict[str, str]:
    """Row name -> the values, at this profile, of every key a row of the table sets: what each
    condition really trained with (a profile may shrink the paper's setting)."""
    keys = list(dict.fromkeys(k for row in spec["rows"] for k in (row.get("set") or {})))
    out: dict[str, str] = {}
    if not keys:
        return out
    for row, _, cfg in rows:
        values = []
        for key in keys:
            node = cfg
            for part in key.split("."):
                node = node.get(part) if isinstance(node, dict) else None
            values.append(f"{key.split('.')[-1]}={node}")
        out.setdefault(row["name"], ", ".join(values))
    return out


def same_config_lines(same: dict[str, str], profile: str, here: dict[str, str]) -> list[str]:
    """The report's header lines for rows that are another row's config at this profile."""
    by_owner: dict[str, list[str]] = {}
    for row, first in same.items():
        by_owner.setdefault(first, []).append(row)
    return [f"SAME CONFIG at profile '{profile}': {', '.join(rows)} {'is' if len(rows) == 1 else 'are'} "
            f"row {first}'s config here ({here.get(first, '')}): one condition, shown with that "
            f"row's runs; the claims between them are untestable at this profile"
            for first, rows in by_owner.items()]


def finished_run(root: Path, cfg: dict, failed_too: bool = False) -> Path | None:
    """The newest complete run of `cfg`; with `failed_too`, else the newest failed one that
    this code made (a degenerate seed fails the same way again: it is reported, not rerun; a
    failure of other code may have been fixed since, so that config runs again)."""
    label = results.run_label(cfg["method"], cfg["preset"], cfg["variant"])
    failed = None
    for run in results.same_config_runs(root, cfg["dataset"], label, cfg):
        try:
            manifest = results.read_json(run / "manifest.json")
        except (OSError, ValueError):
            continue
        if manifest.get("status") == "complete":
            return run
        if manifest.get("status") == "failed" and failed is None and _this_code(manifest):
            failed = run
    return failed if failed_too else None


def stopped_run(root: Path, cfg: dict) -> Path | None:
    """The newest run of `cfg` that neither completed nor failed (stopped by a signal, killed,
    or still being written): reproduce continues it rather than starting again."""
    label = results.run_label(cfg["method"], cfg["preset"], cfg["variant"])
    for run in results.same_config_runs(root, cfg["dataset"], label, cfg):
        try:
            status = results.read_json(run / "manifest.json").get("status")
        except (OSError, ValueError):
            status = None
        if status not in ("complete", "failed"):
            return run
    return None


def _this_code(manifest: dict) -> bool:
    """Whether the run was made by the code now checked out (its commit, with no local edits)."""
    made = manifest.get("provenance") or {}
    now = results.code_version()
    return bool(now["commit"]) and made.get("commit") == now["commit"] \
        and not made.get("dirty") and not now["dirty"]


def listed_runs(report: Path, root: Path, spec: dict) -> dict[str, list[Path | None]]:
    """Row name -> the run folders (under root/runs) that an earlier report of `spec`'s table
    lists, and the failed ones it names: a report rebuilt from the runs it stood on, when the
    code's configs have moved on since (a rerun would make new runs)."""
    if not report.is_file():
        raise BenchError(f"{report}: no such report")
    found = {p.name: p for p in (root / "runs").glob("*/*/*") if (p / "manifest.json").is_file()}
    text = report.read_text().splitlines()
    start = next((i for i, line in enumerate(text) if line.startswith("| Row ")), None)
    if start is None or "Runs" not in text[start]:
        raise BenchError(f"{report}: no table with Row and Runs columns")
    header = [c.strip() for c in text[start].strip("|").split("|")]
    out: dict[str, list[Path | None]] = {row["name"]: [] for row in spec["rows"]}
    for line in text[start + 2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        names = [n.strip() for n in cells[header.index("Runs")].split(",") if n.strip()]
        out[cells[header.index("Row")]] = [found.get(n) for n in names]
    folder = {row["name"]: row["method"].replace(":", "-") for row in spec["rows"]}
    for line in text:                              # the failed runs it named: still reported
        hit = re.match(r"^\**FAILED run ([^/]+)/(\S+?),", line)
        for row in (r for r in out if hit and folder.get(r) == hit.group(1) and hit.group(2) in found):
            out[row].append(found[hit.group(2)])
    return {row: runs or [None] for row, runs in out.items()}


def failure_lines(failed: dict[Path, str]) -> list[str]:
    """The report's header lines for failed runs: each row counts only its complete runs."""
    return [f"FAILED run {run.parent.name}/{run.name}, not counted in its row: {why}"
            for run, why in sorted(failed.items())]


def failed_runs(runs: list[Path]) -> dict[Path, str]:
    """The runs among `runs` that failed, with their reasons."""
    out = {}
    for run in runs:
        m = results.read_json(run / "manifest.json")
        if m.get("status") != "complete":
            out[run] = m.get("reason", m.get("status", "?"))
    return out


def _ours(summaries: list[dict], metric: str, digits: int, group: str = "") -> str:
    """One run: mean ± sd over images; several (seeds): mean ± sd of the per-seed means. `group`
    names a secondary evaluation set ("" = the primary one)."""
    stats = [results.set_stats(s, group).get(metric) or {} for s in summaries]
    means = [st["mean"] for st in stats if st.get("mean") is not None]
    if not means:
        return "n/a"
    if len(means) == 1:   # one run: its sd is over images, and says so
        return f"{means[0]:.{digits}f} ± {stats[0]['std']:.{digits}f} (1 seed; sd over images)"
    return f"{np.mean(means):.{digits}f} ± {np.std(means, ddof=1):.{digits}f} ({len(means)} seeds)"


def compare(rows: list[tuple[dict, list[Path]]], here: dict[str, str] | None = None) -> pd.DataFrame:
    """Published vs measured, one line per row of the paper's table (its runs: one per seed),
    with the paper's metrics on every secondary evaluation set the runs have (e.g. ct-uct's true
    cross-modality pairs beside the primary bicubic proxy); `here`: what each row trained with."""
    lines = []
    for row, runs in rows:
        summaries = [results.read_json(r / "summary.json") for r in runs]
        line = {"Row": row["name"],
                "Run label": results.display_label(results.read_json(runs[0] / "manifest.json"))}
        if here:
            line["Trained with"] = here.get(row["name"], "")
        for metric, paper in row["paper"].items():
            digits, title = METRICS[metric].digits, METRICS[metric].title
            line[f"{title}: paper"] = f"{paper:.2f}"
            line[f"{title}: ours"] = _ours(summaries, metric, digits)
        line["SSIM (windowed): ours"] = _ours(summaries, "ssim", 3)
        for group in sorted(set.intersection(*(set(s.get("groups") or {}) for s in summaries))):
            for metric in row["paper"]:
                if any((results.set_stats(s, group).get(metric) or {}).get("mean") is not None
                       for s in summaries):
                    line[f"{METRICS[metric].title}: ours, {group}"] = _ours(
                        summaries, metric, METRICS[metric].digits, group)
        line["Runs"] = ", ".join(r.name for r in runs)
        lines.append(line)
    return pd.DataFrame(lines).fillna("–")


def caveats(rows: list[tuple[dict, list[Path]]]) -> list[str]:
    """The table's header warnings (tables.caveats): how many volumes, and mixed code."""
    from benchsr.report.claims import as_row, records
    from benchsr.report.tables import caveats as table_caveats
    return table_caveats([as_row(records(runs), row["name"]) for row, runs in rows])


def clinical_frame(rows: list[tuple[dict, list[Path]]]) -> pd.DataFrame:
    """Our clinical measures (clinical.py) for each row, where its runs have them: the paper
    reports none, so they sit in a table of their own."""
    lines = []
    for row, runs in rows:
        summaries = [results.read_json(r / "summary.json") for r in runs]
        line = {"Row": row["name"]}
        for name, m in METRICS.items():
            if m.table == "clinical" and any((s.get(name) or {}).get("mean") is not None
                                             for s in summaries):
                line[m.title] = _ours(summaries, name, m.digits)
        lines.append(line)
    frame = pd.DataFrame(lines)
    return frame if frame.shape[1] > 1 else pd.DataFrame()


def report(table: str, spec: dict, frame: pd.DataFrame, profile: str, sets: list[str],
           missing: list[str], dataset: str | None = None, seeds: list | None = None,
           claims: pd.DataFrame | None = None, warnings: list[str] = (),
           clinical: pd.DataFrame | None = None) -> tuple[str, str]:
    """(one-line caption, Markdown file) of a reproduced table, with the command that made it."""
    elsewhere = dataset and dataset != spec["dataset"]
    note = (f"{spec['title']}" + (f", run on {dataset} instead of {spec['dataset']}, at "
                                  f"{dataset}'s scale" if elsewhere else "")
            + f". Profile '{profile}'"
            + ("" if profile == "paper" and not elsewhere else
               ": not the paper's setting, so compare the ranking, not the absolute values") + "."
            + (f" {spec['note']}" if spec.get("note") else ""))
    rows = [row["name"].split()[0] for row in spec["rows"]] if spec.get("left_out") else []
    command = " ".join(["benchsr reproduce", table, "--profile", profile,
                        *(["--dataset", dataset] if dataset else []),
                        *(["--seeds", ",".join(map(str, seeds))] if seeds else []),
                        *(["--rows", ",".join(rows)] if rows else []),
                        *sum((["--set", s] for s in sets), [])])
    if rows:
        note += (f" Rows run: {len(spec['rows'])} of {len(spec['rows']) + len(spec['left_out'])} "
                 f"(not run here: {', '.join(spec['left_out'])}); claims between them only.")
    md = (f"# {table}\n\n{note}\n\nMade by `{command}`.\n\n"
          + "".join(f"**{line}**\n\n" for line in warnings)
          + f"{frame.to_markdown(index=False, disable_numparse=True)}\n")
    if missing:
        md += f"\nFailed rows (see their run folders): {', '.join(missing)}\n"
    if clinical is not None and not clinical.empty:
        md += ("\n## Clinical measures (ours; the paper reports none)\n\nHR-domain errors in the "
               "window, per tissue class, body-masked, lung Dice and per volume, as on the "
               "leaderboard (mean ± sd over seeds).\n\n"
               + clinical.fillna("–").to_markdown(index=False, disable_numparse=True) + "\n")
    if claims is not None and not claims.empty:
        md += ("\n## Claims\n\nEach ordering the paper states, tested here with training runs "
               "(seeds) and volumes (patients) as the units, never slices: ours is the mean ± "
               "between-seed sd of each run's mean over volumes (with one volume, over its blocks "
               "of slices). The effect A − B is tested on the parts the design samples: the seeds "
               "of each trained row (Welch df), the paired volumes or blocks (df L − 1), and "
               "both combined; p, the CI and the MDE take the widest part (docs/leaderboard.md). "
               "p is Holm-corrected over the table's tests, and the CI beside the verdict is at the "
               "test's level in Holm's sequence (the unadjusted 95 % CI beside it, labelled). "
               "P(A better) is over pairs of runs, with an interval only from 5 runs a side. "
               "Verdicts: holds, reversed, no detectable difference (with the minimum detectable "
               "effect, MDE, at power 0.8, and planning MDEs at 3, 5 and 10 seeds from the seed "
               "sd), reversed, not significant after Holm, or untestable (with what is missing). "
               "Each claim is tested on the primary evaluation set and on every secondary set "
               "whose images carry the metric.\n\n"
               + claims.to_markdown(index=False, disable_numparse=True) + "\n")
    return note, md


def curve_rows(done: list[tuple[dict, list[Path]]]) -> list[dict]:
    """Each row's runs in the shape the learning-curve readers take (curves.py)."""
    return [{"manifest": {"label": row["name"]}, "seed_runs": [{"dir": Path(r)} for r in runs]}
            for row, runs in done]


def curves_section(spec: dict, done: list[tuple[dict, list[Path]]], png: Path) -> str:
    """The report's learning curves: a figure with one panel per row (the row most claims hold
    up as better dashed in each) and where each row's mean curve stops, by curves.TREND_RULE."""
    from collections import Counter

    from benchsr.report.curves import TREND_RULE, stops_frame
    from benchsr.report.figures import curve_panels
    rows = curve_rows(done)
    favoured = Counter(c["better"] for c in spec.get("claims", [])).most_common(1)
    reference = favoured[0][0] if favoured else None
    if not curve_panels(rows, png, f"{spec['title']}: validation PSNR per condition", "psnr", reference):
        return "\n## Learning curves\n\nNo run of this table wrote curve.csv.\n"
    return (f"\n## Learning curves\n\n![learning curves]({png.name})\n\nValidation PSNR against the "
            f"training step, one panel per row: each seed thin, their mean thick"
            + (f", {reference}'s mean dashed" if reference else "") + ". Where each mean curve "
            f"stops ({TREND_RULE}):\n\n"
            + stops_frame(rows).rename(columns={"Method": "Row"}).to_markdown(
                index=False, disable_numparse=True) + "\n")


def select_rows(spec: dict, wanted: str | None) -> dict:
    """The table with only the rows named in `wanted` (comma-separated; a row is named whole or
    by its first word: 'A' for 'A (-----)'), and only the claims between two of them."""
    if not wanted:
        return spec
    names = [w.strip() for w in wanted.split(",") if w.strip()]
    by_word = {row["name"].split()[0]: row["name"] for row in spec["rows"]}
    known = {row["name"] for row in spec["rows"]}
    bad = [n for n in names if n not in known and n not in by_word]
    if bad or not names:
        raise BenchError(f"--rows {wanted}: {'no row ' + repr(bad[0]) if bad else 'no rows'} in "
                         f"this table (rows: {', '.join(r['name'].split()[0] for r in spec['rows'])})")
    keep = {n if n in known else by_word[n] for n in names}
    left_out = [row["name"] for row in spec["rows"] if row["name"] not in keep]
    return {**spec, "rows": [row for row in spec["rows"] if row["name"] in keep],
            "claims": [c for c in spec.get("claims", []) if {c["better"], c["than"]} <= keep],
            "left_out": left_out}


def check_known(name: str, tables: dict) -> dict:
    if name not in tables:
        raise BenchError(f"unknown paper table '{name}' (available: {', '.join(sorted(tables)) or 'none'})")
    return tables[name]
