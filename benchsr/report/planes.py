"""The through-plane track's pictures. A run keeps, for its first `eval.samples` slabs, a
coronal and a sagittal plane where the real slab has the most through-plane detail (view_boxes):
a WIDTH-pixel-wide crop of the thick input, of the method's thin slices and of the real ones.
The leaderboard's grid puts them side by side, one row per view, z drawn at its true scale
against the in-plane pixels, the head up (or, when the scan does not say, the slice index)."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from benchsr.report.figures import save_png
from benchsr.results import atomic_write_bytes

WIDTH = 192                      # in-plane pixels of a view
VIEWS = ("coronal", "sagittal")  # (z, x) at one row y; (z, y) at one column x
INSIDE = 8                       # pixels the body mask is eroded by before detail is sought


def plane(a: np.ndarray, view: str, index: int) -> np.ndarray:
    return a[:, index, :] if view == "coronal" else a[:, :, index]


def view_boxes(thin: np.ndarray, mask: np.ndarray | None = None) -> dict[str, tuple[int, int]]:
    """Per view, (its row or column, the first pixel of its WIDTH-wide crop) where the real thin
    slices change most along z (summed squared differences of neighbours) inside the body: the
    slab's through-plane detail, rather than its centre (the mediastinum, flat at this window).
    Read from the real slices only, so every run of a slab shows the same place."""
    detail = (np.diff(np.asarray(thin, np.float64), axis=0) ** 2).sum(0)          # (H, W)
    if mask is not None and np.asarray(mask).any():
        from scipy.ndimage import binary_erosion
        inside = binary_erosion(np.asarray(mask, bool).all(0), iterations=INSIDE)
        detail = detail * inside if inside.any() else detail
    boxes = {}
    for view, along in (("coronal", 1), ("sagittal", 0)):
        index = int(np.argmax(detail.sum(axis=along)))
        line = detail[index, :] if view == "coronal" else detail[:, index]
        width = min(WIDTH, len(line))
        boxes[view] = (index, int(np.argmax(np.convolve(line, np.ones(width), "valid"))))
    return boxes


def slab_views(thick: np.ndarray, sr: np.ndarray, thin: np.ndarray,
               mask: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """{view_thick, view_sr, view_thin} for each view at its box (view_boxes), and
    {view_box}: (row or column, first pixel)."""
    out = {}
    for view, (index, start) in view_boxes(thin, mask).items():
        for part, a in zip(("thick", "sr", "thin"), (thick, sr, thin)):
            out[f"{view}_{part}"] = np.asarray(plane(a, view, index)[:, start:start + WIDTH],
                                               np.float32)
        out[f"{view}_box"] = np.array([index, start])
    return out


def _geometry(manifest: dict, volume: str | None) -> dict:
    """One patient's scan geometry (eval_geometry_lps), else the run's own, else its first
    patient's."""
    meta = manifest.get("data_metadata") or {}
    per = meta.get("eval_geometry_lps") or {}
    if volume in per:
        return per[volume]
    if meta.get("spacing_mm") or meta.get("direction"):
        return {"spacing": meta.get("spacing_mm"), "direction": meta.get("direction")}
    return next(iter(per.values()), {})


def aspect_of(manifest: dict, volume: str | None = None) -> float:
    """A patient's thin z spacing over its in-plane spacing: how tall a thin row is drawn (1
    when unknown). thin_mm is one number, or one per patient."""
    thin = manifest.get("protocol", {}).get("thin_mm")
    if isinstance(thin, dict):
        thin = thin.get(volume, next(iter(thin.values()), None))
    thin = thin[0] if isinstance(thin, list) and thin else thin
    inplane = _geometry(manifest, volume).get("spacing") or [None]
    try:
        return float(thin) / float(inplane[0])
    except (TypeError, ValueError, ZeroDivisionError):
        return 1.0


def superior_up(manifest: dict, volume: str | None = None) -> bool | None:
    """Whether the slice index rises towards the head (LPS +z), from the patient's direction
    (eval_geometry_lps, else data_metadata.direction); None when unknown."""
    direction = _geometry(manifest, volume).get("direction")
    try:
        zz = float(direction[8])
    except (TypeError, ValueError, IndexError):
        return None
    return None if zz == 0 else zz > 0


