"""Whole-volume super-resolution with a trained run: read any SimpleITK volume or DICOM folder,
super-resolve slice by slice (tiled, overlapping tiles averaged), write NIfTI slab by slab.

The output overlays the input in 3D Slicer: spacing divided by k in-plane, the direction kept, and
the origin moved to the centre of the first output voxel (k output voxels share one input voxel,
so that centre sits (1/k - 1)/2 input voxels before the input's first centre).

Memory does not grow with the number of slices: the input is read SLAB slices at a time
(streamed from disk for uncompressed .nii/.mha/raw .nrrd; ITK reads compressed files and DICOM
series whole), and one output slice is in memory at a time (64 MiB at 8x of a 512² slice).
"""
from __future__ import annotations

import gzip
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from benchsr.run import best, checkpoints
from benchsr import config, registry
from benchsr.contracts import BenchError, RunContext
from benchsr.evaluation.tiling import TilePlan, plan_for, tiled_sr, tiles, tiling_request
from benchsr.results import process_alive, read_json
from benchsr.runtime.guards import exit_on_signals
from benchsr.data.volumes import SlabReader, nib, ras_affine

MIN_INPUT = 16   # LR pixels per side: below this no method's receptive field makes sense
SLAB = 16        # input slices read at a time


@dataclass
class Trained:
    method: object
    label: str
    scale: int
    window: tuple[float, float]        # the LR input's HU window (mapped to [0, 1])
    out_window: tuple[float, float]    # the SR output's window: the HR domain's
    out_units: str                     # what the output's values are (HU, µCT scanner units)
    weights: str = ""                  # which checkpoint and epoch, or "" (no network)
    plane: str = "axial"               # the run's track: axial (x k in-plane) or through (along z)
    cautions: tuple[str, ...] = ()     # why this run's output is no result to read (smoke, failed)


def _window(value, path: Path, key: str) -> tuple[float, float]:
    ok = (isinstance(value, (list, tuple)) and len(value) == 2
          and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value))
    if not ok or not value[0] < value[1]:
        raise BenchError(f"{path}: protocol.{key} must be [low, high] numbers, low < high; "
                         f"got {value!r}")
    return float(value[0]), float(value[1])


def _read_run(run_dir: Path) -> tuple[dict, dict, Path, Path]:
    """config.yaml and manifest.json of a run folder, with the fields infer needs checked."""
    cfg_path, manifest_path = run_dir / "config.yaml", run_dir / "manifest.json"
    if not cfg_path.is_file() or not manifest_path.is_file():
        raise BenchError(f"{run_dir}: not a run folder (config.yaml and manifest.json needed)")
    cfg = config.upgrade(config.read_yaml(cfg_path))   # keys added since the run was made
    try:
        manifest = read_json(manifest_path)
    except (ValueError, OSError) as exc:
        raise BenchError(f"{manifest_path}: invalid JSON ({exc})") from None
    for key in ("method", "preset"):
        if not isinstance(cfg.get(key), str):
            raise BenchError(f"{cfg_path}: '{key}' missing or not a string")
    if cfg["method"].startswith("external:"):
        raise BenchError(f"{run_dir}: the scores of an outside model's predictions "
                         f"({cfg['method']}): it has no network to run or export")
    if not isinstance(manifest, dict) or not isinstance(manifest.get("protocol", {}), dict):
        raise BenchError(f"{manifest_path}: not a run manifest (no protocol mapping)")
    for key, kind in (("label", str), ("status", str)):
        if not isinstance(manifest.get(key), kind):
            raise BenchError(f"{manifest_path}: '{key}' missing or not a {kind.__name__}")
    return cfg, manifest, cfg_path, manifest_path


