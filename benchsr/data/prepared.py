"""A scan in a compact, portable form: its HU, body mask and geometry in one .npz, read without
SimpleITK or the package that ships the scan (`benchsr export-data`; a machine that receives
only the working tree, such as a bare GPU machine, trains from it). A dataset folder holding
PREPARED is read from it; the arrays are those the scan itself gives, bit for bit."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from benchsr.data.cache import content_hash
from benchsr.data.volumes import body_mask, read_volume, sitk
from benchsr.errors import BenchError
from benchsr.results import atomic_write_bytes

PREPARED = "benchsr-prepared.npz"
FIELDS = ("hu", "body", "spacing", "origin", "direction")


def read_scan(folder: Path) -> dict:
    """hu (z, y, x) as stored, body mask, spacing / origin / direction (x, y, z) of a scan:
    from PREPARED when the folder holds one, else from the scan itself (SimpleITK)."""
    prepared = Path(folder) / PREPARED
    if prepared.is_file():
        try:
            with np.load(prepared, allow_pickle=False) as z:
                scan = {k: z[k] for k in FIELDS}
        except (OSError, ValueError, KeyError) as exc:
            raise BenchError(f"{prepared}: not a prepared scan ({exc}); write it again with "
                             "`benchsr export-data`") from None
        scan["body"] = np.unpackbits(scan["body"], count=scan["hu"].size).reshape(
            scan["hu"].shape).astype(bool)
        return scan
    image = read_volume(folder)
    return {"hu": sitk.GetArrayFromImage(image), "body": body_mask(image),
            "spacing": np.asarray(image.GetSpacing()), "origin": np.asarray(image.GetOrigin()),
            "direction": np.asarray(image.GetDirection())}


def source_of(folder: Path) -> Path:
    """What the volume cache keys a scan on: its prepared file, or the scan's folder."""
    prepared = Path(folder) / PREPARED
    return prepared if prepared.is_file() else Path(folder)


def write_scan(folder: Path, out: Path, names: dict[str, str]) -> Path:
    """OUT/PREPARED from the scan in `folder`, with `names` (what the dataset calls the scan:
    its series and patient) and the source's SHA-256."""
    scan = read_scan(folder)
    buf = io.BytesIO()
    np.savez_compressed(buf, **{k: scan[k] for k in FIELDS if k != "body"},
                        body=np.packbits(scan["body"]),
                        source_sha256=np.array(content_hash(folder)),
                        **{k: np.array(v) for k, v in names.items()})
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / PREPARED, buf.getvalue())
    return out / PREPARED


def prepared_names(folder: Path) -> dict[str, str]:
    """The names a prepared scan was written with ({} for a scan read from itself)."""
    prepared = Path(folder) / PREPARED
    if not prepared.is_file():
        return {}
    with np.load(prepared, allow_pickle=False) as z:
        return {k: str(z[k]) for k in z.files if k not in FIELDS and z[k].dtype.kind == "U"}
