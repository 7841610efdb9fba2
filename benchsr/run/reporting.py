"""The reporting room: what a finished run writes beside its metrics: summary.json (with its
bootstrap intervals), sample pictures and arrays, the loss plot, and cost.json."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd

from benchsr.evaluation import clinical, cost, metrics
from benchsr.contracts import EvalVolume
from benchsr.report import figures, planes
from benchsr import results
from benchsr.evaluation.uncertainty import unit_keys


def _png(path: Path, arr: np.ndarray, labels: list[tuple[int, int, str]] = ()) -> None:
    """A grey picture of `arr` in [0, 1]; `labels` (x, width, text) are written on a white band
    above, each cut to its panel's width (PIL's default font: 6 pixels a character)."""
    from PIL import Image, ImageDraw   # Pillow comes with matplotlib: no SimpleITK for a picture
    img = Image.fromarray((np.clip(arr, 0, 1) * 255).round().astype(np.uint8))
    if labels:
        band = Image.new("L", (img.width, img.height + LABEL_BAND), 255)
        band.paste(img, (0, LABEL_BAND))
        draw = ImageDraw.Draw(band)
        for x, width, text in labels:
            draw.text((x + 2, 2), text[:max(1, (width - 4) // 6)], fill=0)
        img = band
    buf = io.BytesIO()
    img.save(buf, "PNG", optimize=True)
    results.atomic_write_bytes(path, buf.getvalue())


LABEL_BAND = 14        # pixels of the white band the panel labels sit on


def save_samples(run_dir: Path, kept, scale: int, label: str = "SR") -> None:
    """Per kept image, its published crop (figures.crop_sample) as float16 arrays (.npz, which
    the leaderboard's comparison grid reads) and as a labelled picture: LR (nearest-enlarged) |
    SR (the run's label) | HR."""
    (run_dir / "samples").mkdir(exist_ok=True)
    for img, sr in kept:
        crop = figures.crop_sample(img.lr, sr, img.hr, scale)
        buf = io.BytesIO()
        np.savez_compressed(buf, group=np.array(img.group), box=crop.pop("box"),
                            **{k: np.asarray(v, np.float16) for k, v in crop.items()})
        results.atomic_write_bytes(run_dir / "samples" / f"{img.name}.npz", buf.getvalue())
        panels = [np.kron(crop["lr"], np.ones((scale, scale), np.float32)), crop["sr"]]
        names = [f"LR x{scale} (nearest)", label] + (["HR"] if "hr" in crop else [])
        panels += [crop["hr"]] if "hr" in crop else []
        gap = np.ones((crop["sr"].shape[0], 4), np.float32)
        starts = np.cumsum([0] + [p.shape[1] + gap.shape[1] for p in panels[:-1]])
        _png(run_dir / "samples" / f"{img.name}.png",
             np.concatenate([p for pair in zip(panels, [gap] * len(panels)) for p in pair][:-1], 1),
             list(zip(starts.tolist(), [p.shape[1] for p in panels], names)))


def summarise(df: pd.DataFrame, seed: int) -> dict:
    """Per-metric mean/std/n/CI over the primary evaluation set (group ""); the same for each
    secondary set under "groups"; and, where images know their volume, the mean of per-volume
    means (the COVID-19-20 protocol averages per volume, then over volumes)."""
    def block(part: pd.DataFrame) -> dict:
        out = {}
        for m in metrics.METRICS:
            if m not in part or part[m].isna().all():
                continue
            # images that name no volume may all come from one patient: never assume otherwise;
            # with one volume, its blocks of neighbouring slices are the clusters
            keys, level = unit_keys(part)
            out[m] = metrics.bootstrap_summary(part[m].tolist(), seed, keys, level)
            if part["volume"].notna().any():
                out[m]["volume_mean"] = float(part.groupby("volume")[m].mean().mean())
        return out

    groups = df["group"].fillna("")
    summary = block(df[groups == ""])
    summary["groups"] = {g: block(df[groups == g]) for g in sorted(set(groups) - {""})}
    return summary


def loss_trend(run_dir: Path) -> dict | None:
    """Mean generator loss of the first and the last epoch: does training learn?"""
    path = run_dir / "losses.csv"
    if not path.is_file():
        return None
    df = pd.read_csv(path)
    if "total_g" not in df or df.empty:
        return None
    per_epoch = df.groupby("epoch")["total_g"].mean().dropna()
    if per_epoch.empty:
        return None
    return {"total_g_first_epoch": float(per_epoch.iloc[0]),
            "total_g_last_epoch": float(per_epoch.iloc[-1]), "epochs": int(len(per_epoch))}


def write_results(run_dir: Path, rows: list[dict], kept, cfg: dict, manifest: dict,
                  scale: int, lpips_note: str | None, volume_rows: list[dict] = ()) -> None:
    """metrics.csv, volumes.csv (the per-volume measures), summary.json, losses.png, samples."""
    df = pd.DataFrame(rows)
    results.write_text(run_dir / "metrics.csv", df.to_csv(index=False))
    summary = summarise(df, cfg["seed"])
    if volume_rows:
        volumes = pd.DataFrame(volume_rows)
        results.write_text(run_dir / "volumes.csv", volumes.to_csv(index=False))
        for name in clinical.VOLUME_MEASURES:   # the mean over volumes; the CI over volumes
            summary[name] = metrics.bootstrap_summary(volumes[name].tolist(), cfg["seed"],
                                                      volumes["volume"].tolist())
    summary["lpips_note"] = lpips_note
    summary["training"] = loss_trend(run_dir)
    if (run_dir / "losses.csv").is_file():
        figures.loss_plot(run_dir / "losses.csv", run_dir / "losses.png",
                          f"{manifest['label']} on {cfg['dataset']} ({cfg['profile']})")
    results.write_json(run_dir / "summary.json", summary)
    if kept and isinstance(kept[0][0], EvalVolume):     # the through-plane track: its views
        planes.save_samples(run_dir, kept, scale, manifest)
    else:
        save_samples(run_dir, kept, scale, manifest["label"])


def _input_shape(kept) -> list | None:
    """What one evaluation input looked like: (1, 1, h, w) LR, or (n, H, W) thick slices."""
    if not kept:
        return None
    first = kept[0][0]
    return list(first.thick.shape) if isinstance(first, EvalVolume) else [1, 1, *first.lr.shape]


def write_cost(run_dir: Path, method, cfg: dict, device, timing, ms: float | None, kept,
               lr_shape: tuple, memory) -> None:
    """Parameters, FLOPs of one whole LR evaluation slice, training time per epoch (validation
    points apart), throughput, memory."""
    tr, params = cfg["train"], cost.params_per_network(method)
    measured = type(method).measured_cost
    epoch_s = float(np.mean(timing.epoch_s)) if timing.epoch_s else None
    samples = tr["batch_size"] * tr["steps_per_epoch"]
    results.write_json(run_dir / "cost.json", {
        "params": params, "params_total": sum(params.values()),
        "inference_network": type(method).inference_network,
        "flops_per_lr_input": cost.flops_per_input(method, lr_shape, device),
        "flops_input_shape": list(lr_shape),
        "s_per_epoch": epoch_s, "steps_per_epoch": tr["steps_per_epoch"],
        "batch_size": tr["batch_size"],
        "samples_per_s": samples / epoch_s if epoch_s else None,
        "data_fraction": (float(np.sum(timing.data_s) / np.sum(timing.epoch_s))
                          if timing.epoch_s else None),
        "validation_s_per_epoch": (float(np.mean(timing.validation_s))
                                   if timing.validation_s else None),
        "epoch_excludes_validation": True,     # runs before this key timed it into s_per_epoch
        "ms_per_slice": ms if measured else None,
        "eval_input_shape": _input_shape(kept),
        "peak_memory_mib": memory.read_mib() if measured else None, "peak_memory_kind": memory.kind,
        "not_measured": None if measured else "outside predictions: their time and memory are "
                                              "the evaluator's, not the model's",
        "device": str(device), "precision": cfg["precision"],
    })
