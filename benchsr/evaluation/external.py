"""Score a model that lives outside benchsr. `export_inputs` writes exactly the LR images a
dataset's evaluation feeds a method; `read_predictions` checks a folder of SR outputs against
them (one line naming the file for anything missing, extra, misshapen or non-finite, before
anything is written); `External` is the method whose super_resolve returns them, so the ordinary
runner scores them into an ordinary run folder, `external:NAME`, beside the built-in methods."""
from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import numpy as np
import torch

from benchsr import results
from benchsr.contracts import BenchError, EvalImage, Method
from benchsr.data.volumes import PIXEL_CONVENTION, nib
from benchsr.evaluation.evaluate import centre_crop, choose_images
from benchsr.runtime.guards import exit_on_signals

SUFFIXES = (".npy", ".nii.gz", ".nii")


def eval_inputs(data, cfg: dict) -> list[EvalImage]:
    """The evaluation images as the runner feeds them: chosen per set, centre-cropped."""
    return [centre_crop(img, int(cfg["eval"]["crop"]), data.scale) for img in choose_images(data, cfg)]


def export_inputs(data, cfg: dict, out: Path, write=None) -> dict:
    """OUT/<image>.npy (float32 LR in [0, 1]) for every evaluation input, and manifest.json
    (or what `write(data, cfg, folder)` writes: external_z's thick stacks).
    Written into a hidden folder beside OUT, then renamed: a full disk, an error, Ctrl-C or
    SIGTERM leaves no half-written OUT and no hidden folder; a kill -9 may leave the hidden one,
    never OUT."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise BenchError(f"{out}: exists and is not an empty folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    with exit_on_signals():        # a SIGTERM unwinds through the finally below, as Ctrl-C does
        partial = results.staging_folder(out.parent, f".{out.name}.partial-")
        try:
            manifest = (write or _write_inputs)(data, cfg, partial)
            os.chmod(partial, 0o755)          # mkdtemp makes it private: the inputs are to share
            os.replace(partial, out)          # an empty OUT is replaced too
        except OSError as exc:
            raise BenchError(f"{out}: cannot write the inputs ({exc.strerror or exc}); nothing "
                             f"was written") from None
        finally:
            shutil.rmtree(partial, ignore_errors=True)
    return manifest


def _write_inputs(data, cfg: dict, out: Path) -> dict:
    k, p = data.scale, data.protocol
    entries = []
    for img in eval_inputs(data, cfg):
        np.save(out / f"{img.name}.npy", np.asarray(img.lr, np.float32))
        h, w = img.lr.shape
        entries.append({"name": img.name, "file": f"{img.name}.npy", "group": img.group,
                        "volume": img.volume, "lr_shape": [h, w], "expected_shape": [h * k, w * k],
                        "scored": "against its HR reference" if img.hr is not None
                        else "LR-consistency only (no reference)"})
    manifest = {"dataset": cfg["dataset"], "profile": cfg["profile"], "scale": k,
                "inputs_format": "float32 .npy, the dataset window mapped to [0, 1]",
                "predictions": (f"one file per input, same name, .npy or .nii(.gz), shape "
                                f"expected_shape, in [0, 1] (or in {p.get('hr_units', 'HU')} "
                                f"with --units hu)"),
                "nifti_axis_order": NIFTI_RULE,
                "degradation": p.get("degradation", "bicubic"),
                "pixel_convention": PIXEL_CONVENTION.get(p.get("degradation", "bicubic")),
                "window_hu": p.get("window_hu"), "hr_window": p.get("hr_window"),
                "hr_units": p.get("hr_units", "HU"), "protocol": p, "inputs": entries}
    results.write_json(out / "manifest.json", manifest)
    return manifest


# How a NIfTI prediction's array is read, so that the array the user saved is the array scored
# (manifest.json says it too). SimpleITK's writer stores an (h, w) array x fastest, so nibabel
# reads it back transposed; nibabel's writer stores the array as given.
NIFTI_RULE = ("NIfTI predictions: the (h, w) array as saved. A file from SimpleITK "
              "(GetImageFromArray) or nibabel (Nifti1Image(arr, affine)) both work: a non-square "
              "shape decides the axis order; a square one is read as ITK wrote it when its header "
              "is ITK's (qform and sform code 1, mm) and as given when its affine is the identity; "
              "any other square file is refused as ambiguous")


def load_prediction(path: Path, from_nifti) -> np.ndarray:
    """A prediction file's values as float64: a .npy read without pickles, a NIfTI through
    `from_nifti(img)` (nibabel's image); BenchError for a file that cannot be read or holds
    anything but real numbers."""
    try:
        if path.suffix == ".npy":
            with open(path, "rb") as fh:
                head = fh.read(6)           # np.load calls anything else pickled data
                if head != b"\x93NUMPY" and not head.startswith(b"PK"):   # PK: an .npz, below
                    raise BenchError(f"{path}: not a .npy file (no NumPy header)")
            arr = np.load(path, allow_pickle=False)
        else:
            arr = from_nifti(nib.load(str(path)))
    except BenchError:
        raise
    except Exception as exc:  # noqa: BLE001 - any decoder failure is a bad prediction
        raise BenchError(f"{path}: cannot read the prediction ({type(exc).__name__}: {exc})") from None
    if not isinstance(arr, np.ndarray):        # np.load of an .npz archive under a .npy name
        arr.close()
        raise BenchError(f"{path}: an .npz archive, not one .npy array: save the prediction "
                         "with np.save")
    if arr.dtype.kind not in "iuf":           # structured, bool, complex, text: not intensities
        raise BenchError(f"{path}: holds {arr.dtype} values; a prediction is an array of real "
                         "numbers (float, or integers in the declared units)")
    return np.asarray(arr, np.float64)


def _nifti_array(path: Path, img, data: np.ndarray, want: tuple[int, int]) -> np.ndarray:
    """The (h, w) array the writer was given (NIFTI_RULE)."""
    if data.ndim != 2:
        return data                       # the shape check names it
    if want[0] != want[1]:
        return data if data.shape == want else data.T
    h = img.header
    itk = (int(h["qform_code"]), int(h["sform_code"])) == (1, 1) and h.get_xyzt_units()[0] == "mm"
    if itk:
        return data.T
    if np.allclose(img.affine, np.eye(4)):
        return data
    raise BenchError(f"{path}: a square NIfTI whose axis order is ambiguous (neither SimpleITK's "
                     f"header nor an identity affine): save it as .npy, with SimpleITK, or with "
                     f"nibabel and np.eye(4)")


def _name(path: Path) -> str | None:
    return next((path.name[:-len(s)] for s in SUFFIXES if path.name.endswith(s)), None)


def read_predictions(pred: Path, images: list[EvalImage], scale: int, units: str,
                     hr_window, profile: str = "") -> dict[str, np.ndarray]:
    """{image name: SR in [0, 1]}, every file checked first; BenchError names the first bad one."""
    files = collect_files(pred, [img.name for img in images], profile)
    return {img.name: _checked(files[img.name], img, scale, units, hr_window) for img in images}


def profile_hint(pred: Path, profile: str) -> str:
    """Why the files may not be the inputs of `profile`: each profile exports its own slices.
    A manifest.json beside the predictions (export-inputs' own, copied) names the export's."""
    if not profile:
        return ""
    try:
        exported = results.read_json(pred / "manifest.json").get("profile")
    except (OSError, ValueError, AttributeError):
        exported = None
    if exported and exported != profile:
        return (f"; the inputs were exported at profile {exported} (manifest.json), this "
                f"evaluation is at {profile}: evaluate with --profile {exported}")
    return (f"; this evaluation is at profile {profile}, and each profile exports its own "
            f"slices: --profile must be export-inputs' own")


def collect_files(pred: Path, names: list[str], profile: str = "") -> dict[str, Path]:
    """{name: its prediction file} for exactly the wanted names; BenchError names the first
    file that is missing, extra, doubled or not a regular file, and, given the evaluation's
    `profile`, the profile mismatch that most often explains it."""
    if not pred.is_dir():
        raise BenchError(f"{pred}: not a folder of predictions")
    files = {}
    for path in sorted(pred.iterdir()):
        if path.name.startswith(".") or path.name == "manifest.json":
            continue
        if not path.is_file():          # a FIFO or device would block the read forever
            raise BenchError(f"{path}: not a regular file (a folder, FIFO or device): "
                             f"predictions are files")
        name = _name(path)
        if name is None or name in files:
            raise BenchError(f"{path}: not a prediction (one .npy/.nii/.nii.gz per input, once)")
        files[name] = path
    wanted = set(names)
    extra = sorted(set(files) - wanted)
    if extra:
        raise BenchError(f"{files[extra[0]]}: no evaluation input is called '{extra[0]}' "
                         f"({len(extra)} extra file(s){profile_hint(pred, profile)})")
    missing = sorted(set(wanted) - set(files))
    if missing:
        raise BenchError(f"{pred / (missing[0] + '.npy')}: missing ({len(missing)} prediction(s) "
                         f"missing; export-inputs lists them{profile_hint(pred, profile)})")
    return files


def _shape_hint(arr: np.ndarray, img: EvalImage, scale: int) -> str:
    """Why a prediction may have the wrong shape, only where the shape says it for sure."""
    h, w = img.lr.shape
    if arr.size == 0:
        return " (an empty array)"
    ratios = {arr.shape[0] / h, arr.shape[1] / w} if arr.ndim == 2 else set()
    if len(ratios) == 1 and (r := ratios.pop()) >= 1 and r.is_integer():
        return (f" ({int(r)}x the {h}x{w} input exported for it; this dataset is x{scale}: "
                f"expected_shape in export-inputs' manifest.json)")
    return " (export-inputs' manifest.json gives each input's expected_shape)"


def _checked(path: Path, img: EvalImage, scale: int, units: str, hr_window) -> np.ndarray:
    want = (img.lr.shape[0] * scale, img.lr.shape[1] * scale)
    arr = load_prediction(path, lambda img: _nifti_array(path, img, np.asarray(img.dataobj).squeeze(),
                                                         want))
    if arr.shape != want:
        raise BenchError(f"{path}: shape {arr.shape}, expected {want}{_shape_hint(arr, img, scale)}")
    return to_unit(path, arr, img.lr, units, hr_window)


def to_unit(path: Path, arr: np.ndarray, given: np.ndarray, units: str, hr_window) -> np.ndarray:
    """A prediction of the right shape, checked (finite, not flat for an input `given` that is
    not, in the declared units) and mapped to [0, 1] float32."""
    bad = int((~np.isfinite(arr)).sum())
    if bad:
        raise BenchError(f"{path}: {bad} non-finite values (NaN/Inf)")
    if float(arr.std()) < 1e-6 and float(np.std(given)) > 1e-3:   # as the runner's check_not_flat
        raise BenchError(f"{path}: constant ({float(arr.mean()):.4g} everywhere) for an input "
                         f"that is not: a degenerate output, not a prediction")
    _check_units(path, arr, units)
    if units == "hu":
        lo, hi = hr_window
        return np.clip((arr - lo) / (hi - lo), 0, 1).astype(np.float32)
    return arr.astype(np.float32)


# [0, 1] predictions overshoot where an interpolating kernel meets an edge, and are clamped, as
# the methods' outputs are, the row saying how much (clamp_note). Measured on a unit step:
# scipy's cubic spline 0.107 (order 5: 0.126), torch's bicubic 0.111, PIL's Lanczos 0.117; on a
# one-pixel checkerboard, the worst case: torch's bicubic 0.244, PIL's Lanczos 0.559. Values
# past 0.6 on either side come from no interpolation of [0, 1]: another unit (HU, 0..255,
# [-1, 1]), refused
UNIT_BAND = (-0.6, 1.6)
# and only near edges: a cubic spline zoom (order 3 or 5) of lung-ct's exported inputs leaves
# 10 % of all pixels outside [0, 1], at most 17 % in one image; a prediction with more than
# half outside is shifted or scaled, not overshooting
MAX_OUTSIDE = 0.5


def clamp_note(predictions) -> str | None:
    """How much of the predictions lies outside [0, 1] and is clamped: the row's note."""
    outside = total = 0
    lo, hi = np.inf, -np.inf
    for arr in predictions:
        outside += int(np.count_nonzero((arr < 0) | (arr > 1)))
        total += arr.size
        lo, hi = min(lo, float(arr.min())), max(hi, float(arr.max()))
    if not outside:
        return None
    return (f"predictions clamped to [0, 1] as the methods' outputs are: {outside / total:.2%} of "
            f"pixels were outside (min {lo:.3g}, max {hi:.3g})")


def _check_units(path: Path, arr: np.ndarray, units: str) -> None:
    """The declared units against the values, both ways; BenchError says what they look like."""
    lo, hi = float(arr.min()), float(arr.max())
    in_band = UNIT_BAND[0] <= lo and hi <= UNIT_BAND[1]
    if units == "hu":
        if in_band:
            raise BenchError(f"{path}: values {lo:.4g}..{hi:.4g} look like [0, 1], not HU: "
                             f"leave out --units hu")
        return
    if in_band:
        outside = float(np.mean((arr < 0) | (arr > 1)))
        if outside > MAX_OUTSIDE:
            raise BenchError(f"{path}: values {lo:.4g}..{hi:.4g}, {outside:.0%} of pixels are not in "
                             f"[0, 1]: shifted or scaled, more than an interpolation's overshoot "
                             f"near edges (at most {MAX_OUTSIDE:.0%} of pixels)")
        return
    if 0 <= lo and hi <= 255 and np.array_equal(arr, np.round(arr)):
        raise BenchError(f"{path}: values {lo:g}..{hi:g} look like 8-bit 0..255, not [0, 1]: "
                         f"divide by 255")
    if -1 <= lo < UNIT_BAND[0] and hi <= 1.1:
        raise BenchError(f"{path}: values {lo:.4g}..{hi:.4g} look like [-1, 1] (tanh), not "
                         f"[0, 1]: map them with (x + 1) / 2")
    raise BenchError(f"{path}: values {lo:.4g}..{hi:.4g} are not in [0, 1], nor an interpolation's "
                     f"overshoot of it ({UNIT_BAND[0]:g}..{UNIT_BAND[1]:g}, clamped); predictions "
                     f"in HU need --units hu")


def content_key(lr: np.ndarray) -> str:
    """An input's identity by its float32 bytes: how an external method finds its prediction."""
    return hashlib.sha1(np.ascontiguousarray(lr, np.float32).tobytes()).hexdigest()


def external_method(name: str, images: list[EvalImage], predictions: dict[str, np.ndarray]):
    """A Method class `external:NAME` whose super_resolve returns the prediction of the input."""
    by_input = {content_key(img.lr): predictions[img.name] for img in images}
    clamped = clamp_note(predictions.values())

    class External(Method):
        description = "predictions made outside benchsr, scored by benchsr evaluate"
        data = "none"
        scales = (2, 3, 4, 8, 16)
        measured_cost = False    # a file lookup, not the model's inference

        def build(self) -> None:
            if clamped:
                self.ctx.notes.append(clamped)

        def super_resolve(self, lr: torch.Tensor) -> torch.Tensor:
            out = [torch.from_numpy(by_input[content_key(x[0].cpu().numpy())]) for x in lr]
            return torch.stack(out)[:, None].to(lr.device)

    External.name = f"external:{name}"
    return External
