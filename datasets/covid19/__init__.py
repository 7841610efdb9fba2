"""covid19: the COVID-19-20 Lung CT Lesion Segmentation Challenge data, 4x (paper Sec. 3.7).

The user obtains the data from covid-segmentation.grand-challenge.org; benchsr never downloads
it. Layout (the folder given by --data-dir or $BENCHSR_COVID19_DIR):

    COVID-19-20_v2/Train/volume-covid19-A-XXXX[_suffix]_ct.nii.gz   (+ ..._seg.nii.gz beside)
    COVID-19-20_v2/Validation/volume-covid19-A-XXXX[_suffix]_ct.nii.gz

Protocol: HU window [-1000, 500] -> [0, 1]; axial slices; MATLAB-style bicubic x1/4. The training
cases are split into two disjoint halves (alternating in name order): one feeds the LR stream
(degraded), the other the HR stream. Evaluation: whole Validation slices, degraded, then
super-resolved (tiled when eval.tile is set), scored per slice and averaged per volume.
`data.plane: through` is the through-plane track: the Train cases give in-plane patches, and
each Validation volume is cut into slabs of `data.z_slab` thin slices whose thick slices
(`data.z_factor`, `data.z_degradation`) are reconstructed and scored against them. When
`data.z_slabs_per_volume` leaves slabs unscored, `data.z_val_slabs` of them (evenly spaced) are
the learning curve's: same patients as the scored slabs, never the same slices.
Preprocessed volumes are cached (benchsr.cache), so a second run memory-maps them.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from benchsr.data import StackedSlices, cached
from benchsr.contracts import BenchError, Dataset, EvalImage, PreparedData, SliceStack
from benchsr.data import sitk
from benchsr.data import (body_mask, check_hu, degrade, eval_slab, read_volume, resample,
                          slab_geometry, window)

ENV = "BENCHSR_COVID19_DIR"
CT_NAME = re.compile(r"^volume-covid19-A-\d{4}(_[A-Za-z0-9]+)*_ct\.nii(\.gz)?$")
WHERE = ("get COVID-19-20 from https://covid-segmentation.grand-challenge.org and pass "
         f"--data-dir PATH/COVID-19-20_v2 (or set ${ENV}); expected Train/*_ct.nii.gz with "
         "*_seg.nii.gz beside and Validation/*_ct.nii.gz")


def find_root(data_dir: Path | None) -> Path:
    """The folder holding Train/ and Validation/ (the given one or its COVID-19-20_v2 child)."""
    given = data_dir or (Path(os.environ[ENV]) if os.environ.get(ENV) else None)
    if given is None:
        raise BenchError(f"covid19 needs its data folder: {WHERE}")
    given = Path(given)
    if not given.is_dir():
        raise BenchError(f"covid19: {given} is not a folder; {WHERE}")
    for root in (given, given / "COVID-19-20_v2"):
        if (root / "Train").is_dir() and (root / "Validation").is_dir():
            return root
    raise BenchError(f"covid19: {given} has no Train/ and Validation/ folders; {WHERE}")


def case_files(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if CT_NAME.match(p.name))
    if not files:
        raise BenchError(f"covid19: no volume-covid19-A-*_ct.nii.gz files in {folder}; {WHERE}")
    return files


def case_id(path: Path) -> str:
    return re.sub(r"_ct\.nii(\.gz)?$", "", path.name)


class Covid19(Dataset):
    name = "covid19"
    description = "COVID-19-20 challenge CT (user's copy), 4x protocol of the paper's Sec. 3.7"
    scale = 4
    needs_data_dir = True

    def _volume(self, path: Path, hr_patch: int) -> dict[str, np.ndarray]:
        """Windowed slices, body mask, degraded slices and LR body mask of one case (cached)."""
        d, k = self.cfg["data"], self.scale
        protocol = {"window": d["window"], "degradation": d["degradation"], "k": k,
                    "spacing": d["spacing"], "v": 2}

        def build():
            image = read_volume(path)
            if d["spacing"]:
                image = resample(image, d["spacing"])
            hu = sitk.GetArrayFromImage(image).astype(np.float32)
            check_hu(hu, path)
            _, h, w = hu.shape
            h, w = h - h % k, w - w % k                  # whole LR pixels only
            norm = window(hu[:, :h, :w], *d["window"])
            body = body_mask(image)[:, :h, :w]
            lr = np.stack([degrade(s, k, d["degradation"]) for s in norm])
            lr_body = body.reshape(len(body), h // k, k, w // k, k).any((2, 4))
            return {"hr": norm, "body": body, "lr": lr, "lr_body": lr_body,
                    "spacing": np.asarray(image.GetSpacing()),
                    "origin": np.asarray(image.GetOrigin()),
                    "direction": np.asarray(image.GetDirection())}

        arrays = cached(path, protocol, build)
        if min(arrays["hr"].shape[1:]) < hr_patch:
            raise BenchError(f"{path}: slices are {arrays['hr'].shape[1]}x{arrays['hr'].shape[2]}, "
                             f"smaller than the {hr_patch}x{hr_patch} HR patch")
        return arrays

    def load(self) -> PreparedData:
        d, k = self.cfg["data"], self.scale
        root = find_root(self.data_dir)
        train, val = case_files(root / "Train"), case_files(root / "Validation")
        if len(train) < 2:
            raise BenchError(f"covid19: {root / 'Train'} holds {len(train)} case(s); the unpaired "
                             f"streams need at least 2 (one feeds LR, one HR)")
        missing_seg = [p.name for p in train
                       if not (p.parent / p.name.replace("_ct.nii", "_seg.nii")).is_file()]
        n = d["max_train_cases"] or len(train)
        lr_cases, hr_cases = train[:n][0::2], train[:n][1::2]
        val = val[: d["max_eval_volumes"] or None]
        hr_patch = int(self.cfg["train"]["lr_patch"]) * k
        vols = {p: self._volume(p, hr_patch) for p in [*lr_cases, *hr_cases, *val]}

        def stack(cases, img_key, mask_key) -> SliceStack:
            return SliceStack(StackedSlices([vols[p][img_key] for p in cases]),
                              [f"{p.name}#z{z}" for p in cases for z in range(len(vols[p][img_key]))],
                              StackedSlices([vols[p][mask_key] for p in cases]))

        if d["plane"] == "through":
            return self._through(root, lr_cases + hr_cases, val, vols, stack)
        evals = []
        for p in val:
            hr, lr = vols[p]["hr"], vols[p]["lr"]
            per = d["eval_slices_per_volume"]
            # `per` slices at the centres of equal parts of the volume (1: its middle slice)
            zs = range(len(hr)) if not per else ((np.arange(per) + 0.5) * len(hr) / per).astype(int)
            evals += [EvalImage(f"{case_id(p)}_z{z:03d}", lr[z], hr[z], f"{p.name}#z{z}",
                                volume=case_id(p), mask=vols[p]["body"][z])
                      for z in sorted(set(int(z) for z in zs))]
        geometry = {case_id(p): {key: [float(v) for v in vols[p][key]]
                                 for key in ("spacing", "origin", "direction")} for p in val}
        return PreparedData(
            scale=k, train_lr=stack(lr_cases, "lr", "lr_body"),
            train_hr=stack(hr_cases, "hr", "body"), eval_images=evals,
            protocol={"window_hu": list(d["window"]), "range": [0, 1],
                      "hr_window": list(d["window"]), "hr_units": "HU",
                      "degradation": d["degradation"], "scale": k, "plane": "axial",
                      "resample_mm": d["spacing"], "split": "Train halves alternate LR/HR",
                      "eval": "whole Validation slices, degraded then super-resolved"},
            metadata={"root": str(root), "units": "HU",
                      "spacing_mm": geometry[case_id(val[0])]["spacing"] if val else None,
                      "eval_geometry_lps": geometry,
                      "lr_cases": [p.name for p in lr_cases], "hr_cases": [p.name for p in hr_cases],
                      "eval_volumes": [p.name for p in val],
                      "train_cases_without_seg": missing_seg,
                      "source": "COVID-19-20 challenge (user's copy)"},
        )


    def _through(self, root: Path, train: list, val: list, vols: dict, stack) -> PreparedData:
        """Every Train case's thin axial slices as the HR stream (and, unused by the
        through-plane methods, as the LR stream); slabs of each Validation volume to score."""
        d = self.cfg["data"]
        k, how, slab = int(d["z_factor"]), d["z_degradation"], int(d["z_slab"])
        if slab % k:
            raise BenchError(f"covid19: data.z_slab={slab} is not a multiple of data.z_factor={k}")
        volumes, spare = [], []
        for p in val:
            starts = list(range(0, len(vols[p]["hr"]) - slab + 1, slab))
            if d["z_slabs_per_volume"] and starts:
                picks = np.linspace(0, len(starts) - 1, int(d["z_slabs_per_volume"])).round()
                scored = [starts[int(i)] for i in sorted(set(picks))]
                spare += [(p, z) for z in starts if z not in scored]
                starts = scored
            volumes += [self._slab(vols, p, z, slab) for z in starts]
        # the curve's slabs: evenly spaced among the unscored ones
        n_val = min(int(d["z_val_slabs"]), len(spare))
        chosen = sorted(set(np.linspace(0, len(spare) - 1, n_val).round())) if n_val else []
        val_slabs = [self._slab(vols, *spare[int(i)], slab) for i in chosen]
        if not volumes:
            raise BenchError(f"covid19: no Validation volume holds a slab of data.z_slab={slab} slices")
        thin_mm = sorted({round(float(vols[p]["spacing"][2]), 3) for p in val})
        hr = stack(train, "hr", "body")
        # each slice's voxel size, its case's own: smore's physical pairs read it
        hr.spacing = np.concatenate([np.tile(np.asarray(vols[p]["spacing"], np.float32),
                                             (len(vols[p]["hr"]), 1)) for p in train])
        return PreparedData(
            scale=k, train_lr=hr, train_hr=hr, eval_images=[], eval_volumes=volumes,
            val_volumes=val_slabs,
            protocol={"window_hu": list(d["window"]), "range": [0, 1],
                      "hr_window": list(d["window"]), "hr_units": "HU", "degradation": how,
                      "scale": k, "plane": "through", "z_factor": k, "z_degradation": how,
                      "resample_mm": d["spacing"], "thin_mm": thin_mm,
                      "split": "Train cases give in-plane patches; Validation volumes are scored",
                      "eval": f"slabs of {slab} thin slices of each Validation volume, thickened "
                              f"({how} of {k}), reconstructed along z, scored on the slices "
                              f"the thick ones lack"},
            metadata={"root": str(root), "units": "HU", "train_cases": [p.name for p in train],
                      "eval_volumes": [p.name for p in val],
                      "validation_slabs": [v.name for v in val_slabs],
                      "source": "COVID-19-20 challenge (user's copy)"},
        )

    def _slab(self, vols: dict, p: Path, z: int, slab: int):
        d = self.cfg["data"]
        return eval_slab(f"{case_id(p)}_z{z:03d}-{z + slab - 1:03d}", vols[p]["hr"][z:z + slab],
                         vols[p]["body"][z:z + slab], int(d["z_factor"]), d["z_degradation"],
                         f"{p.name}#z{z}..{z + slab - 1}", case_id(p),
                         geometry=slab_geometry(vols[p]["spacing"], vols[p]["origin"],
                                                vols[p]["direction"], z))


PLUGINS = [Covid19]
