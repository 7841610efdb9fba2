"""`benchsr infer` with a through-plane run: thin slices that overlay the thick input in 3D
Slicer (same in-plane grid and direction, z spacing / k, the origin where the profile puts the
first thin slice), values that follow the protocol, and memory flat in the slice count."""
import numpy as np
import pytest
import SimpleITK as sitk
import torch

from benchsr import api, registry
from benchsr.run import infer_z
from benchsr.run.infer import load_trained
from benchsr.run.runner import Runner

from conftest import _ct, _main, smoke_config, write_volume as _write

ROTATED = (0.0, -1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A linear-z run on the through-plane track, under each slice degradation."""
    out, found = tmp_path_factory.mktemp("runs"), {}
    for how in ("mean", "pick"):
        extra = ["data.plane=through", f"data.z_degradation={how}"]
        data = api.load_dataset("lung-ct", "smoke", overrides=tuple(extra))
        found[how] = Runner(data, out / how).run(registry.get("methods", "linear-z"),
                                                 smoke_config("linear-z", extra=extra)).run_dir
    return found


def _ramp(n=6):
    """HU rising by 100 per slice inside a disc, air outside: linear along z."""
    vol = _ct((n, 40, 48)).astype(np.int16)
    body = vol > -500
    vol[body] = (-600 + 100 * np.indices(vol.shape)[0])[body]
    return vol


@pytest.mark.parametrize("how, n_out, first", [("mean", 12, -0.25), ("pick", 11, 0.0)])
def test_the_thin_volume_overlays_the_thick_one(how, n_out, first, runs, tmp_path, capsys,
                                                monkeypatch):
    src = _write(tmp_path / "thick.nii.gz", _ramp(), spacing=(0.7, 0.8, 5.0),
                 origin=(-10.0, 20.0, 30.0), direction=ROTATED)
    dst = tmp_path / "thin.nii.gz"
    code, _, err = _main(["infer", runs[how], src, dst], capsys, monkeypatch)
    assert code == 0, err
    a, b = sitk.ReadImage(str(src)), sitk.ReadImage(str(dst))
    assert b.GetSize() == (48, 40, n_out)
    assert b.GetSpacing() == pytest.approx((0.7, 0.8, 2.5))
    assert b.GetDirection() == pytest.approx(ROTATED)
    # the first thin slice lies `first` input slices from the first input slice
    assert b.TransformIndexToPhysicalPoint((0, 0, 0)) == pytest.approx(
        a.TransformContinuousIndexToPhysicalPoint((0.0, 0.0, first)), abs=1e-4)
    # linear along z: the thin slices are the ramp at their positions; the ends are held
    out, ramp = sitk.GetArrayFromImage(b), _ramp()
    inside = ramp[0] > -500
    z = np.clip(first + np.arange(n_out) / 2, 0, 5)
    assert np.allclose(out[:, inside], (-600 + 100 * z)[:, None], atol=1)
    if how == "pick":                                  # every 2nd thin slice is an input slice
        assert np.array_equal(out[::2], np.clip(ramp, -1000, 500))


def test_memory_stays_flat_in_the_slice_count(runs, tmp_path, monkeypatch):
    src = _write(tmp_path / "long.nii", _ct((40, 40, 48), seed=3), spacing=(0.7, 0.8, 5.0))
    trained = load_trained(runs["mean"], None, torch.device("cpu"), "fp32")
    whole = np.clip((sitk.GetArrayFromImage(sitk.ReadImage(str(src))) + 1000) / 1500, 0, 1)
    seen, real = [], trained.method.super_resolve_z
    monkeypatch.setattr(trained.method, "super_resolve_z",
                        lambda thick: seen.append(thick.shape[0]) or real(thick))
    infer_z.super_resolve_volume_z(trained, src, tmp_path / "thin.nii")
    assert max(seen) <= infer_z.CHUNK + 2 * infer_z.OVERLAP and sum(seen) < 2 * 40
    # chunked as it is, linear-z gives what the whole stack at once gives
    at_once = real(torch.from_numpy(whole.astype(np.float32))).numpy() * 1500 - 1000
    written = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "thin.nii")))
    assert written.shape == (80, 40, 48) and np.abs(written - np.round(at_once)).max() <= 1