def load_trained(run_dir: Path, checkpoint: Path | None, device: torch.device,
                 precision: str, allow_unfinished: bool | None = None) -> Trained:
    """The method of a run folder (its config.yaml and manifest.json) with its weights. A run
    that did not complete is refused unless `allow_unfinished` (None: the caller offers no
    such option, and the refusal names none)."""
    cfg, manifest, cfg_path, manifest_path = _read_run(run_dir)
    if manifest["status"] != "complete" and not allow_unfinished:
        offer = ("; --allow-unfinished uses its last checkpoint anyway"
                 if allow_unfinished is not None else "")
        raise BenchError(f"{run_dir}: the run is {manifest['status']}, not complete "
                         f"({manifest.get('reason', 'no result yet')}){offer}")
    protocol = manifest.get("protocol", {})
    try:
        scale = int(manifest.get("scale") or protocol.get("scale") or 0)
    except (TypeError, ValueError):
        scale = 0
    if scale < 1 or "window_hu" not in protocol:
        raise BenchError(f"{manifest_path}: the run records no scale or HU window")
    window = _window(protocol["window_hu"], manifest_path, "window_hu")
    out_window = _window(protocol.get("hr_window") or list(window), manifest_path, "hr_window")
    cls = registry.get("methods", cfg["method"])
    try:
        method = cls(cfg, RunContext(device=device, precision=precision, scale=scale, channels=1,
                                     degradation=protocol.get("degradation", "bicubic")))
        method.build()
    except (KeyError, TypeError, ValueError) as exc:
        raise BenchError(f"{cfg_path}: does not configure {cfg['method']} "
                         f"({type(exc).__name__}: {exc})") from None
    weights = ""
    if not method.nets and checkpoint is not None:
        raise BenchError(f"--checkpoint {checkpoint}: {cfg['method']} has no weights to load")
    if method.nets:
        path = checkpoint or best.weights_path(run_dir, manifest)
        ckpt = checkpoints.load(path, device)
        weights = f"{path} (epoch {ckpt.get('epoch', '?')})"
        meta = ckpt.get("meta", {})
        for key, want in (("method", cfg["method"]), ("scale", scale), ("channels", 1)):
            if key in meta and meta[key] != want:
                raise BenchError(f"{path}: checkpoint has {key} {meta[key]!r}, but the run "
                                 f"{run_dir.name} needs {want!r}")
        try:
            method.load_state_dict(ckpt["method"])
        except (KeyError, RuntimeError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0]
            raise BenchError(f"{path}: checkpoint does not fit {manifest['label']} as configured "
                             f"in {cfg_path} ({first})") from None
    method.train(False)
    # the SR output belongs to the HR domain (ct-uct: µCT units); runs that record no HR window
    # had an HR domain in the input's HU window
    return Trained(method, manifest["label"], scale, window, out_window,
                   str(protocol.get("hr_units", "HU")), weights, str(protocol.get("plane", "axial")),
                   cautions(run_dir, manifest))


def tell_cautions(trained: Trained, warn) -> None:
    for caution in trained.cautions if warn else ():
        warn(caution)


def cautions(run_dir: Path, manifest: dict) -> tuple[str, ...]:
    """What a reader of this run's output must know first: a smoke run trains for a few steps
    to test the plumbing, and a failed or unfinished run (--allow-unfinished) gave no result."""
    out = []
    if manifest.get("profile") == "smoke":
        out.append(f"{run_dir.name} is a smoke run (a few training steps, to test the plumbing): "
                   f"its output is no super-resolution to read; train at quick or longer")
    if manifest["status"] != "complete":
        out.append(f"{run_dir.name} is {manifest['status']} "
                   f"({manifest.get('reason', 'no result yet')}): its output is no result")
    return tuple(out)


def parse_range(text: str | None, size: int, what: str, path) -> tuple[int, int]:
    """'a:b' (Python-style, either side optional) -> validated (a, b) within [0, size]."""
    if not text:
        return 0, size
    try:
        a, b = (s.strip() for s in text.split(":"))
        lo, hi = int(a) if a else 0, int(b) if b else size
    except ValueError:
        raise BenchError(f"{what} '{text}': expected START:STOP") from None
    if lo >= hi:
        raise BenchError(f"{what} '{text}': empty range (START must be below STOP)")
    if not 0 <= lo < hi <= size:
        raise BenchError(f"{path}: {what} {lo}:{hi} is outside the volume (0:{size})")
    return lo, hi


