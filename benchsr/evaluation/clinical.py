"""Measures a CT reader thinks in, beside the paper's whole-slice PSNR/SSIM: errors in the HR
domain's own units (Hounsfield units on clinical CT, scanner units on µCT), per tissue class of
the HR image, inside the body mask, a lung-mask Dice, and per-volume (3D) scores.

Everything starts from the evaluation's [0, 1] arrays. Those are the dataset's window, so
values outside it are clipped before any error is measured: an HU error here is the error
inside the window (lung-ct: [-1000, 500] HU), which is what the method was asked to produce.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from benchsr.optional import OptionalModule

monai_metrics = OptionalModule("monai.metrics", "SSIM in 3D (ssim_3d)", pip="monai")

# HU classes of the HR image (declared once; runs record them in their protocol). Lung
# parenchyma, soft tissue (fat to muscle and blood) and bone, as CT readers window them.
TISSUES_HU = {"lung": (-950.0, -500.0), "soft": (-150.0, 200.0), "bone": (300.0, np.inf)}
MIN_TISSUE_PIXELS = 50        # fewer pixels of a class in a slice: no score for it (n/a)
LUNG_MASK_RULE = ("lung mask: HU < -400 inside the body mask, binary opening (3x3), holes "
                  "filled, components under 50 pixels dropped")


@dataclass
class Context:
    """What a metric may need besides the two images: the LPIPS model, the HR domain's window
    (its [0, 1] maps to hr_window in hr_units) and the HR body mask, all cropped alike."""
    lpips: object = None
    hr_window: tuple[float, float] | None = None
    hr_units: str = ""
    mask: np.ndarray | None = None
    # the scanner's field of view (None = all of it): padding outside it is never scored
    fov: np.ndarray | None = None
    cache: dict = field(default_factory=dict)   # per image: e.g. its SSIM map, computed once

    @property
    def is_hu(self) -> bool:
        return self.hr_units == "HU" and self.hr_window is not None


def protocol_entries(protocol: dict) -> dict:
    """What a run adds to its protocol so that the clinical measures are reproducible."""
    if protocol.get("hr_units", "HU") != "HU":
        return {"clinical_units": protocol.get("hr_units")}
    return {"tissue_classes_hu": {k: [lo, None if hi == np.inf else hi]
                                  for k, (lo, hi) in TISSUES_HU.items()},
            "lung_mask": LUNG_MASK_RULE}


def to_units(x: np.ndarray, ctx: Context) -> np.ndarray:
    lo, hi = ctx.hr_window
    return lo + np.asarray(x, np.float64) * (hi - lo)


def _errors(ref, test, ctx: Context, where: np.ndarray | None) -> np.ndarray | None:
    if ctx.hr_window is None:
        return None
    d = to_units(test, ctx) - to_units(ref, ctx)
    if where is not None:
        if where.sum() < MIN_TISSUE_PIXELS:
            return None
        d = d[where]
    return d


def mae_units(ref, test, ctx: Context, tissue: str | None = None) -> float | None:
    d = _errors(ref, test, ctx, _tissue_mask(ref, ctx, tissue))
    return None if d is None else float(np.abs(d).mean())


def rmse_units(ref, test, ctx: Context, tissue: str | None = None) -> float | None:
    d = _errors(ref, test, ctx, _tissue_mask(ref, ctx, tissue))
    return None if d is None else float(np.sqrt((d ** 2).mean()))


def _tissue_mask(ref, ctx: Context, tissue: str | None) -> np.ndarray | None:
    """Pixels of one HU class of the HR image; None for the whole image. A tissue class needs
    HU data: on other units it is never computed."""
    if tissue is None:
        return ctx.fov
    if not ctx.is_hu:
        return np.zeros(np.shape(ref), bool)
    lo, hi = TISSUES_HU[tissue]
    hu = to_units(ref, ctx)
    inside = (hu >= lo) & (hu < hi)
    return inside if ctx.fov is None else inside & ctx.fov


def lung_mask(x: np.ndarray, ctx: Context) -> np.ndarray:
    """The lungs of one slice by LUNG_MASK_RULE (scipy.ndimage)."""
    from scipy import ndimage
    lungs = (to_units(x, ctx) < -400.0) & ctx.mask
    lungs = ndimage.binary_fill_holes(ndimage.binary_opening(lungs, np.ones((3, 3), bool)))
    labels, n = ndimage.label(lungs)
    if n:
        sizes = ndimage.sum(lungs, labels, range(1, n + 1))
        lungs = np.isin(labels, 1 + np.flatnonzero(sizes >= 50))
    return lungs


def lung_dice(ref, test, ctx: Context) -> float | None:
    """Dice of the HR and SR lung masks: a method that deforms the lungs' outline shows it."""
    if not ctx.is_hu or ctx.mask is None:
        return None
    a, b = lung_mask(ref, ctx), lung_mask(test, ctx)
    total = a.sum() + b.sum()
    return None if a.sum() < MIN_TISSUE_PIXELS else float(2 * (a & b).sum() / total)


