"""Give run folders made before the output check (eval.min_input_r) their
`input_r` column, and fail those whose outputs are degenerate, as a new run would be.

For each complete run folder (and best/ folder) under the paths given whose metrics.csv has
no `input_r`, it reloads the folder's checkpoint, super-resolves the same evaluation images,
checks that every PSNR equals the recorded one within GAP_DB (the same outputs), then writes the column and
records the check in the manifest (`output_check`: commit, median r, verdict). A folder whose
outputs differ from its record is left untouched and reported. A folder that cannot be scored
again (no checkpoint kept, or a config this code no longer builds) is checked on the outputs it
published (samples/*.npz), and failed only when those are degenerate.

    .venv/bin/python scripts/recheck_outputs.py results/runs
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from benchsr import config, registry, results
from benchsr.errors import BenchError
from benchsr.evaluation.clinical import Context
from benchsr.evaluation.evaluate import choose_images, degenerate_reason, evaluate, input_r
from benchsr.run.infer import load_trained

# Same checkpoint, same images: runs of the current code agree to 0.0 dB. Older runs' inputs
# moved by up to 0.01 dB since (the LR clip of the degradation); the gap is recorded.
GAP_DB = 0.05
_data: dict = {}


def _images(cfg: dict):
    key = (cfg["dataset"], repr(sorted(cfg.get("data", {}).items())), repr(cfg["eval"]))
    if key not in _data:
        data = registry.get("datasets", cfg["dataset"])(cfg, None).load()
        _data[key] = data, choose_images(data, cfg)
    return _data[key]


def recheck(folder: Path) -> str:
    manifest = results.read_json(folder / "manifest.json")
    frame = pd.read_csv(folder / "metrics.csv", dtype={"image": "string", "group": "string"})
    if "input_r" in frame or manifest.get("status") != "complete":
        return "skipped (checked already, or not complete)"
    cfg = config.upgrade(config.read_yaml(folder / "config.yaml"))
    if "lr_slices" in cfg.get("data", {}):      # lung-ct before data.split: the ranges split
        cfg["data"].setdefault("split", "ranges")
    data, images = _images(cfg)
    method = load_trained(folder, None, torch.device("cpu"), "fp32").method
    protocol = manifest.get("protocol", {})
    measures = Context(hr_window=protocol.get("hr_window"), hr_units=protocol.get("hr_units", "HU"))
    with torch.no_grad():
        rows, _, _ = evaluate(method, images, cfg, torch.device("cpu"), measures)
    new = pd.DataFrame(rows)[["image", "group", "psnr", "input_r"]]
    new["group"] = new["group"].fillna("").astype("string")
    frame["group"] = frame["group"].fillna("").astype("string")
    merged = frame.merge(new, on=["image", "group"], how="left", suffixes=("", "_now"))
    gap = float(np.nanmax(np.abs(merged["psnr"] - merged["psnr_now"])))
    if merged["input_r"].isna().all() or not gap < GAP_DB:
        return f"NOT WRITTEN: outputs differ from the record (PSNR gap {gap:.4g} dB)"
    merged = merged.drop(columns="psnr_now")
    merged["group"] = merged["group"].replace("", pd.NA)
    results.write_text(folder / "metrics.csv", merged.to_csv(index=False))
    floor = float(cfg["eval"]["min_input_r"])
    reason = degenerate_reason(rows, floor)
    manifest["output_check"] = {
        "by": "scripts/recheck_outputs.py", "commit": results.provenance(
            torch.device("cpu"), ())["commit"], "at": results.now(),
        "median_input_r": float(np.nanmedian(new["input_r"].astype(float))),
        "floor": floor, "psnr_gap_db": gap, "degenerate": bool(reason)}
    if reason:
        manifest["status"], manifest["reason"] = "failed", reason + " (found by the output check)"
    results.write_json(folder / "manifest.json", manifest)
    return f"r = {manifest['output_check']['median_input_r']:.3f}" + (" FAILED" if reason else "")


def recheck_samples(folder: Path, why: str) -> str:
    """No checkpoint to score again: the check on the outputs the folder published (its
    samples/*.npz of the primary set), recorded as such. Nothing is written unless they are
    degenerate."""
    manifest = results.read_json(folder / "manifest.json")
    rows = []
    for path in sorted((folder / "samples").glob("*.npz")):
        with np.load(path) as z:
            if str(z["group"]) == "":
                rows.append({"input_r": input_r(z["sr"].astype(np.float64), z["lr"].astype(np.float64))})
    if not rows or manifest.get("status") != "complete" or "output_check" in manifest:
        return f"NOT CHECKED: {why}"
    cfg = config.upgrade(config.read_yaml(folder / "config.yaml"))
    floor = float(cfg["eval"]["min_input_r"])
    reason = degenerate_reason(rows, floor)
    median = float(np.median([r["input_r"] for r in rows]))
    if not reason:
        return f"r = {median:.3f} on {len(rows)} published samples (not written: {why})"
    manifest["output_check"] = {
        "by": "scripts/recheck_outputs.py", "on": f"{len(rows)} published samples ({why})",
        "commit": results.provenance(torch.device("cpu"), ())["commit"], "at": results.now(),
        "median_input_r": median, "floor": floor, "degenerate": True}
    manifest["status"] = "failed"
    manifest["reason"] = (f"{reason} (found by the output check on its {len(rows)} published "
                          f"samples; no checkpoint was kept)")
    results.write_json(folder / "manifest.json", manifest)
    return f"r = {median:.3f} on {len(rows)} published samples FAILED"


def main(paths: list[str]) -> int:
    folders = [f for p in paths for f in sorted({m.parent for m in Path(p).glob("**/manifest.json")
                                                 if (m.parent / "metrics.csv").is_file()}, key=str)]
    for folder in folders:
        try:
            verdict = recheck(folder)
        except BenchError as exc:            # e.g. a run whose checkpoints were not kept
            verdict = recheck_samples(folder, str(exc).split(": ")[-1])
        print(f"{folder}: {verdict}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
