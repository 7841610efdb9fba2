"""Score a through-plane model that lives outside benchsr (ECLARE, or the user's own).

`write_inputs` (external.export_inputs's writer on this track) puts each evaluation slab's
thick stack in OUT as a NIfTI with its true geometry (LPS converted to RAS as ITK writes it),
values in [0, 1], and lists in manifest.json the thin grid to predict. `read_predictions` reads the thin volumes back (NIfTI, or NumPy on the
thin grid) and checks their geometry in mm against that grid:
- on the thin grid (same slices, spacing and origin): scored as it is;
- on a finer grid along the slice normal (ECLARE writes one at the in-plane spacing): brought
  to the thin grid by the thin slices' own profile, the mean over each thin slice's extent,
  and the row's label says so;
- anything else (another in-plane grid, origin, direction or a coarser z) is refused with the
  grid expected: never silently resampled.
`external_method` is the through-plane Method whose super_resolve_z returns the prediction of
the thick stack it is given, so the runner scores it as any through-plane run."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from benchsr import results
from benchsr.contracts import BenchError, EvalVolume, Method
from benchsr.data.through_plane import mean_over_extents, missing
from benchsr.data.volumes import lps_geometry, nib, ras_affine
from benchsr.evaluation.external import (clamp_note, collect_files, content_key, load_prediction,
                                         to_unit)

FINER_RULE = ("a prediction on a finer grid along the slice normal (same in-plane grid and "
              "direction, covering every thin slice's extent to within one of its own slices) "
              "is brought to the thin grid by the mean over each thin slice's extent; any other "
              "grid is refused")


def _geometry(vol: EvalVolume) -> dict:
    if not vol.geometry:
        raise BenchError(f"slab {vol.name}: the dataset gives no geometry for it, so no "
                         f"outside through-plane model can be placed on it")
    return vol.geometry


def thick_geometry(vol: EvalVolume, k: int, how: str) -> dict:
    """Spacing, origin and direction of a slab's thick stack (LPS mm, as SimpleITK gives them):
    under the slice profile thick slice i is centred (k-1)/2 thin slices past thin slice k*i;
    picked, it is thin slice k*i."""
    g = _geometry(vol)
    sx, sy, sz = g["spacing"]
    shift = (k - 1) / 2 * sz if how == "mean" else 0.0
    normal = np.asarray(g["direction"], np.float64).reshape(3, 3)[:, 2]
    return {"spacing": [sx, sy, sz * k], "origin": list(np.asarray(g["origin"]) + shift * normal),
            "direction": list(g["direction"])}


def write_inputs(data, cfg: dict, out: Path) -> dict:
    """OUT/<slab>.nii.gz (float32 thick slices in [0, 1], true geometry) per evaluation slab,
    and OUT/manifest.json with the thin grid each is to be brought to; returns the manifest."""
    p = data.protocol
    k, how = int(p["z_factor"]), p["z_degradation"]
    if not data.eval_volumes:
        raise BenchError(f"{cfg['dataset']}: the through-plane track has no evaluation slab "
                         f"to export")
    entries = []
    for vol in data.eval_volumes:
        thick = thick_geometry(vol, k, how)
        img = nib.Nifti1Image(np.ascontiguousarray(vol.thick.transpose(2, 1, 0), np.float32),
                              ras_affine(**thick))
        img.header.set_xyzt_units("mm")
        nib.save(img, str(out / f"{vol.name}.nii.gz"))
        n, h, w = vol.thin.shape
        g = _geometry(vol)
        entries.append({"name": vol.name, "file": f"{vol.name}.nii.gz", "volume": vol.volume,
                        "thick_shape_zyx": list(vol.thick.shape), "thick_lps": thick,
                        "expected_shape_zyx": [n, h, w], "thin_lps": g,
                        "thin_positions_mm": [j * float(g["spacing"][2]) for j in range(n)],
                        "scored_slices": missing(n, k, how).tolist()})
    manifest = {"dataset": cfg["dataset"], "profile": cfg["profile"], "plane": "through",
                "z_factor": k, "z_degradation": how,
                "inputs_format": "float32 NIfTI (.nii.gz), the dataset window mapped to [0, 1], "
                                 "each slab's thick slices with their true geometry",
                "predictions": ("one volume per input, same name, .nii(.gz) with its geometry "
                                "or .npy (z, y, x) on the thin grid; in [0, 1] (or in "
                                f"{p.get('hr_units', 'HU')} with --units hu)"),
                "grid_rule": FINER_RULE,
                "window_hu": p.get("window_hu"), "hr_units": p.get("hr_units", "HU"),
                "protocol": p, "inputs": entries}
    results.write_json(out / "manifest.json", manifest)
    return manifest


def _read(path: Path) -> tuple[np.ndarray, dict | None]:
    """(z, y, x) values and their LPS geometry (None for .npy, which has none)."""
    geometry = {}

    def volume(img):
        geometry.update(lps_geometry(img.affine))
        return np.asarray(img.dataobj)
    arr = load_prediction(path, volume)
    if arr.ndim != 3:
        raise BenchError(f"{path}: a {arr.ndim}-D array; a through-plane prediction is a volume")
    return (arr.transpose(2, 1, 0), geometry) if geometry else (arr, None)


def _grid_text(n: int, g: dict) -> str:
    o = ", ".join(f"{v:.2f}" for v in g["origin"])
    return f"{n} slices {g['spacing'][2]:.4g} mm apart from ({o}) mm, in-plane {g['spacing'][0]:.4g} mm"


def on_thin_grid(path: Path, arr: np.ndarray, geo: dict | None, vol: EvalVolume) -> tuple[np.ndarray, float | None]:
    """The prediction on the slab's thin grid, and the finer z spacing it was brought from
    (None: it was on the thin grid)."""
    n, h, w = vol.thin.shape
    if geo is None:                      # NumPy: no geometry, so the thin grid only
        if arr.shape != (n, h, w):
            raise BenchError(f"{path}: shape {arr.shape}, expected {(n, h, w)} (a .npy "
                             f"prediction lies on the thin grid; a finer grid needs a NIfTI)")
        return arr, None
    want = _geometry(vol)
    expected = f"expected {_grid_text(n, want)}, or a finer z grid over it"
    if arr.shape[1:] != (h, w):
        raise BenchError(f"{path}: in-plane {arr.shape[1]}x{arr.shape[2]}, {expected} "
                         f"({h}x{w} in-plane)")
    if not np.allclose(geo["direction"], want["direction"], atol=1e-3):
        raise BenchError(f"{path}: direction {np.round(geo['direction'], 3).tolist()}, {expected}")
    sx, sy, sz = (float(s) for s in want["spacing"])
    if not np.allclose(geo["spacing"][:2], [sx, sy], rtol=1e-3):
        raise BenchError(f"{path}: in-plane spacing {geo['spacing'][:2]}, {expected}")
    axes = np.asarray(want["direction"], np.float64).reshape(3, 3)
    offset = axes.T @ (np.asarray(geo["origin"]) - np.asarray(want["origin"]))   # mm per axis
    if abs(offset[0]) > 0.01 * sx or abs(offset[1]) > 0.01 * sy:
        raise BenchError(f"{path}: origin {np.round(geo['origin'], 2).tolist()} is "
                         f"{offset[0]:.3g}, {offset[1]:.3g} mm off in-plane; {expected}")
    fine = float(geo["spacing"][2])
    if abs(fine - sz) <= 1e-3 * sz:
        if arr.shape[0] != n or abs(offset[2]) > 0.01 * sz:
            raise BenchError(f"{path}: {_grid_text(arr.shape[0], geo)}; {expected}")
        return arr, None
    src = offset[2] + (np.arange(arr.shape[0] + 1) - 0.5) * fine     # along the slice normal
    dst = (np.arange(n + 1) - 0.5) * sz
    if fine > sz or dst[0] < src[0] - fine or dst[-1] > src[-1] + fine:
        raise BenchError(f"{path}: {_grid_text(arr.shape[0], geo)}, covering {src[0]:.2f}.."
                         f"{src[-1]:.2f} mm along the slice normal; {expected} (the thin slices "
                         f"cover {dst[0]:.2f}..{dst[-1]:.2f} mm)")
    return mean_over_extents(arr, src, np.clip(dst, src[0], src[-1]), axis=0), fine


def read_predictions(pred: Path, volumes: list[EvalVolume], units: str,
                     hr_window, profile: str = "") -> tuple[dict, list[float]]:
    """({slab name: thin slices in [0, 1]}, the finer z spacings that were brought to the thin
    grid). Every file is checked (external.collect_files, then its grid here, then its values
    as external.to_unit checks them) before anything is scored; BenchError names the first
    bad one."""
    files = collect_files(pred, [v.name for v in volumes], profile)
    out, finer = {}, []
    for vol in volumes:
        arr, geo = _read(files[vol.name])
        thin, fine = on_thin_grid(files[vol.name], arr, geo, vol)
        if fine is not None:
            finer.append(fine)
        out[vol.name] = to_unit(files[vol.name], thin, vol.thick, units, hr_window)
    return out, finer


def external_method(name: str, volumes: list[EvalVolume], predictions: dict, finer: list[float]):
    """A through-plane Method class `external:NAME` whose super_resolve_z returns the
    prediction of the thick stack it is given."""
    by_input = {content_key(v.thick): predictions[v.name] for v in volumes}
    change = ({"z grid": f"{min(finer):.3g}-{max(finer):.3g} mm, mean over each thin slice"
               if min(finer) != max(finer) else f"{finer[0]:.3g} mm, mean over each thin slice"}
              if finer else {})
    clamped = clamp_note(predictions.values())

    class ExternalZ(Method):
        description = "through-plane predictions made outside benchsr, scored by benchsr evaluate"
        data = "none"
        scales = (2, 3, 4, 5, 6, 8)
        planes = ("through",)
        measured_cost = False    # a file lookup, not the model's inference

        def build(self) -> None:
            self.ctx.recipe_changes.update(change)     # the row's label says how it was gridded
            if clamped:
                self.ctx.notes.append(clamped)

        def super_resolve_z(self, thick: torch.Tensor) -> torch.Tensor:
            return torch.from_numpy(np.asarray(by_input[content_key(thick.cpu().numpy())],
                                               np.float32)).to(thick.device)

    ExternalZ.name = f"external:{name}"
    return ExternalZ
