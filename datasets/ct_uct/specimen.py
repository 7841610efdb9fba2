"""A SIMULATED lung specimen, seen by a µCT scanner and by a clinical CT scanner.

The phantom is a tissue-fraction volume (0 = air, 1 = soft tissue) on a µCT grid: alveolar
septa (the zero level set of smooth random noise: a foam of closed cells), a branching vessel
tree (solid), a branching bronchiole tree (air lumen inside a tissue wall), a lobulated nodule,
and a plastic container around the specimen. Two renderings of the SAME anatomy:

- µCT: scanner units, air about 500, tissue 11,000-15,000 (texture), plastic 4,000, noise;
- clinical CT: PSF blur, 1/k sampling in x, y and z (slab averages), HU (air -1000, tissue 40,
  plastic 100), noise.

So an SR method's output on the clinical rendering can be scored against the true µCT slice,
which no real dataset offers. Everything is deterministic per seed; 256^3 takes seconds.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

UCT_AIR, UCT_TISSUE, UCT_PLASTIC, UCT_NOISE = 500.0, 13000.0, 4000.0, 350.0
HU_AIR, HU_TISSUE, HU_PLASTIC, HU_NOISE = -1000.0, 40.0, 100.0, 15.0


@dataclass
class Specimen:
    uct: np.ndarray           # (z, y, x) float32, µCT units
    tissue: np.ndarray        # (z, y, x) float32 tissue fraction in [0, 1] (the truth)
    container: np.ndarray     # (z, y, x) bool, the plastic tube
    voxel_mm: float


def _segment_tree(rng, start, direction, length, radius, depth, out):
    """Recursive binary branching: each child is shorter, thinner and turned by ~30 degrees."""
    end = start + direction * length
    out.append((start, end, radius))
    if depth == 0 or radius < 1.0:
        return
    for sign in (-1, 1):
        turn = rng.normal(size=3)
        turn -= turn.dot(direction) * direction
        turn /= np.linalg.norm(turn) + 1e-9
        child = direction * np.cos(0.5) + sign * turn * np.sin(0.5)
        _segment_tree(rng, end, child / np.linalg.norm(child), length * 0.75, radius * 0.72,
                      depth - 1, out)


def _draw_segments(shape, segments, inner: float, value, grid_out, lumen_out=None):
    """Rasterise tubes: distance to each segment inside its bounding box only (fast)."""
    for a, b, r in segments:
        lo = np.maximum(np.floor(np.minimum(a, b) - r - 1).astype(int), 0)
        hi = np.minimum(np.ceil(np.maximum(a, b) + r + 2).astype(int), shape)
        if np.any(hi <= lo):
            continue
        zz, yy, xx = np.meshgrid(*(np.arange(l, h) for l, h in zip(lo, hi)), indexing="ij")
        p = np.stack([zz, yy, xx], -1).astype(np.float32)
        ab = (b - a).astype(np.float32)
        t = np.clip(((p - a) @ ab) / max(float(ab @ ab), 1e-6), 0, 1)
        d = np.linalg.norm(p - (a + t[..., None] * ab), axis=-1)
        box = tuple(slice(l, h) for l, h in zip(lo, hi))
        grid_out[box] = np.maximum(grid_out[box], np.clip(r + 0.5 - d, 0, 1) * value)
        if lumen_out is not None:
            lumen_out[box] |= d < r * inner


def simulate(size: int = 256, seed: int = 0, voxel_mm: float = 0.05) -> Specimen:
    rng = np.random.default_rng(seed)
    shape = (size, size, size)
    # alveolar foam: thin walls where smooth noise crosses zero (cells ~ 5-6 voxels = ~0.3 mm)
    field = ndimage.gaussian_filter(rng.standard_normal(shape, dtype=np.float32), 2.2)
    field /= field.std()
    tissue = np.clip(1.0 - np.abs(field) / 0.28, 0, 1).astype(np.float32)

    # vessels (solid) and bronchioles (walls around an air lumen), entering from the top
    c = np.array([size * 0.1, size / 2, size / 2])
    vessels, airways = [], []
    _segment_tree(rng, c + [0, -size * 0.12, 0], np.array([1.0, 0.15, 0.05]), size * 0.3,
                  size * 0.035, 4, vessels)
    _segment_tree(rng, c + [0, size * 0.12, 0], np.array([1.0, -0.1, 0.1]), size * 0.3,
                  size * 0.04, 4, airways)
    for seg in vessels + airways:
        seg[1][:] = np.clip(seg[1], 0, size - 1)
    _draw_segments(shape, vessels, 0.0, 1.0, tissue)
    lumen = np.zeros(shape, bool)
    _draw_segments(shape, airways, 0.6, 1.0, tissue, lumen)
    tissue[lumen] = 0.0

    # a lobulated solid nodule
    zz, yy, xx = np.ogrid[:size, :size, :size]
    centre = np.array([0.6, 0.4, 0.62]) * size
    for offset, rad in [((0, 0, 0), 0.07), ((0.04, 0.03, 0), 0.045), ((-0.03, 0, 0.04), 0.04)]:
        cz, cy, cx = centre + np.array(offset) * size
        tissue[(zz - cz) ** 2 + (yy - cy) ** 2 + (xx - cx) ** 2 < (rad * size) ** 2] = 1.0

    # the specimen fills a cylinder along z; a plastic tube holds it
    r = np.sqrt((yy - size / 2) ** 2 + (xx - size / 2) ** 2)
    inside = np.broadcast_to(r < size * 0.40, shape)
    container = np.broadcast_to((r > size * 0.44) & (r < size * 0.455), shape).copy()
    tissue = np.where(inside, tissue, 0.0).astype(np.float32)

    texture = ndimage.gaussian_filter(rng.standard_normal(shape, dtype=np.float32), 4)
    texture *= 1000.0 / max(float(texture.std()), 1e-6)
    uct = UCT_AIR + tissue * (UCT_TISSUE - UCT_AIR + texture)
    uct = np.where(container, UCT_PLASTIC, uct)
    uct += rng.normal(0, UCT_NOISE, shape).astype(np.float32)
    return Specimen(np.clip(uct, 0, None).astype(np.float32), tissue, container, voxel_mm)


def render_clinical(spec: Specimen, k: int = 8, seed: int = 0, psf_sigma_mm: float = 0.25,
                    with_container: bool = False) -> np.ndarray:
    """The same specimen through a clinical scanner: HU, PSF blur, k-fold coarser in x, y, z
    (each clinical slice averages a slab of k µCT slices). Returns (z/k, y/k, x/k) HU.
    Without the container by default: the µCT reference it is scored against has it removed."""
    hu = HU_AIR + spec.tissue * (HU_TISSUE - HU_AIR)
    if with_container:
        hu = np.where(spec.container, HU_PLASTIC, hu)
    hu = hu.astype(np.float32)
    hu = ndimage.gaussian_filter(hu, psf_sigma_mm / spec.voxel_mm)
    z, y, x = (n - n % k for n in hu.shape)
    hu = hu[:z, :y, :x].reshape(z // k, k, y // k, k, x // k, k).mean((1, 3, 5))
    noise = np.random.default_rng(seed + 1).normal(0, HU_NOISE, hu.shape)
    return (hu + noise).astype(np.float32)
