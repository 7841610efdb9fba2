"""Volume I/O, intensity windows, masks and degradations, through SimpleITK (and basicsr's
MATLAB-style imresize).

Arrays are (z, y, x) as SimpleITK's GetArrayFromImage gives them; spacing is (x, y, z) in mm as
GetSpacing gives it; SimpleITK images are in LPS physical space.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from benchsr.errors import BenchError
from benchsr.optional import OptionalModule

log = logging.getLogger("benchsr")
# SimpleITK when a scan is read or written (or a mask is made from one); ITK's own warnings go
# to stderr in several lines, and our errors say what matters in one
sitk = OptionalModule("SimpleITK", "reading or writing a scan",
                      setup=lambda m: m.ProcessObject.SetGlobalWarningDisplay(False))
nib = OptionalModule("nibabel", "checking a NIfTI file")
# basicsr imports slowly: only when a resize is asked for
matlab = OptionalModule("basicsr.utils.matlab_functions",
                        "the MATLAB-style bicubic resize (basicsr)", pip="basicsr-fixed")


def _check_nifti(path: Path) -> None:
    """ITK's NIfTI reader turns NaN voxels into 0 and reads a truncated .gz without complaint;
    nibabel reads the raw voxels, so a NIfTI is checked through it first, 32 slices at a time
    (memory stays bounded whatever the volume's length)."""
    bad = 0
    try:
        image = nib.load(str(path), keep_file_open=True)
        # ITK replaces a NaN pixdim with 1 mm before any spacing check could see it
        _check_spacing(path, [float(v) for v in image.header.get_zooms()[:3]])
        proxy, shape = image.dataobj, image.shape
        slabs = [proxy] if len(shape) != 3 else [proxy[..., z:z + 32] for z in range(0, shape[2], 32)]
        for slab in slabs:
            data = np.asarray(slab)
            if data.dtype.kind == "f":
                bad += int((~np.isfinite(data)).sum())
    except BenchError:
        raise
    except Exception as exc:  # noqa: BLE001 - any decoder failure is a bad file
        msg = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise BenchError(f"{path}: cannot read image (corrupt or truncated: {msg})") from None
    if bad:
        raise BenchError(f"{path}: {bad} NaN/Inf voxels")


def _file_reader(path: Path) -> sitk.ImageFileReader:
    """An ImageFileReader whose header has been read and checked (raises BenchError)."""
    if path.name.endswith((".nii", ".nii.gz")):
        _check_nifti(path)
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.ReadImageInformation()
    _check_spacing(path, reader.GetSpacing())   # before ITK folds a sign into direction
    _check_shape(path, reader.GetDimension(), reader.GetNumberOfComponents())
    return reader


@contextlib.contextmanager
def _native_stderr():
    """What C++ code (ITK's MetaIO, say) writes to the process's stderr while inside, captured
    instead of printed: yields a list that holds its lines afterwards."""
    said: list[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield said
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            said += [line.strip() for line in sink.read().decode(errors="replace").splitlines()
                     if line.strip()]


@contextlib.contextmanager
def _read_errors(path: Path):
    """ITK's RuntimeErrors as one-line BenchErrors naming the file, with what its readers
    printed (a truncated .mha: 'data not read completely') in place of ITK's last line, which
    then often says 'No such file or directory' about a file that is there."""
    with _native_stderr() as said:
        try:
            yield
        except RuntimeError as exc:
            raised = exc
        else:
            raised = None
    for line in said if raised is None else ():
        log.warning("%s: %s", path, line)            # a reader's warning: shown, not fatal
    if raised is not None:
        msg = str(raised).strip().splitlines()[-1] if str(raised).strip() else "unreadable"
        if "spacing" in msg.lower():   # ITK refuses zero spacing while reading the header
            raise BenchError(f"{path}: absurd voxel spacing ({msg})") from None
        raise BenchError(f"{path}: cannot read image ({said[0] if said else msg})") from None


def _dicom_header(name: str) -> sitk.ImageFileReader | None:
    reader = sitk.ImageFileReader()
    reader.SetFileName(name)
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        return None
    return reader


def _tag(reader: sitk.ImageFileReader, key: str, default: str = "") -> str:
    return reader.GetMetaData(key).strip() if reader.HasMetaDataKey(key) else default


def dicom_series(folder: Path, series: str | None = None) -> list[str]:
    """The files of the one DICOM series in `folder` (or of `series`, a SeriesInstanceUID),
    checked: several series need a choice; every file must be readable DICOM of some series;
    slices must say where they lie, share one pixel spacing and be evenly spaced (a missing or
    corrupt slice would silently stretch z)."""
    ids = list(sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder)))
    if not ids:
        raise BenchError(f"{folder}: no DICOM series found in this folder")
    if series is None and len(ids) > 1:
        listing = "; ".join(_series_line(folder, uid) for uid in ids)
        raise BenchError(f"{folder}: {len(ids)} DICOM series, choose one with --series UID: {listing}")
    if series is not None and series not in ids:
        raise BenchError(f"{folder}: no DICOM series {series} here (found: {', '.join(ids)})")
    uid = series or ids[0]
    names = list(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), uid))
    known = {Path(n).name for i in ids for n in sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), i)}
    bad = [p.name for p in sorted(folder.iterdir()) if p.is_file() and not p.name.startswith(".")
           and p.name not in known and _dicom_header(str(p)) is None]
    if bad:
        raise BenchError(f"{folder}: {len(bad)} file(s) are not readable DICOM (corrupt or "
                         f"truncated?): {', '.join(bad[:5])}")
    _check_geometry(folder, names)
    return names


