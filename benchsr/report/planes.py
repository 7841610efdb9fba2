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


def aspect_of(manifest: dict) -> float:
    """Thin z spacing over in-plane spacing: how tall a thin row is drawn (1 when unknown)."""
    thin = manifest.get("protocol", {}).get("thin_mm")
    thin = thin[0] if isinstance(thin, list) and thin else thin
    inplane = (manifest.get("data_metadata") or {}).get("spacing_mm") or [None]
    try:
        return float(thin) / float(inplane[0])
    except (TypeError, ValueError, ZeroDivisionError):
        return 1.0


def superior_up(manifest: dict) -> bool | None:
    """Whether the slice index rises towards the head (LPS +z), from the scan's direction
    (data_metadata.direction, or the first volume of eval_geometry_lps); None when unknown."""
    meta = manifest.get("data_metadata") or {}
    direction = meta.get("direction")
    if direction is None:
        geometry = next(iter((meta.get("eval_geometry_lps") or {}).values()), {})
        direction = geometry.get("direction")
    try:
        zz = float(direction[8])
    except (TypeError, ValueError, IndexError):
        return None
    return None if zz == 0 else zz > 0


def save_samples(run_dir: Path, kept, k: int, manifest: dict) -> None:
    """samples/<slab>.npz (float16 views) and a labelled PNG per kept (slab, thin estimate)."""
    label, aspect, up = manifest["label"], aspect_of(manifest), superior_up(manifest)
    (run_dir / "samples").mkdir(exist_ok=True)
    for vol, sr in kept:
        views = slab_views(vol.thick, sr, vol.thin, vol.mask)
        buf = io.BytesIO()
        np.savez_compressed(buf, group=np.array(""), plane=np.array("through"), k=np.array(k),
                            **{key: v if key.endswith("_box") else v.astype(np.float16)
                               for key, v in views.items()})
        atomic_write_bytes(run_dir / "samples" / f"{vol.name}.npz", buf.getvalue())
        _grid([(f"input (x{k} thicker)", "thick"), (label, "sr"), ("thin (real)", "thin")],
              {"": views}, k, aspect, run_dir / "samples" / f"{vol.name}.png", vol.name, up)


def _readable(path: Path) -> dict | None:
    try:
        with np.load(path) as z:
            if str(z.get("plane", "")) != "through":
                return None
            return {key: z[key].astype(np.float32) for key in z.files
                    if key.split("_")[0] in VIEWS} | {"k": int(z["k"])}
    except (OSError, ValueError, KeyError, EOFError):
        return None


def leaderboard_grid(runs: list[dict], png: Path, title: str) -> bool:
    """The group's grid on the first slab every complete run kept: the thick input, each
    method and the real thin slices, coronal above sagittal. False when there is none."""
    done = [r for r in runs if r["manifest"].get("status") == "complete"]
    kept = [{p.stem: p for p in (r["dir"] / "samples").glob("*.npz")} for r in done]
    common = sorted(set.intersection(*(set(k) for k in kept))) if kept else []
    samples = [_readable(k[common[0]]) for k in kept] if common else []
    if not samples or any(s is None for s in samples):
        return False
    boxes = {tuple(np.ravel(s.get(f"{v}_box", [-1])).tolist()) for s in samples for v in VIEWS}
    if len(boxes) != len(VIEWS):      # runs whose views lie elsewhere (an older layout)
        return False
    views = {r["manifest"]["label"]: s for r, s in zip(done, samples)}
    first = samples[0]
    columns = [("input (thick)", "thick"), *[(label, "sr") for label in views], ("thin (real)", "thin")]
    per_column = {"": first, **views}
    manifest = done[0]["manifest"]
    _grid(columns, per_column, first["k"], aspect_of(manifest), png, f"{title}: {common[0]}",
          superior_up(manifest))
    return True


def _grid(columns, arrays: dict, k: int, aspect: float, png: Path, title: str,
          up: bool | None = None) -> None:
    """Rows: the views; columns: (title, part) drawn from arrays[title] (or arrays[""]). The
    head is drawn up when the scan says where it is (`up`), else the slice index rises."""
    rows, width = arrays[""][f"{next(iter(VIEWS))}_thin"].shape
    panel = max(0.3, 2.3 * rows * aspect / width)        # a panel's height, z at its scale
    fig = Figure(figsize=(2.3 * len(columns), 0.45 + (panel + 0.15) * len(VIEWS)), dpi=110,
                 layout="constrained")
    axes = fig.subplots(len(VIEWS), len(columns), squeeze=False)
    for row, view in enumerate(VIEWS):
        for col, (name, part) in enumerate(columns):
            source = arrays.get(name, arrays[""])
            ax = axes[row, col]
            ax.imshow(source[f"{view}_{part}"], cmap="gray", vmin=0, vmax=1,
                      origin="upper" if up is False else "lower",
                      interpolation="nearest", aspect=aspect * (k if part == "thick" else 1))
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(name, fontsize=7)
        box = arrays[""].get(f"{view}_box")
        where = "" if box is None else f"\n{'y' if view == 'coronal' else 'x'} {int(box[0])}"
        axes[row, 0].set_ylabel(f"{view}{where}\n{'slice index' if up is None else 'superior'} ↑",
                                fontsize=7)
    fig.suptitle(title, fontsize=8)
    save_png(fig, png)