# ---- per volume ------------------------------------------------------------------------------
def psnr_3d(ref: np.ndarray, test: np.ndarray) -> float:
    """PSNR (data range 1) over a volume's stacked slices: one MSE over all its voxels."""
    mse = float(np.mean((np.asarray(ref, np.float64) - np.asarray(test, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(1.0 / mse)


def ssim_3d(ref: np.ndarray, test: np.ndarray) -> float | None:
    """SSIM with a 3D Gaussian window (MONAI's SSIMMetric, sigma 1.5): 11 x 11 in-plane and, along
    the stack, the largest odd size up to 11 that the number of slices allows (at least 3)."""
    depth = ref.shape[0] if ref.shape[0] % 2 else ref.shape[0] - 1
    if depth < 3 or min(ref.shape[1:]) < 11:
        return None
    import torch
    metric = monai_metrics.SSIMMetric(spatial_dims=3, data_range=1.0, win_size=(min(11, depth), 11, 11),
                        kernel_sigma=(1.5, 1.5, 1.5))
    t = lambda a: torch.as_tensor(np.asarray(a, np.float32))[None, None]  # noqa: E731
    return float(metric(t(test), t(ref)).mean())


VOLUME_MEASURES = {"psnr_3d": psnr_3d, "ssim_3d": ssim_3d}


class VolumeStacks:
    """Each volume's HR and SR slices, in evaluation order, scored in 3D as soon as the next
    volume starts, so that only one volume's slices are held in memory at a time. A volume
    whose slices are not contiguous in the evaluation order is not scored (it would be split)."""

    def __init__(self):
        self.rows: list[dict] = []
        self.split: set[str] = set()
        self._volume, self._refs, self._tests, self._fovs = None, [], [], []

    def add(self, volume: str, ref: np.ndarray, test: np.ndarray, fov=None) -> None:
        """One slice, with its field of view where it has padding (None: all inside)."""
        if volume != self._volume:
            self._flush()
            if any(r["volume"] == volume for r in self.rows):
                self.split.add(volume)
                self.rows = [r for r in self.rows if r["volume"] != volume]
            self._volume = volume
        if volume not in self.split:
            self._refs.append(ref)
            self._tests.append(test)
            self._fovs.append(np.ones(ref.shape, bool) if fov is None else fov)

    def _flush(self) -> None:
        if self._volume is not None and self._refs and self._volume not in self.split:
            fov = np.stack(self._fovs)
            self.rows.append(score_volume(self._volume, np.stack(self._refs), np.stack(self._tests),
                                          None if fov.all() else fov))
        self._refs, self._tests, self._fovs = [], [], []

    def finish(self) -> list[dict]:
        self._flush()
        self._volume = None
        return self.rows


def score_volume(volume: str, ref: np.ndarray, test: np.ndarray, fov=None) -> dict:
    """One volume's row: its stacked slices scored in 3D; with padding (`fov` False there),
    PSNR over the voxels inside the field of view, and no 3D SSIM (its window has no mask)."""
    if fov is None:
        scores = {name: fn(ref, test) for name, fn in VOLUME_MEASURES.items()}
    else:
        scores = {"psnr_3d": psnr_3d(ref[fov], test[fov]), "ssim_3d": None}
    return {"image": volume, "volume": volume, "group": "", "n_slices": len(ref), **scores}
