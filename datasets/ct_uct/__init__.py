"""ct-uct: clinical CT -> µCT, 8x (paper Sec. 3.1-3.3).

With --data-dir: the user's unregistered volumes, `clinical/` (chest CTs in HU) and `uct/`
(specimen scans in scanner units), anything SimpleITK reads (NIfTI, MHA/MHD, NRRD, DICOM series
folders). `uct/manifest.yaml` may give a crop box per scan that drops the container:
`{volumes: {scan.mha: {box: [z0, z1, y0, y1, x0, x1]}}}`; without one the container is removed
automatically (the specimen is the largest foreground component).

Without --data-dir (the embedded default): the real lung-ct chest CT is the clinical side and a
SIMULATED lung specimen (specimen.py) is the µCT side. Every run on it is labelled simulated.
Because the simulator also renders the held-out specimen as clinical CT, the evaluation adds the
true cross-modality score beside the paper's bicubic proxy.

Protocol: clinical HU [-1000, 2500] -> [0, 1], LR patches wholly inside the lung mask (region
growing from air seeds inside the body, holes filled); µCT clipped to [0, 15000] -> [0, 1].
Primary evaluation (the paper's proxy): held-out µCT slices, bicubic x1/8, SR, vs the µCT.
Held-out clinical slices (a lung-centred crop) are LR-only: they get the LR-consistency PSNR.
"""
from __future__ import annotations

import warnings

from pathlib import Path

import numpy as np
import yaml

from benchsr.data import cached
from benchsr.contracts import BenchError, Dataset, EvalImage, PreparedData, SliceStack
from benchsr.data import DISTRIBUTION, chest_ct_folder
from benchsr.data import sitk
from benchsr.data import body_mask, check_hu, degrade, read_volume, stream_distance, window

from . import specimen as sim

TRUE_PAIR = "true cross-modality (simulated)"
LR_ONLY = "clinical LR-only"


# ---- clinical side ------------------------------------------------------------------------------
def lung_mask(image: sitk.Image, body: np.ndarray, air_hu: float = -400.0) -> np.ndarray:
    """Region growing from air seeds inside the body (the two largest air pockets: the lungs),
    then closing and slice-wise hole filling so vessels belong to the lung."""
    hu = sitk.GetArrayFromImage(image)
    inner_air = sitk.GetImageFromArray(((hu < air_hu) & body).astype(np.uint8))
    labels = sitk.RelabelComponent(sitk.ConnectedComponent(inner_air), sortByObjectSize=True)
    lab = sitk.GetArrayFromImage(labels)
    seeds = []
    for label in (1, 2):
        pts = np.argwhere(lab == label)
        if len(pts):
            z, y, x = pts[len(pts) // 2]
            seeds.append((int(x), int(y), int(z)))
    if not seeds:
        raise BenchError("no air inside the body: cannot find the lungs")
    grown = sitk.ConnectedThreshold(sitk.Cast(image, sitk.sitkFloat32), seedList=seeds,
                                    lower=-2000.0, upper=air_hu)
    grown = sitk.BinaryMorphologicalClosing(grown, [3, 3, 1])
    filled = [sitk.BinaryFillhole(grown[:, :, z]) for z in range(image.GetSize()[2])]
    return sitk.GetArrayFromImage(sitk.JoinSeries(filled)).astype(bool) & body


def clinical_arrays(path: Path, lo: float, hi: float) -> dict[str, np.ndarray]:
    """Windowed slices, lung mask, spacing, and each slice's lung HU range (NaN without lung),
    from which `clinical_norm: minmax` takes its window."""
    def build():
        image = read_volume(path)
        hu = sitk.GetArrayFromImage(image).astype(np.float32)
        check_hu(hu, path)
        lung = lung_mask(image, body_mask(image))
        inside = np.where(lung, hu, np.nan)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)   # slices without lung: NaN
            lung_range = np.stack([np.nanmin(inside, (1, 2)), np.nanmax(inside, (1, 2))], 1)
        return {"norm": window(hu, lo, hi), "lung": lung, "lung_hu_range": lung_range,
                "spacing": np.asarray(image.GetSpacing())}
    return cached(path, {"clinical": [lo, hi], "v": 2}, build)


