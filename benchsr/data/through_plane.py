"""Thick slices from thin ones, and where each thin slice lies between them: the through-plane
track's degradation and geometry. Volumes are (z, y, x); k is the protocol's z_factor.

- `mean` (the slice profile): thick slice i is the mean of thin slices k*i .. k*i+k-1, so its
  centre lies at thin position k*i + (k-1)/2.
- `pick` (a scanner that reconstructs thin and samples): thick slice i IS thin slice k*i.
"""
from __future__ import annotations

import numpy as np

from benchsr.contracts import EvalVolume
from benchsr.errors import BenchError

Z_DEGRADATIONS = ("mean", "pick")


def thicken(thin: np.ndarray, k: int, how: str = "mean") -> np.ndarray:
    """(n*k, y, x) thin slices -> (n, y, x) thick ones; trailing slices that make no whole
    thick slice are dropped."""
    if how not in Z_DEGRADATIONS:
        raise BenchError(f"data.z_degradation={how!r}: expected one of {', '.join(Z_DEGRADATIONS)}")
    if k < 1:
        raise BenchError(f"data.z_factor={k}: must be at least 1")
    n = thin.shape[0] // k
    if n == 0:
        raise BenchError(f"{thin.shape[0]} thin slices make no thick slice at z_factor {k}")
    whole = np.asarray(thin[:n * k], np.float32)
    if how == "pick":
        return whole[::k].copy()
    return whole.reshape(n, k, *whole.shape[1:]).mean(axis=1)


def eval_slab(name: str, thin: np.ndarray, mask, k: int, how: str, source: str,
              patient: str | None, fov=None, geometry: dict | None = None) -> EvalVolume:
    """One evaluation slab: its real thin slices, the thick ones made from them by the
    protocol, the thin slices' body mask and field of view (None: no padding), and their grid
    (EvalVolume.geometry)."""
    return EvalVolume(name=name, thick=thicken(thin, k, how), thin=np.array(thin), source=source,
                      volume=patient, mask=None if mask is None else np.array(mask),
                      fov=None if fov is None else np.array(fov), geometry=geometry)


def slab_geometry(spacing, origin, direction, first: int) -> dict:
    """The grid of a slab that starts at slice `first` of a volume (LPS mm, SimpleITK's)."""
    normal = np.asarray(direction, np.float64).reshape(3, 3)[:, 2]
    return {"spacing": [float(v) for v in spacing],
            "origin": [float(v) for v in np.asarray(origin, np.float64) + first * spacing[2] * normal],
            "direction": [float(v) for v in direction]}


def thin_positions(n_thin: int, k: int, how: str = "mean") -> np.ndarray:
    """Where thin slice j lies in thick-slice coordinates (thick slice i at i), for each of
    the n_thin thin slices the thick ones were made from."""
    j = np.arange(n_thin, dtype=np.float64)
    return (j - (k - 1) / 2) / k if how == "mean" else j / k


def missing(n_thin: int, k: int, how: str = "mean") -> np.ndarray:
    """The thin slices a thick volume does not hold as they are: all of them under `mean`,
    all but every k-th under `pick`. These are the slices a method is scored on."""
    j = np.arange(n_thin)
    return j if how == "mean" else j[j % k != 0]


def interpolate_z(thick: np.ndarray, k: int, how: str = "mean", order: int = 1,
                  n_thin: int | None = None) -> np.ndarray:
    """Thin slices estimated from the thick ones along z alone, at the protocol's thin
    positions: order 1 linear, order 3 an interpolating cubic spline (scipy's
    make_interp_spline, not-a-knot; lower degree for fewer than 4 slices). Thin slices beyond
    the outer thick centres take the outer thick slice (no extrapolation)."""
    from scipy.interpolate import make_interp_spline
    n = thick.shape[0]
    n_thin = n * k if n_thin is None else n_thin
    z = np.clip(thin_positions(n_thin, k, how), 0, n - 1)
    data = np.asarray(thick, np.float64)
    if n == 1:
        return np.repeat(data, n_thin, axis=0).astype(np.float32)
    if order == 1:
        i0 = np.minimum(np.floor(z).astype(int), n - 2)
        t = (z - i0)[:, None, None]
        return ((1 - t) * data[i0] + t * data[i0 + 1]).astype(np.float32)
    spline = make_interp_spline(np.arange(n), data, k=min(order, n - 1), axis=0)
    return spline(z).astype(np.float32)


