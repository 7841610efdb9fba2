"""Compare the per-image metrics of two results roots, run by run: the check that a change which
should not move a number (a refactor) moved none.

    python scripts/compare_runs.py OLD_ROOT NEW_ROOT [--report FILE.md]

Runs are matched by (dataset, label, seed). For each pair, every metric column both
metrics.csv files hold is compared image by image, except wall-clock times. Exit 0 when every
value is identical (bit for bit, as read from the CSV), 1 otherwise; the report lists each pair
and the largest difference per column."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

TIMING = {"ms"}      # wall-clock: differs between any two runs of one code


def _runs(root: Path) -> dict[tuple, Path]:
    found = {}
    for manifest in sorted(root.rglob("manifest.json")):
        folder = manifest.parent
        if folder.name == "best" or not (folder / "metrics.csv").is_file():
            continue
        meta = json.loads(manifest.read_text())
        found[(meta["dataset"], meta["label"], meta["seed"])] = folder
    return found


def _gap(x: pd.Series, y: pd.Series) -> float:
    """The largest absolute difference; infinite where one side is NaN and the other is not."""
    if not x.isna().equals(y.isna()):
        return float("inf")
    both = x.notna()
    return float((x[both] - y[both]).abs().max()) if both.any() else 0.0


def _compare(old: Path, new: Path) -> tuple[list[str], dict[str, float]]:
    a, b = pd.read_csv(old / "metrics.csv"), pd.read_csv(new / "metrics.csv")
    keys = [k for k in ("set", "image") if k in a.columns and k in b.columns]
    if keys:
        a, b = a.sort_values(keys).reset_index(drop=True), b.sort_values(keys).reset_index(drop=True)
    if len(a) != len(b) or (keys and not a[keys].equals(b[keys])):
        return [], {"images": float("inf")}
    shared = [c for c in a.columns if c in b.columns and c not in TIMING and c not in keys
              and pd.api.types.is_numeric_dtype(a[c])]
    gaps = {c: _gap(a[c], b[c]) for c in shared}
    return shared, gaps


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("old", type=Path)
    ap.add_argument("new", type=Path)
    ap.add_argument("--report", type=Path)
    args = ap.parse_args(argv)
    old, new = _runs(args.old), _runs(args.new)
    lines = ["| dataset | run | seed | images | columns compared | largest difference |",
             "|---|---|---|---|---|---|"]
    identical, differ, alone = 0, 0, 0
    for key in sorted(set(old) | set(new), key=str):
        if key not in old or key not in new:
            alone += 1
            lines.append(f"| {key[0]} | {key[1]} | {key[2]} | – | – | only in "
                         f"{'new' if key in new else 'old'} |")
            continue
        cols, gaps = _compare(old[key], new[key])
        worst = max(gaps.values(), default=0.0)
        identical, differ = identical + (worst == 0.0), differ + (worst != 0.0)
        n = len(pd.read_csv(new[key] / "metrics.csv"))
        shown = "identical" if worst == 0.0 else ", ".join(f"{c} {g:.3g}" for c, g in gaps.items() if g)
        lines.append(f"| {key[0]} | {key[1]} | {key[2]} | {n} | {len(cols)} | {shown} |")
    verdict = (f"{identical} runs in both identical, {differ} differ; {alone} in one root only "
               f"(nothing to compare)")
    text = "\n".join(lines) + f"\n\n{verdict}\n"
    same = differ == 0 and alone == 0
    print(text)
    if args.report:
        args.report.write_text(text)
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
