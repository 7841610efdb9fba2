"""Volume I/O, intensity windows, masks and degradations, through SimpleITK (and basicsr's
MATLAB-style imresize).

Arrays are (z, y, x) as SimpleITK's GetArrayFromImage gives them; spacing is (x, y, z) in mm as
GetSpacing gives it; SimpleITK images are in LPS physical space.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .contracts import BenchError

# ITK's own warnings go to stderr in several lines; our errors say what matters in one
sitk.ProcessObject.SetGlobalWarningDisplay(False)


def _check_nifti(path: Path) -> None:
    """ITK's NIfTI reader turns NaN voxels into 0 and reads a truncated .gz without complaint;
    nibabel reads the raw voxels, so a NIfTI is checked through it first, 32 slices at a time
    (memory stays bounded whatever the volume's length)."""
    import nibabel as nib
    bad = 0
    try:
        image = nib.load(str(path), keep_file_open=True)
        proxy, shape = image.dataobj, image.shape
        slabs = [proxy] if len(shape) != 3 else [proxy[..., z:z + 32] for z in range(0, shape[2], 32)]
        for slab in slabs:
            data = np.asarray(slab)
            if data.dtype.kind == "f":
                bad += int((~np.isfinite(data)).sum())
    except Exception as exc:  # noqa: BLE001 - any decoder failure is a bad file
        msg = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise BenchError(f"{path}: cannot read image (corrupt or truncated: {msg})") from None
    if bad:
        raise BenchError(f"{path}: {bad} NaN/Inf voxels")


def read_volume(path: Path) -> sitk.Image:
    """A file SimpleITK reads, or a folder holding one DICOM series (sorted by position)."""
    path = Path(path)
    try:
        if path.is_dir():
            names = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(path))
            if not names:
                raise BenchError(f"{path}: no DICOM series found in this folder")
            reader = sitk.ImageSeriesReader()
            reader.SetFileNames(names)
            image = reader.Execute()
        elif path.is_file():
            if path.name.endswith((".nii", ".nii.gz")):
                _check_nifti(path)
            reader = sitk.ImageFileReader()
            reader.SetFileName(str(path))
            reader.ReadImageInformation()
            _check_spacing(path, reader.GetSpacing())   # before ITK folds a sign into direction
            image = reader.Execute()
        else:
            raise BenchError(f"{path}: no such file or folder")
    except RuntimeError as exc:
        msg = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unreadable"
        if "spacing" in msg.lower():   # ITK refuses zero spacing while reading the header
            raise BenchError(f"{path}: absurd voxel spacing ({msg})") from None
        raise BenchError(f"{path}: cannot read image ({msg})") from None
    if image.GetDimension() != 3:
        raise BenchError(f"{path}: expected a 3D volume, got {image.GetDimension()}D")
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise BenchError(f"{path}: expected one value per voxel, got "
                         f"{image.GetNumberOfComponentsPerPixel()} (a colour or vector image)")
    _check_spacing(path, image.GetSpacing())
    return image


def _check_spacing(path: Path, spacing) -> None:
    if not all(np.isfinite(v) and v > 0 for v in spacing):
        raise BenchError(f"{path}: absurd voxel spacing {tuple(spacing)} (must be positive)")


def check_hu(hu: np.ndarray, path) -> None:
    """CT in Hounsfield units has air near -1000 and no NaN; anything else is refused."""
    if hu.dtype.kind == "f" and not np.isfinite(hu).all():   # integers cannot be NaN
        raise BenchError(f"{path}: {int((~np.isfinite(hu)).sum())} NaN/Inf voxels")
    lo, hi = float(hu.min()), float(hu.max())
    if lo > -500:
        raise BenchError(f"{path}: values {lo:g}..{hi:g} do not look like CT in HU "
                         "(no air below -500 HU)")
    if hi - lo < 300:
        raise BenchError(f"{path}: values {lo:g}..{hi:g} are nearly constant; not a CT volume")


def resample(image: sitk.Image, spacing_mm) -> sitk.Image:
    """Linear resampling to `spacing_mm` (x, y, z), same origin and direction; air outside."""
    old_sp, old_size = image.GetSpacing(), image.GetSize()
    size = [max(1, int(round(n * s / t))) for n, s, t in zip(old_size, old_sp, spacing_mm)]
    return sitk.Resample(image, size, sitk.Transform(), sitk.sitkLinear, image.GetOrigin(),
                         [float(v) for v in spacing_mm], image.GetDirection(), -1024.0,
                         image.GetPixelID())


def window(array: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Clip to [lo, hi] and map linearly to [0, 1] (float32)."""
    return ((np.clip(array.astype(np.float32), lo, hi) - lo) / (hi - lo)).astype(np.float32)


def body_mask(image: sitk.Image, threshold_hu: float = -500.0) -> np.ndarray:
    """The patient's body: voxels above `threshold_hu`, largest connected component, holes
    filled slice by slice (lungs are holes in the body). Returns a (z, y, x) bool array."""
    fg = sitk.Cast(image, sitk.sitkFloat32) > threshold_hu
    largest = sitk.RelabelComponent(sitk.ConnectedComponent(fg), sortByObjectSize=True) == 1
    filled = [sitk.BinaryFillhole(largest[:, :, z]) for z in range(image.GetSize()[2])]
    return sitk.GetArrayFromImage(sitk.JoinSeries(filled)).astype(bool)


def degrade(img: np.ndarray, scale: int, kind: str = "bicubic") -> np.ndarray:
    """Downscale a 2D image by 1/scale.

    bicubic: MATLAB-style antialiased bicubic (basicsr's imresize, as SR benchmarks use);
    zoom: cubic-spline zoom (scipy, the SR-CycleGAN authors' code); avgpool: k x k mean.
    """
    h, w = img.shape
    if h % scale or w % scale:
        raise BenchError(f"image {h}x{w} is not divisible by the scale {scale}")
    if kind == "bicubic":
        from basicsr.utils.matlab_functions import imresize  # lazy: basicsr imports slowly
        return imresize(img.astype(np.float64)[..., None], 1.0 / scale)[..., 0].astype(np.float32)
    if kind == "zoom":
        from scipy.ndimage import zoom
        return zoom(img.astype(np.float64), 1.0 / scale, order=3).astype(np.float32)
    if kind == "avgpool":
        return img.reshape(h // scale, scale, w // scale, scale).mean((1, 3)).astype(np.float32)
    raise BenchError(f"unknown degradation '{kind}' (bicubic, zoom, avgpool)")
