"""A user's folder of scans, one patient each: what `--data-dir` names for a dataset that takes
the user's own CTs (lung-ct). It may be
- one scan: a NIfTI / NRRD / MHA file, a DICOM series folder, or a folder `benchsr export-data`
  wrote for one patient;
- a folder of scans: such files, DICOM series subfolders and prepared files
  (NAME.benchsr-prepared.npz), each a patient named by its file or folder name.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from benchsr.data.prepared import PREPARED, PREPARED_SUFFIX, prepared_file, prepared_names
from benchsr.data.volumes import sitk
from benchsr.errors import BenchError

VOLUME_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")


@dataclass(frozen=True)
class Scan:
    patient: str           # what every table calls it (each evaluation image's volume)
    path: Path             # a file, a DICOM folder, or a prepared file / folder
    series: str | None = None


def patient_name(path: Path) -> str:
    """A file's name without its volume suffix, or a folder's name."""
    name = path.name
    for suffix in (PREPARED_SUFFIX, *VOLUME_SUFFIXES):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def _is_dicom_folder(folder: Path) -> bool:
    return bool(sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder)))


def find_scans(path: Path, series: str | None = None) -> list[Scan]:
    """The scans at `path`, one patient each, in name order (or a one-line BenchError)."""
    path = Path(path)
    if path.is_file():
        return [Scan(patient_name(path), path, series)]
    if not path.is_dir():
        raise BenchError(f"{path}: no such file or folder")
    if prepared_file(path) is not None:
        return [Scan(_prepared_patient(path / PREPARED, path.name), path)]
    entries = sorted(p for p in path.iterdir() if not p.name.startswith("."))
    files = [p for p in entries if p.is_file() and p.name.lower().endswith(
        (*VOLUME_SUFFIXES, PREPARED_SUFFIX)) and not p.name.lower().endswith(".raw")]
    if not files and _is_dicom_folder(path):
        return [Scan(path.name, path, series)]          # the folder is one DICOM series
    folders = [p for p in entries if p.is_dir() and _is_dicom_folder(p)]
    scans = [Scan(_prepared_patient(p, patient_name(p)) if p.name.endswith(PREPARED_SUFFIX)
                  else patient_name(p), p, None if p.is_file() else series)
             for p in files + folders]
    if not scans:
        raise BenchError(f"{path}: no DICOM series found in this folder, nor NIfTI, NRRD or "
                         f"MHA files, DICOM series subfolders or a folder `benchsr export-data` "
                         f"wrote")
    names = [s.patient for s in scans]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise BenchError(f"{path}: two scans would be patient {twice[0]!r} (e.g. a.nii and "
                         f"a.nrrd); rename one")
    return sorted(scans, key=lambda s: s.patient)


def _prepared_patient(file: Path, default: str) -> str:
    return prepared_names(file).get("patient") or default


def safe_name(patient: str) -> str:
    """A patient's name as a file name (export-data writes NAME.benchsr-prepared.npz)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", patient)