def _series_line(folder: Path, uid: str) -> str:
    names = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), uid)
    head = _dicom_header(names[0])
    desc = _tag(head, "0008|103e", "no description") if head is not None else "unreadable"
    return f"{uid} ({desc}, {len(names)} slices)"


def _numbers(head, key: str) -> list[float] | None:
    try:
        return [float(v) for v in _tag(head, key).split("\\")]
    except ValueError:
        return None


def _check_geometry(folder: Path, names: list[str]) -> None:
    """Every slice says where it lies (ImagePositionPatient, ImageOrientationPatient) and has
    the series' pixel spacing, and the slices are evenly spaced (1 % tolerance). Without
    positions, ITK would guess 1 mm between slices and an origin of 0, whatever
    SliceThickness says; a slice of another pixel size would be stretched to the others'."""
    if len(names) < 2:
        return
    heads = [_dicom_header(n) for n in names]
    pos = [_numbers(h, "0020|0032") for h in heads]
    cos = [_numbers(h, "0020|0037") for h in heads]
    missing = [Path(n).name for n, p, c in zip(names, pos, cos)
               if len(p or []) != 3 or len(c or []) != 6]
    if missing:
        raise BenchError(f"{folder}: {len(missing)} of {len(names)} slices lack ImagePositionPatient "
                         f"or ImageOrientationPatient (e.g. {missing[0]}): their spacing and origin "
                         f"would be guessed (1 mm, 0), not read")
    spacing = [_numbers(h, "0028|0030") for h in heads]
    odd = [i for i, sp in enumerate(spacing)
           if sp is None or len(sp) != 2 or not np.allclose(sp, spacing[0], rtol=1e-4)]
    if odd and spacing[0] is not None:
        i = odd[0]
        raise BenchError(f"{folder}: {Path(names[i]).name} has PixelSpacing "
                         f"{_tag(heads[i], '0028|0030') or 'missing'} mm where the series has "
                         f"{_tag(heads[0], '0028|0030')} mm ({len(odd)} such slice(s))")
    if len(names) < 3:
        return
    z = np.sort(np.array(pos) @ np.cross(cos[0][:3], cos[0][3:]))
    gaps = np.diff(z)
    step = float(np.median(gaps))
    off = np.flatnonzero(np.abs(gaps - step) > max(0.01 * abs(step), 1e-3))
    if step <= 0 or len(off):
        i = int(off[0]) if len(off) else 0
        raise BenchError(f"{folder}: slice positions are not evenly spaced: {gaps[i]:.4g} mm "
                         f"between {z[i]:.4g} and {z[i + 1]:.4g} mm where the series steps "
                         f"{step:.4g} mm (a missing, duplicated or corrupt slice?)")


def read_volume(path: Path, series: str | None = None) -> sitk.Image:
    """A file SimpleITK reads, or a folder holding a DICOM series (sorted by position)."""
    path = Path(path)
    with _read_errors(path):
        if path.is_dir():
            reader = sitk.ImageSeriesReader()
            reader.SetFileNames(dicom_series(path, series))
            image = reader.Execute()
            _check_shape(path, image.GetDimension(), image.GetNumberOfComponentsPerPixel())
            _check_spacing(path, image.GetSpacing())
        elif path.is_file():
            image = _file_reader(path).Execute()   # header already checked
        elif path.exists():
            raise BenchError(f"{path}: not a regular file or folder (a pipe or device?)")
        else:
            raise BenchError(f"{path}: no such file or folder")
    return image


def _check_shape(path: Path, dimension: int, components: int) -> None:
    if dimension != 3:
        raise BenchError(f"{path}: expected a 3D volume, got {dimension}D")
    if components != 1:
        raise BenchError(f"{path}: expected one value per voxel, got {components} "
                         "(a colour or vector image)")


