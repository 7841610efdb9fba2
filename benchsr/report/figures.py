"""Pictures for people: the comparison grid of a dataset (as the paper's Fig. 13/14: LR |
bicubic | each method | HR, with a zoomed box) and each run's training-loss curves.

matplotlib's object API (Figure + Agg canvas) is used without pyplot, so no global state or GUI
backend is touched.
"""
from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from PIL import Image

from benchsr.evaluation import metrics
from benchsr.report.curves import seed_curves
from benchsr.results import atomic_write_bytes
from benchsr.data.volumes import enlarge_bicubic


def save_png(fig: Figure, path: Path, palette: bool = False) -> None:
    """PNG without alpha; `palette`: 256 colours, a third of the bytes, for line plots (never
    for images, whose grey levels it would merge). Published pictures must travel (issue 30)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=fig.dpi, bbox_inches="tight")
    atomic_write_bytes(path, compact_png(Image.open(buf), palette))


def compact_png(image, palette: bool) -> bytes:
    rgb = image.convert("RGB")
    out = io.BytesIO()
    (rgb.quantize(256, dither=Image.Dither.NONE) if palette else rgb).save(out, "PNG", optimize=True)
    return out.getvalue()


def loss_plot(losses_csv: Path, png: Path, title: str) -> bool:
    """Every logged loss against the step (moving average over ~2 % of the steps)."""
    df = pd.read_csv(losses_csv)
    cols = [c for c in df.columns if c not in ("epoch", "step") and pd.api.types.is_numeric_dtype(df[c])]
    if df.empty or not cols:
        return False
    window = max(1, len(df) // 50)
    fig = Figure(figsize=(7, 3.2), dpi=110)
    ax = fig.add_subplot()
    for col in cols:
        ax.plot(df["step"], df[col].rolling(window, min_periods=1).mean(), label=col,
                lw=2.0 if col == "total_g" else 0.9)
    if (df[cols] > 0).all().all():
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(f"loss (moving mean of {window})")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=6, ncol=max(1, len(cols) // 8), loc="upper right")
    ax.grid(alpha=0.3)
    save_png(fig, png, palette=True)
    return True


def detail_box(hr: np.ndarray, frac: float = 0.2, size: int = 0, align: int = 1
               ) -> tuple[int, int, int]:
    """(y, x, size) of the square with the most structure (HR standard deviation), to zoom.
    Only squares in the middle 60 % are candidates: the couch and the body outline at the
    border have the most contrast but show nothing of the SR. `size` (else `frac` of the
    shorter side) and the corner are multiples of `align`."""
    size = size or max(8, int(min(hr.shape) * frac))
    best, pos = -1.0, (0, 0)
    step = max(align, size // 4 // align * align)
    h, w = hr.shape
    ys = [y for y in range(0, h - size + 1, step) if 0.2 * h <= y + size / 2 <= 0.8 * h] or [0]
    xs = [x for x in range(0, w - size + 1, step) if 0.2 * w <= x + size / 2 <= 0.8 * w] or [0]
    for y in ys:
        for x in xs:
            s = float(hr[y:y + size, x:x + size].std())
            if s > best:
                best, pos = s, (y, x)
    return pos[0], pos[1], size


SAMPLE_CROP = 192   # HR pixels per side of a published sample (a tree must travel: issue 30)


def crop_sample(lr: np.ndarray, sr: np.ndarray, hr: np.ndarray | None, scale: int) -> dict:
    """What a run publishes of one image: a square of SAMPLE_CROP HR pixels (whole LR pixels)
    around its most detailed region, chosen on HR (or on the enlarged LR where there is no HR),
    so that every run of one image crops the same place; LR, SR and HR cropped alike. An
    image smaller than that is kept whole."""
    h, w = sr.shape
    size = min(SAMPLE_CROP, h, w) // scale * scale
    ref = hr if hr is not None else np.kron(lr, np.ones((scale, scale), np.float32))
    y, x, _ = (0, 0, size) if size >= min(h, w) else detail_box(ref, size=size, align=scale)
    q, s = slice(y // scale, (y + size) // scale), slice(x // scale, (x + size) // scale)
    out = {"lr": lr[q, s], "sr": sr[y:y + size, x:x + size],
           "box": np.array([y, x, size, h, w], np.int32)}   # where, in an image of h x w
    if hr is not None:
        out["hr"] = hr[y:y + size, x:x + size]
    return out


def bicubic_reference(lr: np.ndarray, scale: int) -> np.ndarray:
    """The grid's bicubic panel: the same function as the `bicubic` method's output."""
    return enlarge_bicubic(lr, scale)


GRID_COLUMNS = 5
TITLE_CHARS = 30        # a panel's title wraps here: a 250 px panel holds about this many at 8 pt


def panel_title(name: str, width: int = TITLE_CHARS) -> str:
    """A method's label on lines of at most `width` characters where it can break: after a
    comma or a space (a config variant's label is one long word of key=value pairs)."""
    lines = [""]
    for part in re.split(r"(?<=[, ])", name):
        if lines[-1] and len(lines[-1]) + len(part) > width:
            lines.append("")
        lines[-1] += part
    return "\n".join(line.rstrip() for line in lines)


def comparison_grid(lr: np.ndarray, hr: np.ndarray | None, methods: list[tuple[str, np.ndarray]],
                    scale: int, png: Path, title: str) -> None:
    """Row 1: the images (a run's published crop) with the zoom box; row 2: the box enlarged.
    Each SR panel carries its PSNR / SSIM against HR on what row 1 shows."""
    reference = bicubic_reference(lr, scale)
    # the bicubic method's own panel, when it is a row, is that reference: not shown twice. On a
    # crop the two differ within the kernel's reach of its edge (4 LR pixels): compare inside
    b = 4 * scale if min(lr.shape) > 8 * 2 else 0
    inner = lambda a: a[b:a.shape[0] - b, b:a.shape[1] - b]  # noqa: E731
    shown = any(img.shape == reference.shape and np.allclose(inner(img), inner(reference), atol=2e-3)
                for _, img in methods)
    panels = [("LR input (nearest ×%d)" % scale, np.kron(lr, np.ones((scale, scale), np.float32))),
              *([] if shown else [("bicubic (reference)", reference)])] + list(methods)
    if hr is not None:
        panels.append(("HR reference", hr))
    y, x, size = detail_box(hr if hr is not None else panels[1][1], frac=0.5)
    # at most GRID_COLUMNS panels a row, each 250 px wide: the page shows them at full size
    cols = min(GRID_COLUMNS, len(panels))
    bands = -(-len(panels) // cols)
    # constrained layout leaves each title the height it needs (a wrapped label: 3 or 4 lines)
    fig = Figure(figsize=(2.5 * cols, 5.0 * bands + 0.3), dpi=100, layout="constrained")
    axes = fig.subplots(2 * bands, cols, squeeze=False)
    for i, (name, img) in enumerate(panels):
        label = panel_title(name)
        if hr is not None and i > 0 and name != "HR reference":
            label += (f"\n{metrics.psnr(hr, img):.2f} dB / "
                      f"{metrics.ssim_windowed(hr, img):.3f}")
        whole, detail = axes[2 * (i // cols), i % cols], axes[2 * (i // cols) + 1, i % cols]
        whole.imshow(img, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        whole.add_patch(Rectangle((x, y), size, size, fill=False, ec="red", lw=1))
        whole.set_title(label, fontsize=8)
        detail.imshow(img[y:y + size, x:x + size], cmap="gray", vmin=0, vmax=1,
                      interpolation="nearest")
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        if not ax.images:
            ax.set_axis_off()
    for spine in axes[1, 0].spines.values():
        spine.set_edgecolor("red")
    fig.suptitle(title, fontsize=9)
    save_png(fig, png)


def published_sample(path: Path) -> dict:
    """A run's published sample as float32 arrays, cropped as crop_sample crops (a folder made
    before samples were crops holds the whole image: it is cropped here the same way)."""
    with np.load(path) as z:
        arrays = {k: z[k].astype(np.float32) for k in ("lr", "sr", "hr") if k in z}
        group, box = str(z["group"]), (z["box"].tolist() if "box" in z else None)
    scale = arrays["sr"].shape[0] // arrays["lr"].shape[0]
    if box is None:
        crop = crop_sample(arrays["lr"], arrays["sr"], arrays.get("hr"), scale)
        box = crop.pop("box").tolist()
        arrays = crop
    return {**arrays, "group": group, "box": box, "scale": scale}


def _primary_samples(folder: Path) -> set[str]:
    """The samples of the primary evaluation set that can be read: a damaged .npz is left out
    of the grid (its run's numbers come from metrics.csv, not from it)."""
    found = set()
    for path in folder.glob("*.npz"):
        try:
            with np.load(path) as arrays:
                if str(arrays["group"]) == "" and {"lr", "sr"} <= set(arrays.files) \
                        and _shapes_fit(arrays):
                    found.add(path.stem)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            continue
    return found


def _shapes_fit(arrays) -> bool:
    """An SR crop k times its LR crop (and the HR crop its size): one that does not fit was not
    written by a run, and would break the grid."""
    lr, sr = arrays["lr"].shape, arrays["sr"].shape
    if len(lr) != 2 or len(sr) != 2 or min(lr) < 1 or sr[0] % lr[0] or sr[0] // lr[0] < 1:
        return False
    k = sr[0] // lr[0]
    hr_fits = "hr" not in arrays.files or arrays["hr"].shape == sr
    box_fits = "box" not in arrays.files or arrays["box"].shape == (5,)
    return sr == (lr[0] * k, lr[1] * k) and hr_fits and box_fits


def dataset_grid(runs: list[dict], png: Path, title: str) -> bool:
    """The grid for one leaderboard group, on the first sample image every complete run
    published, in its published crop (runs whose crop of it differs are left out)."""
    done = [r for r in runs if r["manifest"].get("status") == "complete"]
    names = [_primary_samples(r["dir"] / "samples") for r in done]
    common = sorted(set.intersection(*names)) if names else []
    if not common:
        return False
    shown = [(r, published_sample(r["dir"] / "samples" / f"{common[0]}.npz")) for r in done]
    first = shown[0][1]
    methods = [(r["manifest"]["label"], s["sr"]) for r, s in shown if s["box"] == first["box"]]
    y, x, size, h, w = first["box"]
    comparison_grid(first["lr"], first.get("hr"), methods, first["scale"], png,
                    f"{title}: {common[0]}, HR pixels {y}:{y + size}, {x}:{x + size} of {h} x {w}")
    return True


def curves_plot(rows: list[dict], png: Path, title: str, metric: str = "psnr") -> bool:
    """Validation `metric` against the step, one line per leaderboard row (the mean over its
    seeds) with the seeds' range as a band; False when no run wrote curve.csv."""
    fig = Figure(figsize=(7, 3.4), dpi=110)
    ax = fig.add_subplot()
    drawn = False
    for row in rows:
        frames = seed_curves(row, metric)
        if not frames:
            continue
        by_step = pd.concat(frames).groupby(level=0)
        mean = by_step.mean()
        line, = ax.plot(mean.index, mean.values, label=row["manifest"]["label"], lw=1.4)
        if len(frames) > 1:
            ax.fill_between(mean.index, by_step.min().values, by_step.max().values,
                            color=line.get_color(), alpha=0.2)
        drawn = True
    if not drawn:
        return False
    ax.set_xlabel("step")
    ax.set_ylabel(f"{metric} on the validation images")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)  # beside
    ax.grid(alpha=0.3)
    save_png(fig, png, palette=True)
    return True


def curve_panels(rows: list[dict], png: Path, title: str, metric: str = "psnr",
                 reference: str | None = None) -> bool:
    """One panel per row (a paper table's condition): each seed's validation curve, thin, and
    their mean, thick; every panel on the same axes, with the `reference` row's mean dashed in
    grey, so a reader sees whether a condition changes where the curve goes or only how fast it
    gets there. False when no run wrote curve.csv."""
    drawn = [(row, seed_curves(row, metric)) for row in rows]
    drawn = [(row, frames) for row, frames in drawn if frames]
    if not drawn:
        return False
    means = {row["manifest"]["label"]: pd.concat(f, axis=1).mean(axis=1).sort_index() for row, f in drawn}
    cols = min(GRID_COLUMNS, len(drawn))
    nrows = -(-len(drawn) // cols)
    fig = Figure(figsize=(2.6 * cols, 2.1 * nrows + 0.4), dpi=100)
    axes = fig.subplots(nrows, cols, sharex=True, sharey=True, squeeze=False).ravel()
    for ax, (row, frames) in zip(axes, drawn):
        label = row["manifest"]["label"]
        for curve in frames:
            ax.plot(curve.index, curve.values, lw=0.7, alpha=0.6, color="tab:blue")
        if reference in means and reference != label:
            ax.plot(means[reference].index, means[reference].values, "--", lw=1, color="0.45")
        ax.plot(means[label].index, means[label].values, lw=1.8, color="tab:blue")
        ax.set_title(f"{label} ({len(frames)} seed{'s' * (len(frames) > 1)})", fontsize=8)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
    for ax in axes[len(drawn):]:
        ax.set_visible(False)
    fig.supxlabel("step", fontsize=8)
    fig.supylabel(f"{metric} on the validation images", fontsize=8)
    fig.suptitle(title + (f" (dashed: {reference}, mean)" if reference in means else ""), fontsize=9)
    save_png(fig, png, palette=True)
    return True