def save_samples(run_dir: Path, kept, k: int, manifest: dict) -> None:
    """samples/<slab>.npz (float16 views, the patient, its aspect) and a labelled PNG per kept
    (slab, thin estimate), each drawn at its patient's spacing."""
    label = manifest["label"]
    (run_dir / "samples").mkdir(exist_ok=True)
    for vol, sr in kept:
        views = slab_views(vol.thick, sr, vol.thin, vol.mask)
        aspect, up = aspect_of(manifest, vol.volume), superior_up(manifest, vol.volume)
        buf = io.BytesIO()
        np.savez_compressed(buf, group=np.array(""), plane=np.array("through"), k=np.array(k),
                            volume=np.array(vol.volume or ""), aspect=np.array(aspect),
                            **{key: v if key.endswith("_box") else v.astype(np.float16)
                               for key, v in views.items()})
        atomic_write_bytes(run_dir / "samples" / f"{vol.name}.npz", buf.getvalue())
        _grid([(f"input (x{k} thicker)", "thick"), (label, "sr"), ("thin (real)", "thin")],
              [(vol.name, {"": views}, aspect, up)], k, run_dir / "samples" / f"{vol.name}.png",
              vol.name)


def _readable(path: Path) -> dict | None:
    try:
        with np.load(path) as z:
            if str(z.get("plane", "")) != "through":
                return None
            out = {key: z[key].astype(np.float32) for key in z.files
                   if key.split("_")[0] in VIEWS} | {"k": int(z["k"])}
            out["volume"] = str(z["volume"]) if "volume" in z.files else path.stem.split("_slab")[0]
            return out
    except (OSError, ValueError, KeyError, EOFError):
        return None


def leaderboard_grid(runs: list[dict], png: Path, title: str) -> bool:
    """The group's grid: for every patient, the first slab every complete run kept, its thick
    input, each method and the real thin slices, coronal above sagittal, z at that patient's
    spacing. False when no slab is common to every run."""
    done = [r for r in runs if r["manifest"].get("status") == "complete"]
    kept = [{p.stem: p for p in (r["dir"] / "samples").glob("*.npz")} for r in done]
    common = sorted(set.intersection(*(set(k) for k in kept))) if kept else []
    firsts: dict[str, list] = {}
    for slab in common:
        samples = [_readable(k[slab]) for k in kept]
        if any(s is None for s in samples):
            return False
        boxes = {tuple(np.ravel(s.get(f"{v}_box", [-1])).tolist()) for s in samples for v in VIEWS}
        if len(boxes) != len(VIEWS):      # runs whose views lie elsewhere (an older layout)
            return False
        firsts.setdefault(samples[0]["volume"], [slab, samples])
    if not firsts:
        return False
    labels = [r["manifest"]["label"] for r in done]
    manifest = done[0]["manifest"]
    blocks = [(slab, {"": samples[0], **dict(zip(labels, samples))}, aspect_of(manifest, volume),
               superior_up(manifest, volume)) for volume, (slab, samples) in firsts.items()]
    columns = [("input (thick)", "thick"), *[(label, "sr") for label in labels], ("thin (real)", "thin")]
    _grid(columns, blocks, next(iter(firsts.values()))[1][0]["k"], png, title)
    return True


def _grid(columns, blocks, k: int, png: Path, title: str) -> None:
    """Rows: per block (name, arrays, aspect, up), its views; columns: (title, part) drawn from
    arrays[title] (or arrays[""]), z at the block's aspect. The head is drawn up when the scan
    says where it is (`up`), else the slice index rises."""
    heights = []
    for _, arrays, aspect, _ in blocks:
        rows, width = arrays[""][f"{next(iter(VIEWS))}_thin"].shape
        heights += [max(0.3, 2.3 * rows * aspect / width)] * len(VIEWS)   # z at its scale
    fig = Figure(figsize=(2.3 * len(columns), 0.45 + sum(h + 0.3 for h in heights)), dpi=110,
                 layout="constrained")
    axes = fig.subplots(len(heights), len(columns), squeeze=False,
                        gridspec_kw={"height_ratios": heights})
    row = 0
    for name, arrays, aspect, up in blocks:
        for view in VIEWS:
            for col, (column, part) in enumerate(columns):
                source = arrays.get(column, arrays[""])
                ax = axes[row, col]
                ax.imshow(source[f"{view}_{part}"], cmap="gray", vmin=0, vmax=1,
                          origin="upper" if up is False else "lower",
                          interpolation="nearest", aspect=aspect * (k if part == "thick" else 1))
                ax.set_xticks([])
                ax.set_yticks([])
                if row == 0:     # above the first patient's name when there are several
                    ax.set_title(column, fontsize=7, pad=12 if len(blocks) > 1 else 6)
            box = arrays[""].get(f"{view}_box")
            where = "" if box is None else f" {'y' if view == 'coronal' else 'x'} {int(box[0])}"
            if len(blocks) > 1 and view == VIEWS[0]:       # which patient's slab, above it
                axes[row, 0].annotate(name, xy=(0, 1), xycoords="axes fraction", xytext=(0, 2),
                                      textcoords="offset points", fontsize=6, va="bottom")
            axes[row, 0].set_ylabel(f"{view}{where}\n"
                                    f"{'slice index' if up is None else 'superior'} ↑", fontsize=6)
            row += 1
    fig.suptitle(title, fontsize=8)
    save_png(fig, png)