def mean_over_extents(values: np.ndarray, src_edges: np.ndarray, dst_edges: np.ndarray,
                      axis: int = 0) -> np.ndarray:
    """Values on cells [src_edges[i], src_edges[i+1]) along `axis`, averaged over the cells
    [dst_edges[j], dst_edges[j+1]) (the mean over each destination cell's extent, the slice
    profile of a slice as thick as its cell; exact for any ratio, whole or not). Every
    destination cell must lie within the source cells."""
    src, dst = np.asarray(src_edges, np.float64), np.asarray(dst_edges, np.float64)
    if not (np.all(np.diff(src) > 0) and np.all(np.diff(dst) > 0)):
        raise BenchError("mean_over_extents: cell edges must increase")
    tol = 1e-6 * float(src[-1] - src[0])
    if dst[0] < src[0] - tol or dst[-1] > src[-1] + tol:
        raise BenchError(f"cells {dst[0]:.4g}..{dst[-1]:.4g} reach beyond the values' "
                         f"{src[0]:.4g}..{src[-1]:.4g}")
    data = np.moveaxis(np.asarray(values, np.float64), axis, 0)
    # the running integral at every source edge; piecewise linear between them, so exact
    integral = np.concatenate([np.zeros((1, *data.shape[1:])),
                               np.cumsum(data * np.diff(src).reshape(-1, *[1] * (data.ndim - 1)),
                                         axis=0)])
    at = np.clip(dst, src[0], src[-1])
    i = np.clip(np.searchsorted(src, at, side="right") - 1, 0, len(src) - 2)
    t = ((at - src[i]) / (src[i + 1] - src[i])).reshape(-1, *[1] * (data.ndim - 1))
    cum = (1 - t) * integral[i] + t * integral[i + 1]
    out = np.diff(cum, axis=0) / np.diff(dst).reshape(-1, *[1] * (data.ndim - 1))
    return np.moveaxis(out, 0, axis).astype(np.float32)


def physical_pair(patch: np.ndarray, pitch_mm: float, thin_mm: float, k: int, how: str,
                  order: int) -> tuple[np.ndarray, np.ndarray]:
    """A (P, W) in-plane patch, its rows `pitch_mm` apart, made into a through-plane training
    pair at the geometry of the reformats a thick stack gives: (input, target), each (m, W).
    The target is the patch resampled along its rows to rows `thin_mm` apart (the mean over
    each thin row's extent: anti-aliased); the input is that target thickened by the slice
    profile (`thicken`, k rows) and interpolated back to its m rows (`interpolate_z`), as
    the thick stack's reformats are at test time. m is a multiple of k, at least 2k."""
    rows = patch.shape[0]
    ratio = thin_mm / pitch_mm
    m = int(np.floor(rows / ratio + 1e-6)) // k * k
    if m < 2 * k:
        raise BenchError(f"a {rows}-row patch at {pitch_mm:.3g} mm holds {m} rows of "
                         f"{thin_mm:.3g} mm: fewer than 2 thick slices of {k}; raise "
                         f"train.lr_patch (rows = lr_patch x z_factor)")
    if abs(ratio - 1) < 1e-6:
        target = np.asarray(patch[:m], np.float32)
    elif ratio > 1:
        target = mean_over_extents(patch, np.arange(rows + 1) * pitch_mm,
                                   np.arange(m + 1) * thin_mm)
    else:   # thin slices finer than the in-plane pixels: linear interpolation, no aliasing
        centres = (np.arange(m) + 0.5) * thin_mm / pitch_mm - 0.5
        i0 = np.clip(np.floor(centres).astype(int), 0, rows - 2)
        t = np.clip(centres - i0, 0, 1)[:, None]
        target = ((1 - t) * patch[i0] + t * patch[i0 + 1]).astype(np.float32)
    back = interpolate_z(thicken(target[:, None], k, how), k, how, order, n_thin=m)[:, 0]
    return back, target
