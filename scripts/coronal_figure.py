"""A coronal view of through-plane `benchsr infer` outputs beside their thick input, at the same
physical scale (each volume's voxels drawn at their spacing), for results/README.md.

    python scripts/coronal_figure.py INPUT OUT.png LABEL=THIN.nii.gz [LABEL=THIN.nii.gz ...]

INPUT is what infer read (a NIfTI, or the DICOM folder); every THIN overlays it. The coronal
plane is the one through the middle row of the input; HU in [-1000, 500].
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from matplotlib.figure import Figure


def _read(path: str) -> sitk.Image:
    if Path(path).is_dir():
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames(reader.GetGDCMSeriesFileNames(path))
        return reader.Execute()
    return sitk.ReadImage(path)


def _coronal(img: sitk.Image, y: int) -> tuple[np.ndarray, float, float]:
    """(the coronal plane at row y, z spacing, x spacing), z upwards as a radiologist sees it."""
    arr = sitk.GetArrayFromImage(img)[:, y, :].astype(np.float32)
    sx, _, sz = img.GetSpacing()
    return arr[::-1], sz, sx


def main(argv: list[str]) -> None:
    source, out, outputs = argv[0], Path(argv[1]), [a.split("=", 1) for a in argv[2:]]
    thick = _read(source)
    y = thick.GetSize()[1] // 2
    panels = [(f"input ({thick.GetSpacing()[2]:g} mm slices)", thick)]
    panels += [(f"{label} ({sitk.ReadImage(p).GetSpacing()[2]:g} mm)", sitk.ReadImage(p))
               for label, p in outputs]
    fig = Figure(figsize=(4.2 * len(panels), 4.6), dpi=110)
    for i, (title, img) in enumerate(panels):
        plane, sz, sx = _coronal(img, y)
        ax = fig.add_subplot(1, len(panels), i + 1)
        ax.imshow(np.clip(plane, -1000, 500), cmap="gray", vmin=-1000, vmax=500,
                  aspect=sz / sx, interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"coronal plane at row {y}: each voxel drawn at its spacing", fontsize=10)
    fig.savefig(out, bbox_inches="tight")


if __name__ == "__main__":
    main(sys.argv[1:])
