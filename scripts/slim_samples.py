"""Publish what a run publishes today: one sample per evaluation set, cropped, and its loss
plot in 256 colours (issue 30).

    python scripts/slim_samples.py results/runs

Run folders made before samples were crops published every kept image whole (float16 LR, SR
and HR, and a PNG of the three). This rewrites such a folder's samples/ as a run now writes it:
the first image of each evaluation set (by name, the one the leaderboard's grid shows), cropped
by figures.crop_sample, through the runner's own writer. The manifest records what was kept and
dropped. A folder whose output check was read from its samples (scripts/recheck_outputs.py: no
checkpoint was kept) keeps the primary set's samples whole (their picture is cropped): on one
crop, old-split pseudo-SR seed 2 reads r 0.64 against 0.37 on its three whole samples, so a
crop could not reproduce its verdict.
"""
from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from benchsr import results
from benchsr.report import figures
from benchsr.run.reporting import save_samples


def _whole(path: Path) -> dict | None:
    with np.load(path) as z:
        if "box" in z:
            return None
        return {k: z[k].astype(np.float32) for k in ("lr", "sr", "hr") if k in z} | {
            "group": str(z["group"])}


def slim(folder: Path) -> str:
    files = sorted((folder / "samples").glob("*.npz"))
    manifest = results.read_json(folder / "manifest.json")
    whole = {p: _whole(p) for p in files}
    if not files or "published_samples" in manifest or any(v is None for v in whole.values()):
        return "already crops" if files else "no samples"
    # an output check read from the primary set's samples (no checkpoint was kept): they stay
    # whole, so that it can be read again; only their picture is cropped
    read_by_check = "published samples" in str((manifest.get("output_check") or {}).get("on", ""))
    keep_whole = [p for p, a in whole.items() if read_by_check and a["group"] == ""]
    first = {}
    for path, arrays in whole.items():
        if path not in keep_whole:
            first.setdefault(arrays["group"], (path, arrays))
    chosen = [(p, whole[p]) for p in keep_whole] + list(first.values())
    originals = {p: p.read_bytes() for p in keep_whole}
    some = chosen[0][1]
    scale = some["sr"].shape[0] // some["lr"].shape[0]
    for path in files:
        path.with_suffix(".png").unlink(missing_ok=True)
        if path not in keep_whole:
            path.unlink()
    save_samples(folder, [(SimpleNamespace(name=p.stem, lr=a["lr"], hr=a.get("hr"),
                                           group=a["group"]), a["sr"]) for p, a in chosen], scale)
    for path, data in originals.items():   # save_samples wrote the crop: the whole file stays
        results.atomic_write_bytes(path, data)
    manifest["published_samples"] = {
        "by": "scripts/slim_samples.py", "at": results.now(),
        "commit": results.provenance(torch.device("cpu"), ())["commit"],
        "kept": sorted(p.stem for p, _ in chosen), "dropped": len(files) - len(chosen),
        "form": "crops (figures.crop_sample), float16"
                + (f"; {', '.join(p.stem for p in keep_whole)} whole: the output check read them"
                   if keep_whole else "")}
    results.write_json(folder / "manifest.json", manifest)
    return f"kept {len(chosen)} of {len(files)}" + (f", {len(keep_whole)} whole" if keep_whole else "")


def compact_losses(folder: Path) -> str:
    """losses.png as a run draws it now: 256 colours (figures.compact_png), the same plot."""
    from PIL import Image
    path = folder / "losses.png"
    if not path.is_file():
        return ""
    with Image.open(path) as image:
        if image.mode == "P":
            return ""
        data = figures.compact_png(image, palette=True)
    results.atomic_write_bytes(path, data)
    return "; losses.png in 256 colours"


def main(paths: list[str]) -> int:
    folders = sorted({m.parent for p in paths for m in Path(p).glob("**/manifest.json")})
    for folder in folders:
        print(f"{folder}: {slim(folder)}{compact_losses(folder)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or ["results/runs"]))