MAX_SPACING_MM = 1000.0   # a voxel a metre wide is a broken header, not a CT
MIN_SPACING_MM = 1e-5     # 10 nm: below any X-ray CT, nano-CT included; 1e-9 is a broken header


def _check_spacing(path: Path, spacing) -> None:
    if not all(np.isfinite(v) and MIN_SPACING_MM <= v <= MAX_SPACING_MM for v in spacing):
        raise BenchError(f"{path}: absurd voxel spacing {tuple(spacing)} (must be between "
                         f"{MIN_SPACING_MM:g} and {MAX_SPACING_MM:g} mm)")


class SlabReader:
    """A volume read a region at a time. A file goes through ImageFileReader's region
    extraction, which ITK streams from disk for uncompressed formats (.nii, .mha/.mhd, raw
    .nrrd) and reads whole for compressed ones; a DICOM folder is read whole, once."""

    def __init__(self, path: Path, series: str | None = None):
        self.path = Path(path)
        self._image = self._reader = None
        if self.path.is_file():
            if series is not None:
                raise BenchError(f"--series {series}: {self.path} is a file; --series chooses a "
                                 "series in a DICOM folder")
            with _read_errors(self.path):
                self._reader = _file_reader(self.path)
            info = self._reader
        else:
            self._image = info = read_volume(self.path, series)
        self.size = tuple(info.GetSize())               # (x, y, z)
        self.spacing = tuple(info.GetSpacing())
        self.origin = tuple(info.GetOrigin())
        self.direction = tuple(info.GetDirection())

    def region(self, z0: int, z1: int, y0: int = 0, y1: int | None = None, x0: int = 0,
               x1: int | None = None) -> np.ndarray:
        """Voxels [z0:z1, y0:y1, x0:x1] as stored (z, y, x)."""
        y1 = self.size[1] if y1 is None else y1
        x1 = self.size[0] if x1 is None else x1
        if self._image is not None:
            return sitk.GetArrayViewFromImage(self._image)[z0:z1, y0:y1, x0:x1]
        self._reader.SetExtractIndex((x0, y0, z0))
        self._reader.SetExtractSize((x1 - x0, y1 - y0, z1 - z0))
        with _read_errors(self.path):
            return sitk.GetArrayFromImage(self._reader.Execute())

    def physical_point(self, index) -> tuple[float, ...]:
        """LPS position of a continuous (x, y, z) voxel index."""
        d = np.asarray(self.direction, np.float64).reshape(3, 3)
        return tuple(np.asarray(self.origin) + d @ (np.asarray(index, np.float64) * self.spacing))

    def check_hu(self, slab: int = 32) -> None:
        """check_hu over the whole volume, a slab at a time."""
        bad, lo, hi = 0, np.inf, -np.inf
        for z in range(0, self.size[2], slab):
            b, low, high = hu_summary(self.region(z, min(z + slab, self.size[2])))
            bad, lo, hi = bad + b, min(lo, low), max(hi, high)
        check_hu_summary(self.path, bad, lo, hi)


def hu_summary(hu: np.ndarray) -> tuple[int, float, float]:
    """(non-finite voxel count, min, max of the finite ones)."""
    if hu.dtype.kind == "f":   # integers cannot be NaN
        finite = np.isfinite(hu)
        bad = int(hu.size - finite.sum())
        vals = hu[finite] if bad else hu
    else:
        bad, vals = 0, hu
    return (bad, float(vals.min()), float(vals.max())) if vals.size else (bad, np.inf, -np.inf)


def check_hu_summary(path, bad: int, lo: float, hi: float) -> None:
    if bad:
        raise BenchError(f"{path}: {bad} NaN/Inf voxels")
    if lo > -500:
        raise BenchError(f"{path}: values {lo:g}..{hi:g} do not look like CT in HU "
                         "(no air below -500 HU)")
    if hi - lo < 300:
        raise BenchError(f"{path}: values {lo:g}..{hi:g} are nearly constant; not a CT volume")


def check_hu(hu: np.ndarray, path) -> None:
    """CT in Hounsfield units has air near -1000 and no NaN; anything else is refused."""
    check_hu_summary(path, *hu_summary(hu))


HU_RANGE = (-1100.0, 4000.0)   # where nearly every voxel of a CT in HU lies
HU_MOST = 0.9                  # the share of the voxels (in the field of view) that must


def check_hu_range(hu: np.ndarray, path) -> None:
    """A scan whose voxels (those inside its field of view) are not mostly within HU_RANGE is
    not in HU (scanner units, no rescale): one line, never a silently windowed volume."""
    share = float(((hu >= HU_RANGE[0]) & (hu <= HU_RANGE[1])).mean()) if hu.size else 0.0
    if share < HU_MOST:
        raise BenchError(f"{path}: only {share:.0%} of the voxels lie within "
                         f"{HU_RANGE[0]:g}..{HU_RANGE[1]:g} (values {hu.min():g}.."
                         f"{hu.max():g}): not CT in HU (no rescale to HU?)")


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


