"""The best-on-validation checkpoint, kept and scored apart from the last one.

During training, each validation point (eval.every) whose PSNR beats every earlier point saves
checkpoints/best.pt. After the last checkpoint has been scored, the best one is scored on the
same images into the run folder's `best/` subfolder, which is a complete run folder of its own:
its manifest names the checkpoint (`checkpoint.kind = best`, the step, the validation PSNR). Its
rows are labelled `[best-val]` and form a table of their own (tables.groups), because choosing
a checkpoint on validation images (or slabs) is a different protocol from BasicSR's last
checkpoint, which the leaderboard ranks. The two are never merged.
"""
from __future__ import annotations

import copy
import io
import math
import shutil
from pathlib import Path

import torch

from benchsr import results
from benchsr.config import total_steps
from benchsr.evaluation.evaluate import degenerate_reason
from benchsr.run import checkpoints, reporting
from benchsr.run.validation import validation_set
from benchsr.run.stages import shown
from benchsr.runtime import distributed

NAME = "best.pt"
FOLDER = results.BEST_FOLDER


def best_point(curve: list[dict]) -> tuple[int, float] | None:
    """(step, PSNR) of the highest validation PSNR, the earliest on ties; None without one."""
    points = [(r["value"], -r["step"]) for r in curve
              if r.get("metric") == "psnr" and math.isfinite(r["value"])]   # NaN is no best
    if not points:
        return None
    value, neg_step = max(points)
    return -neg_step, float(value)


def keep_if_best(method, meta: dict, run_dir: Path, curve: list[dict], step: int) -> None:
    """Save the weights as best.pt when the point just validated at `step` is the best so far
    (`meta`: what checkpoints.load and `benchsr infer` check a checkpoint against)."""
    best = best_point(curve)
    if best is None or best[0] != step or not distributed.world().is_main:
        return
    buf = io.BytesIO()
    torch.save({"method": method.state_dict(), "step": step, "validation_psnr": best[1],
                "meta": meta}, buf)
    folder = run_dir / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    results.atomic_write_bytes(folder / NAME, buf.getvalue())


def load(run_dir: Path, device) -> dict | None:
    path = run_dir / "checkpoints" / NAME
    return checkpoints.load(path, device) if path.is_file() else None


def weights_path(run_dir: Path, manifest: dict) -> Path:
    """The checkpoint a run folder's scores came from: its last.pt, or for a best folder the
    training run's best.pt."""
    if results.checkpoint_kind(manifest) == "best":
        return run_dir.parent / "checkpoints" / NAME
    return run_dir / "checkpoints" / checkpoints.NAMES[0]


def manifest_for(manifest: dict, state: dict, total_steps: int, validation: list,
                 on_scored: bool) -> dict:
    """The best folder's manifest: the run's own, naming the checkpoint it scores and how it
    was chosen (`validation`: its images or slabs; `on_scored`: they are scored ones)."""
    out = copy.deepcopy(manifest)
    out["checkpoint"] = {"kind": "best", "step": int(state["step"]),
                         "of_steps": int(total_steps),
                         "validation_psnr": float(state["validation_psnr"]),
                         "validation_images": [unit.name for unit in validation],
                         "chosen_on": "scored images" if on_scored else
                                      "validation images the evaluation does not score"}
    if on_scored:
        out["notes"].append("best-on-validation checkpoint chosen on scored images: its scores "
                            "are optimistic")
    out["status"], out["finished"] = "complete", results.now()
    out["last_checkpoint"] = f"checkpoints/{NAME} (step {state['step']})"
    return out


def write_folder(run_dir: Path, manifest: dict, score) -> Path:
    """best/ with config, cost and the scores `score(folder)` writes; the manifest last, so
    that a half-written folder is never read as a result (results.read_run)."""
    folder = run_dir / FOLDER
    if folder.exists():
        shutil.rmtree(folder)          # a resumed run scores its best again
    folder.mkdir()
    for name in ("config.yaml", "cost.json"):
        if (run_dir / name).is_file():
            shutil.copy2(run_dir / name, folder / name)
    score(folder)
    results.write_json(folder / "manifest.json", manifest)
    return folder


def score(method, cfg: dict, device, run_dir: Path, manifest: dict, data, evaluate_all,
          units: int, measures, lpips_note, last: tuple, stage, progress=None) -> None:
    """best/: the best-on-validation weights scored as the last checkpoint was
    (`evaluate_all(cfg, device, measures, stage, bar)` over `units` images or slabs), or the last
    checkpoint's scores (`last`: rows, kept samples, volume rows) when it is the best."""
    world = distributed.world()
    state = distributed.broadcast(load(run_dir, device) if world.is_main else None)
    if state is None:
        return
    out = manifest_for(manifest, state, total_steps(cfg), *validation_set(data, cfg))
    if int(state["step"]) != total_steps(cfg):
        method.load_state_dict(state["method"])
        with shown(progress, f"eval  {manifest['label']} [{results.BEST_TAG}]", units) as bar:
            rows, kept, _, volumes = evaluate_all(cfg, device, measures, stage, bar)
        last = rows, kept, volumes
    rows, kept, volumes = last
    reason = degenerate_reason(rows, float(cfg["eval"]["min_input_r"]))
    if reason:                          # a failed folder of its own, like a failed run
        out["status"], out["reason"] = "failed", reason
    if world.is_main:
        write_folder(run_dir, out, lambda folder: reporting.write_results(
            folder, rows, kept, cfg, out, data.scale, lpips_note, volumes))
