"""Random patch sampling from a SliceStack, honouring its mask and recording where each came from."""
from __future__ import annotations

import numpy as np

from benchsr.contracts import BenchError, SliceStack


class PatchSampler:
    def __init__(self, stack: SliceStack, size: int, what: str = "patch", max_tries: int = 2000):
        n, h, w = stack.images.shape
        shape = getattr(stack.images, "slice_shape", lambda z: (h, w))
        # a ragged stack (patients of different sizes): patches come from the slices they fit
        self.fits = [z for z in range(n) if min(shape(z)) >= size]
        if not self.fits:
            raise BenchError(f"{what}: images are {h}x{w}, smaller than the {size}x{size} patch")
        self.stack, self.size, self.what, self.max_tries = stack, size, what, max_tries

    def _ok(self, z: int, y: int, x: int) -> bool:
        mask, s = self.stack.mask, self.size
        if mask is None:
            return True
        if self.stack.mask_rule == "all":
            return bool(mask[z, y:y + s, x:x + s].all())
        return bool(mask[z, y + s // 2, x + s // 2])

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, list[tuple]]:
        """n patches (n, 1, size, size) float32 and their (source, y, x) positions."""
        out, where, _ = self.draw(n, rng)
        return out, where

    def draw(self, n: int, rng: np.random.Generator):
        """As `sample`, and each patch's voxel size in mm ((n, 3), x y z; None when the stack
        gives no spacing)."""
        imgs, s = self.stack.images, self.size
        out = np.empty((n, 1, s, s), dtype=np.float32)
        where, zs = [], []
        for i in range(n):
            for _ in range(self.max_tries):
                z = self.fits[int(rng.integers(len(self.fits)))]
                # slices of a ragged stack (patients of different sizes) each have their own
                h, w = imgs.slice_shape(z) if hasattr(imgs, "slice_shape") else imgs.shape[1:]
                y = int(rng.integers(h - s + 1))
                x = int(rng.integers(w - s + 1))
                if self._ok(z, y, x):
                    break
            else:
                raise BenchError(f"{self.what}: no {s}x{s} patch fits inside the mask "
                                 f"after {self.max_tries} tries")
            out[i, 0] = imgs[z, y:y + s, x:x + s]
            where.append((self.stack.sources[z], y, x))
            zs.append(z)
        spacing = self.stack.spacing
        return out, where, None if spacing is None else np.asarray(spacing, np.float32)[zs]