# Where each degradation puts the LR pixel centres, for a model that upsamples on its own
# (export-inputs writes it into manifest.json)
PIXEL_CONVENTION = {
    "bicubic": "pixel areas (MATLAB imresize): LR pixel i covers HR pixels [k*i, k*i + k); in "
               "scipy, zoom(lr, k, order=3, grid_mode=True, mode='grid-mirror')",
    "zoom": "corner-aligned (scipy zoom, grid_mode=False): the first and last pixel centres of "
            "LR and HR coincide",
    "avgpool": "pixel areas: LR pixel i is the mean of HR pixels [k*i, k*i + k)",
}


def degrade(img: np.ndarray, scale: int, kind: str = "bicubic") -> np.ndarray:
    """Downscale a 2D image by 1/scale, in [0, 1] like every image the contract passes.

    bicubic: MATLAB-style antialiased bicubic (basicsr's imresize, as SR benchmarks use);
    zoom: cubic-spline zoom (scipy, the SR-CycleGAN authors' code); avgpool: k x k mean.
    Both cubic kernels overshoot at edges (lung-ct: down to -0.06), so they are clipped.
    """
    h, w = img.shape
    if h % scale or w % scale:
        raise BenchError(f"image {h}x{w} is not divisible by the scale {scale}")
    if kind == "bicubic":
        out = matlab.imresize(img.astype(np.float64)[..., None], 1.0 / scale)[..., 0]
        return np.clip(out, 0, 1).astype(np.float32)
    if kind == "zoom":
        from scipy.ndimage import zoom
        return np.clip(zoom(img.astype(np.float64), 1.0 / scale, order=3), 0, 1).astype(np.float32)
    if kind == "avgpool":
        return img.reshape(h // scale, scale, w // scale, scale).mean((1, 3)).astype(np.float32)
    raise BenchError(f"unknown degradation '{kind}' (bicubic, zoom, avgpool)")


def stream_distance(a: np.ndarray, a_mask: np.ndarray, b: np.ndarray, b_mask: np.ndarray,
                    samples: int = 200_000, seed: int = 0) -> float:
    """1-Wasserstein distance (scipy.stats.wasserstein_distance) between the intensities inside
    the masks of two stacks of slices, on a fixed random subsample: do two unpaired training
    streams show the same anatomy?"""
    from scipy.stats import wasserstein_distance
    rng = np.random.default_rng(seed)
    pick = lambda v: v if v.size <= samples else rng.choice(v, samples, replace=False)  # noqa: E731
    return float(wasserstein_distance(pick(a[a_mask].ravel()), pick(b[b_mask].ravel())))


def degrade_batch(hr: np.ndarray, scale: int, kind: str) -> np.ndarray:
    """(B, C, k*p, k*p) HR patches -> (B, C, p, p) under `degrade`: how training pairs are made,
    with the very function the evaluation degrades with."""
    return np.stack([[degrade(ch, scale, kind) for ch in img] for img in hr]).astype(np.float32)


def enlarge_bicubic(img: np.ndarray, scale: int) -> np.ndarray:
    """MATLAB-style bicubic x scale of a 2D image (basicsr's imresize), clipped to [0, 1]: the
    `bicubic` method and the comparison grid's bicubic panel are this one function."""
    return np.clip(matlab.imresize(img.astype(np.float64)[..., None], scale)[..., 0], 0, 1
                   ).astype(np.float32)


LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])   # ITK's LPS patient axes against NIfTI's RAS


def ras_affine(spacing, origin, direction) -> np.ndarray:
    """The NIfTI (RAS) affine of a grid in ITK's LPS geometry (SimpleITK's spacing, origin and
    row-major direction)."""
    out = np.eye(4)
    out[:3, :3] = LPS_TO_RAS @ np.asarray(direction, np.float64).reshape(3, 3) @ np.diag(spacing)
    out[:3, 3] = LPS_TO_RAS @ np.asarray(origin, np.float64)
    return out


def lps_geometry(affine: np.ndarray) -> dict:
    """Spacing, origin and direction (ITK's LPS) of a NIfTI affine: ras_affine inverted."""
    m = LPS_TO_RAS @ np.asarray(affine, np.float64)[:3, :3]
    spacing = np.linalg.norm(m, axis=0)
    return {"spacing": spacing.tolist(), "origin": (LPS_TO_RAS @ affine[:3, 3]).tolist(),
            "direction": (m / spacing).ravel().tolist()}