def check_request(input_path: Path, output: Path, overwrite: bool, tiling: dict | None = None) -> dict:
    """The output (check_output) and the tiling (tiling_request), before any work."""
    tiling = tiling_request(**(tiling or {}), min_tile=MIN_INPUT)
    check_output(input_path, output, overwrite)
    return tiling


def check_output(input_path: Path, output: Path, overwrite: bool) -> None:
    """Before any work: the output is a new .nii/.nii.gz (or --overwrite), never the input, in
    a folder that exists and can be written."""
    if not output.name.endswith((".nii", ".nii.gz")):
        raise BenchError(f"{output}: the output must be .nii or .nii.gz")
    if output.resolve() == input_path.resolve():    # symlinks and '..' included
        raise BenchError(f"{output}: this is the input volume; refusing to overwrite it")
    if output.is_dir():
        raise BenchError(f"{output}: is a folder; give a file name ending .nii or .nii.gz")
    if output.exists() and not overwrite:
        raise BenchError(f"{output}: exists; --overwrite replaces it")
    if not output.parent.is_dir():
        raise BenchError(f"{output.parent}: output folder does not exist")
    if not os.access(output.parent, os.W_OK | os.X_OK):
        raise BenchError(f"{output.parent}: output folder is not writable")


def _temp_prefix(output: Path) -> str:
    return f".{output.name}.benchsr-"


def remove_stale_temps(output: Path) -> list[Path]:
    """Temp files a killed infer left beside `output` (their writer's pid is gone)."""
    gone = []
    for tmp in output.parent.glob(f"{_temp_prefix(output)}*.tmp"):
        pid = tmp.name[len(_temp_prefix(output)):].split(".", 1)[0]
        if pid.isdigit() and not process_alive(int(pid)):
            tmp.unlink(missing_ok=True)
            gone.append(tmp)
    return gone


def nifti_header(shape_xyz, spacing, origin, direction, description: str):
    """A NIfTI-1 header (nibabel) for int16 HU in ITK's LPS geometry converted to RAS."""
    affine = ras_affine(spacing, origin, direction)
    header = nib.Nifti1Header()
    header.set_data_shape(shape_xyz)
    header.set_data_dtype(np.int16)
    header.set_zooms(tuple(float(s) for s in spacing))
    header.set_qform(affine, code=1)
    header.set_sform(affine, code=1)
    header.set_xyzt_units("mm")
    header["descrip"] = description.encode("ascii", "replace")[:79]
    header["vox_offset"] = 352
    return header


def input_region(volume: SlabReader, slices: str | None, roi: str | None,
                 path: Path) -> tuple:
    """(z0, z1, x0, x1, y0, y1) from --slices / --roi, checked against the volume."""
    nx, ny, nz = volume.size
    z0, z1 = parse_range(slices, nz, "slice range", path)
    x0, x1, y0, y1 = 0, nx, 0, ny
    if roi:
        try:
            xs, ys = roi.split(",")
        except ValueError:
            raise BenchError(f"--roi '{roi}': expected X0:X1,Y0:Y1") from None
        x0, x1 = parse_range(xs, nx, "ROI x", path)
        y0, y1 = parse_range(ys, ny, "ROI y", path)
    if min(x1 - x0, y1 - y0) < MIN_INPUT:
        raise BenchError(f"{path}: {x1 - x0}x{y1 - y0} pixels in-plane is smaller than "
                         f"the {MIN_INPUT}x{MIN_INPUT} minimum")
    return z0, z1, x0, x1, y0, y1


def _sr_slice(trained: Trained, raw: np.ndarray, plan: TilePlan, tiling: dict) -> bytes:
    """One input slice (stored values) -> its SR slice as little-endian int16 in the output's
    units; the output guard (tiling.checked_sr) fails on NaN/Inf."""
    (lo, hi), (out_lo, out_hi) = trained.window, trained.out_window
    lr = np.clip((raw.astype(np.float32) - lo) / (hi - lo), 0, 1)
    with torch.no_grad(), trained.method.ctx.autocast():
        sr = tiled_sr(trained.method, torch.from_numpy(lr)[None, None].to(trained.method.ctx.device),
                      trained.scale, plan.tile, tiling["overlap"], plan.batch, tiling["blend"])
    out = sr[0, 0].float().clamp(0, 1).cpu().numpy() * (out_hi - out_lo) + out_lo
    return np.round(out).astype("<i2").tobytes()   # x fastest, as NIfTI stores