def clinical_window(paths: list[Path], d: dict) -> tuple[float, float]:
    """The HU range mapped to [0, 1]: the fixed `clinical_window`, or (`clinical_norm: minmax`,
    the SR-CycleGAN authors' normalisation) the min and max HU inside the lungs of the training
    slices of all clinical volumes."""
    lo, hi = d["clinical_window"]
    if d.get("clinical_norm", "window") == "window":
        return float(lo), float(hi)
    if d["clinical_norm"] != "minmax":
        raise BenchError(f"data.clinical_norm must be window or minmax, got {d['clinical_norm']!r}")
    ranges = []
    for p in paths:
        r = np.asarray(clinical_arrays(p, lo, hi)["lung_hu_range"])
        ranges.append(r[:_split(len(r), d["clinical_test_fraction"])])
    r = np.concatenate(ranges)
    if np.isnan(r).all():
        raise BenchError("data.clinical_norm minmax: no lung voxels in the training slices")
    return float(np.nanmin(r[:, 0])), float(np.nanmax(r[:, 1]))


# ---- µCT side -----------------------------------------------------------------------------------
def remove_container(uct: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Keep the largest foreground component (the specimen; the tube is a thinner one) and its
    slice-wise filled outline; everything else becomes the specimen's own air level."""
    fg = sitk.GetImageFromArray((uct > threshold).astype(np.uint8))
    largest = sitk.RelabelComponent(sitk.ConnectedComponent(fg), sortByObjectSize=True) == 1
    closed = sitk.BinaryMorphologicalClosing(largest, [4, 4, 0])
    outline = sitk.GetArrayFromImage(sitk.JoinSeries(
        [sitk.BinaryFillhole(closed[:, :, z]) for z in range(closed.GetSize()[2])])).astype(bool)
    inner_air = outline & (uct <= threshold)
    air = float(np.median(uct[inner_air])) if inner_air.any() else 0.0
    return np.where(outline, uct, air).astype(np.float32), outline


def crop_box(uct: np.ndarray, box, path: Path) -> np.ndarray:
    if not (isinstance(box, list) and len(box) == 6 and all(isinstance(v, int) for v in box)):
        raise BenchError(f"{path}: manifest box must be [z0, z1, y0, y1, x0, x1] integers")
    z0, z1, y0, y1, x0, x1 = box
    if not (0 <= z0 < z1 <= uct.shape[0] and 0 <= y0 < y1 <= uct.shape[1]
            and 0 <= x0 < x1 <= uct.shape[2]):
        raise BenchError(f"{path}: manifest box {box} is outside the volume {uct.shape}")
    return uct[z0:z1, y0:y1, x0:x1]


def read_manifest(folder: Path) -> dict:
    path = folder / "manifest.yaml"
    if not path.is_file():
        return {}
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise BenchError(f"{path}: invalid YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(doc, dict):
        raise BenchError(f"{path}: expected a mapping with a 'volumes' mapping")
    volumes = doc.get("volumes") or {}
    if not isinstance(volumes, dict):
        raise BenchError(f"{path}: 'volumes' must map file names to {{box: [...]}}, "
                         f"got a {type(volumes).__name__}")
    for name, entry in volumes.items():   # names only: a manifest never points outside its folder
        if not isinstance(name, str) or Path(name).name != name or name in ("..", "."):
            raise BenchError(f"{path}: '{name}' is not a plain file name in {folder}")
        if entry is not None and not isinstance(entry, dict):
            raise BenchError(f"{path}: the entry of '{name}' must be a mapping like "
                             f"{{box: [z0, z1, y0, y1, x0, x1]}}, got {entry!r}")
    return volumes


def uct_arrays(path: Path, d: dict, box=None) -> dict[str, np.ndarray]:
    lo, hi = d["uct_clip"]

    def build():
        raw = sitk.GetArrayFromImage(read_volume(path)).astype(np.float32)
        if not np.isfinite(raw).all():
            raise BenchError(f"{path}: NaN/Inf voxels")
        raw = crop_box(raw, box, path) if box is not None else raw
        clean, outline = (raw, np.ones(raw.shape, bool)) if box is not None else \
            remove_container(raw, d["uct_threshold"])
        return {"norm": window(clean, lo, hi), "specimen": outline}
    return cached(path, {"uct": [lo, hi], "box": box, "thr": d["uct_threshold"], "v": 1}, build)


# ---- the adapter --------------------------------------------------------------------------------
def _split(n: int, fraction: float) -> int:
    return max(1, min(n - 1, int(round(n * (1 - fraction)))))


class CTuCT(Dataset):
    name = "ct-uct"
    description = "Clinical CT -> µCT, 8x: your folders, or lung-ct + a SIMULATED specimen"
    scale = 8
    provenance_packages = (DISTRIBUTION,)   # the simulated default's clinical side

    def load(self) -> PreparedData:
        d, k = self.cfg["data"], self.scale
        hr_patch = int(self.cfg["train"]["lr_patch"]) * k
        if self.data_dir is None:
            clinical_paths, simulated = [Path(str(chest_ct_folder()))], True
            uct_vols, eval_vols, true_pairs = self._simulated(d, hr_patch)
        else:
            clinical_paths, simulated = self._user_folders(), False
            uct_vols, eval_vols, true_pairs = self._user_uct(d, hr_patch)
        lo, hi = clinical_window(clinical_paths, d)
        clinical = [clinical_arrays(p, lo, hi) for p in clinical_paths]

        lr_imgs, lr_masks, lr_src, lr_only = [], [], [], []
        for path, arr in zip(clinical_paths, clinical):
            cut = _split(len(arr["norm"]), d["clinical_test_fraction"])
            lr_imgs.append(np.asarray(arr["norm"][:cut]))
            lr_masks.append(np.asarray(arr["lung"][:cut]))
            lr_src += [f"{path.name}#z{z}" for z in range(cut)]
            lr_only += self._lr_only(path, arr, cut, d["lr_only_crop"])
        evals = []
        for name, hr in eval_vols:
            zs = np.linspace(0, len(hr) - 1, min(len(hr), d["eval_slices"])).round().astype(int)
            evals += [EvalImage(f"{name}_z{z:03d}", degrade(hr[z], k, d["degradation"]), hr[z],
                                f"{name}#z{z}", volume=name) for z in sorted(set(zs))]
        evals += true_pairs
        train_lr = SliceStack(np.concatenate(lr_imgs), lr_src, np.concatenate(lr_masks), "all")
        train_hr = SliceStack(np.concatenate([v["norm"] for v in uct_vols]),
                              [s for v in uct_vols for s in v["sources"]],
                              np.concatenate([v["specimen"] for v in uct_vols]), "center")
        return PreparedData(
            scale=k, train_lr=train_lr, train_hr=train_hr,
            eval_images=evals, lr_only=lr_only, simulated=simulated,
            protocol={"window_hu": [lo, hi],   # the LR (clinical) input window
                      "clinical_norm": d.get("clinical_norm", "window"),
                      "uct_clip": list(d["uct_clip"]),
                      # SR output belongs to the µCT domain: infer writes it in these units
                      "hr_window": list(d["uct_clip"]), "hr_units": "µCT scanner units",
                      "range": [0, 1], "scale": k, "degradation": d["degradation"],
                      "lr_patches": "wholly inside the lung mask",
                      "eval": "held-out µCT slices, bicubic x1/8, vs the µCT (paper's proxy)",
                      "simulated_uct": simulated,
                      # the streams' intensity distance (lung mask against specimen): large by
                      # design, since they are two modalities with their own windows
                      "stream_distance_w1": round(stream_distance(
                          train_lr.images, train_lr.mask, train_hr.images, train_hr.mask), 4),
                      "stream_distance_note": "clinical CT lungs against µCT specimen: two "
                                              "modalities and windows, far apart by design"},
            metadata={"clinical": [str(p) for p in clinical_paths],
                      "clinical_spacing_mm": [float(v) for v in clinical[0]["spacing"]],
                      "uct_units": "scanner units (clipped [0, 15000])",
                      "note": ("µCT side is SIMULATED (datasets/ct_uct/specimen.py); the clinical "
                               "side is the real lung-ct") if simulated else ""},
        )

    def _lr_only(self, path, arr, cut, crop):
        """Held-out clinical slices, cropped around the lung centre (8x of a whole 512^2 slice
        would be 4096^2)."""
        out = []
        for z in range(cut, len(arr["norm"]), max(1, (len(arr["norm"]) - cut) // 4)):
            lung = np.asarray(arr["lung"][z])
            img = np.asarray(arr["norm"][z])
            cy, cx = (np.argwhere(lung).mean(0).astype(int) if lung.any()
                      else np.array(img.shape) // 2)
            y0 = int(np.clip(cy - crop // 2, 0, img.shape[0] - crop))
            x0 = int(np.clip(cx - crop // 2, 0, img.shape[1] - crop))
            out.append(EvalImage(f"{path.name}_z{z:03d}", img[y0:y0 + crop, x0:x0 + crop], None,
                                 f"{path.name}#z{z}[{y0}:,{x0}:]", group=LR_ONLY))
        return out

    def _simulated(self, d, hr_patch):
        k, size = self.scale, int(d["specimen_size"])
        if size < hr_patch:
            raise BenchError(f"ct-uct: data.specimen_size {size} is smaller than the "
                             f"{hr_patch}px HR patch")
        lo, hi = d["uct_clip"]
        vols = []
        for seed in d["specimen_seeds"]:
            spec = sim.simulate(size, seed)
            clean, outline = remove_container(spec.uct, d["uct_threshold"])
            vols.append({"norm": window(clean, lo, hi), "specimen": outline,
                         "sources": [f"simulated-specimen-seed{seed}#z{z}" for z in range(size)]})
        spec = sim.simulate(size, int(d["eval_seed"]))
        clean, _ = remove_container(spec.uct, d["uct_threshold"])
        ref = window(clean, lo, hi)
        clinical = window(sim.render_clinical(spec, k, seed=int(d["eval_seed"])),
                          *d["clinical_window"])
        name = f"simulated-specimen-seed{d['eval_seed']}"
        slabs = np.linspace(0, len(clinical) - 1, min(len(clinical), d["eval_slices"]))
        pairs = [EvalImage(f"{name}_slab{j:02d}", clinical[j], ref[j * k + k // 2],
                           f"{name}#slab{j} (µCT z{j * k + k // 2})", group=TRUE_PAIR, volume=name)
                 for j in sorted(set(slabs.round().astype(int)))]
        return vols, [(name, ref[: (len(ref) // k) * k])], pairs

    def _user_folders(self) -> list[Path]:
        root = Path(self.data_dir)
        for sub in ("clinical", "uct"):
            if not (root / sub).is_dir():
                raise BenchError(f"ct-uct: {root} needs clinical/ and uct/ folders "
                                 f"(missing {sub}/)")
        return self._entries(root / "clinical")

    @staticmethod
    def _entries(folder: Path) -> list[Path]:
        items = sorted(p for p in folder.iterdir()
                       if not p.name.startswith(".") and p.name != "manifest.yaml")
        if not items:
            raise BenchError(f"ct-uct: {folder} is empty (expected volumes or DICOM folders)")
        inside = folder.resolve()
        for p in items:   # a link may not lead the data out of the folder it was given in
            if p.is_symlink() and inside not in p.resolve().parents:
                raise BenchError(f"ct-uct: {p} is a link to {p.resolve()}, outside {folder}")
        return items

    def _user_uct(self, d, hr_patch):
        folder = Path(self.data_dir) / "uct"
        boxes = read_manifest(folder)
        vols, evals = [], []
        for path in self._entries(folder):
            arr = uct_arrays(path, d, (boxes.get(path.name) or {}).get("box"))
            norm, spec = arr["norm"], arr["specimen"]
            h, w = (n - n % self.scale for n in norm.shape[1:])
            if min(h, w) < hr_patch:
                raise BenchError(f"{path}: slices are {norm.shape[1]}x{norm.shape[2]}, smaller "
                                 f"than the {hr_patch}x{hr_patch} HR patch")
            cut = _split(len(norm), d["eval_fraction"])
            vols.append({"norm": np.asarray(norm[:cut, :h, :w]),
                         "specimen": np.asarray(spec[:cut, :h, :w]),
                         "sources": [f"{path.name}#z{z}" for z in range(cut)]})
            evals.append((path.name, np.asarray(norm[cut:, :h, :w])))
        return vols, evals, []


PLUGINS = [CTuCT]
