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
              patient: str | None, fov=None) -> EvalVolume:
    """One evaluation slab: its real thin slices, the thick ones made from them by the
    protocol, the thin slices' body mask and field of view (None: no padding)."""
    return EvalVolume(name=name, thick=thicken(thin, k, how), thin=np.array(thin), source=source,
                      volume=patient, mask=None if mask is None else np.array(mask),
                      fov=None if fov is None else np.array(fov))


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