def _finish(tmp: str, output: Path) -> None:
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)   # mkstemp makes 0600; a finished file follows the umask
    os.replace(tmp, output)


def _write_volume(trained, volume, output: Path, header, box, plan, tiling, progress, task):
    """The SR slices of the box, slab by slab, into `output` (write_nifti)."""
    z0, z1, y0, y1, x0, x1 = box

    def slices():
        for zs in range(z0, z1, SLAB):
            for raw in volume.region(zs, min(zs + SLAB, z1), y0, y1, x0, x1):
                yield _sr_slice(trained, raw, plan, tiling)
    write_nifti(output, header, slices(), progress, task)


def write_nifti(output: Path, header, slices, progress=None, task=None) -> None:
    """The NIfTI (`header`, then each slice's int16 bytes as `slices` yields them) written into
    a temp file beside `output`, renamed over it when whole; the temp is removed on any failure
    or signal."""
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=output.parent, prefix=f"{_temp_prefix(output)}{os.getpid()}.",
                                   suffix=".tmp")
        os.close(fd)
        opener = gzip.open if output.name.endswith(".gz") else open
        with opener(tmp, "wb") as fh:
            fh.write(header.binaryblock)
            fh.write(b"\0" * (352 - len(header.binaryblock)))   # no extensions
            for block in slices:
                fh.write(block)
                if task is not None:
                    progress.advance(task)
        _finish(tmp, output)
    except OSError as exc:
        if tmp:
            Path(tmp).unlink(missing_ok=True)
        raise BenchError(f"{output}: cannot write ({exc.strerror or exc})") from None
    except BaseException:
        if tmp:
            Path(tmp).unlink(missing_ok=True)
        raise


def super_resolve_volume(trained: Trained, input_path: Path, output: Path, slices: str | None = None,
                         roi: str | None = None, tiling: dict | None = None,
                         progress=None, overwrite: bool = False, series: str | None = None,
                         warn=None) -> dict:
    """Writes `output` (.nii or .nii.gz) atomically; returns what was done. `tiling`: the
    keywords of tiling_request (default: auto tile and batch, mean blend, overlap 0.25).
    `warn(text)` hears the run's cautions once the request is checked, before any work."""
    tiling = check_request(input_path, output, overwrite, tiling)
    remove_stale_temps(output)
    volume = SlabReader(input_path, series)      # streamed from disk where the format allows
    volume.check_hu()
    z0, z1, x0, x1, y0, y1 = input_region(volume, slices, roi, input_path)
    method = trained.method
    plan = plan_for(method, tiling, (y1 - y0, x1 - x0), 1, method.ctx.device)
    k, (sx, sy, sz) = trained.scale, volume.spacing
    origin = volume.physical_point((x0 - 0.5 + 0.5 / k, y0 - 0.5 + 0.5 / k, float(z0)))
    header = nifti_header(((x1 - x0) * k, (y1 - y0) * k, z1 - z0), (sx / k, sy / k, sz), origin,
                          volume.direction, f"benchsr {trained.label} x{k} in {trained.out_units}, "
                          f"{tiles(plan.tile)}")
    tell_cautions(trained, warn)
    task = progress.add_task(f"infer {trained.label} ×{k}", total=z1 - z0) if progress else None
    with exit_on_signals():     # before the temp exists: a SIGTERM never outruns its removal
        _write_volume(trained, volume, output, header, (z0, z1, y0, y1, x0, x1), plan, tiling,
                      progress, task)
    return {"output": str(output), "shape_xyz": [(x1 - x0) * k, (y1 - y0) * k, z1 - z0],
            "spacing": [sx / k, sy / k, sz], "origin": list(origin), "slices": [z0, z1],
            "roi": [x0, x1, y0, y1], "units": trained.out_units,
            "value_range": list(trained.out_window),
            "tiling": {"tile": plan.tile, "tile_batch": plan.batch, "blend": tiling["blend"],
                       "overlap": tiling["overlap"], "why": plan.why}}
