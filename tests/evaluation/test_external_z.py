"""Outside through-plane models (issue 40): export-inputs writes each slab's thick stack as a
NIfTI with its true geometry; evaluate reads thin volumes back, scores one on the thin grid as a
run is, brings one on a finer z grid to the thin grid by the thin slices' profile (and says so),
and refuses any other grid with the grid it expected."""
import json

import numpy as np
import pandas as pd
import pytest

from benchsr.data import interpolate_z
from benchsr.data.volumes import lps_geometry, nib, ras_affine

from conftest import _main, _one_line_exit_2

ARGS = ["--dataset", "lung-ct", "--profile", "smoke", "--set", "data.plane=through", "--set",
        "data.patients=[totalsegmentator-cta]"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from benchsr import cli   # noqa: F401 - the entry point _main calls
    folder = tmp_path_factory.mktemp("zin") / "in"
    mp = pytest.MonkeyPatch()
    try:
        code, _, err = _main(["export-inputs", folder, *ARGS], _Capture(), mp)
    finally:
        mp.undo()
    assert code in (0, None), err
    return folder


class _Capture:
    """capsys for a module fixture: nothing to read back."""
    def readouterr(self):
        return "", ""


def _manifest(folder):
    return json.loads((folder / "manifest.json").read_text())


def _save(path, zyx, geometry):
    img = nib.Nifti1Image(np.ascontiguousarray(np.transpose(zyx, (2, 1, 0)), np.float32),
                          ras_affine(**geometry))
    nib.save(img, str(path))


def _spline(folder, entry):
    thick = np.asarray(nib.load(str(folder / entry["file"])).dataobj).transpose(2, 1, 0)
    return np.clip(interpolate_z(thick, 2, "mean", 3, n_thin=entry["expected_shape_zyx"][0]), 0, 1)


def test_the_thick_stacks_keep_their_true_geometry(exported):
    m = _manifest(exported)
    (entry,) = m["inputs"]
    assert m["plane"] == "through" and m["z_factor"] == 2
    thin, thick = entry["thin_lps"], entry["thick_lps"]
    assert thin["spacing"] == [1.5, 1.5, 1.5] and thick["spacing"] == [1.5, 1.5, 3.0]
    # the thick slice averages thin 0 and 1: it lies half a thin slice past thin 0
    normal = np.asarray(thin["direction"]).reshape(3, 3)[:, 2]
    assert np.allclose(thick["origin"], np.asarray(thin["origin"]) + 0.75 * normal)
    img = nib.load(str(exported / entry["file"]))
    got = lps_geometry(img.affine)
    assert np.allclose(got["spacing"], thick["spacing"]) and np.allclose(got["origin"], thick["origin"])
    assert img.shape == tuple(reversed(entry["thick_shape_zyx"]))
    # the exported slab is the protocol's thick stack, in [0, 1]
    arr = np.asarray(img.dataobj)
    assert 0 <= arr.min() and arr.max() <= 1 and arr.std() > 0.05


def _score(exported, tmp_path, capsys, monkeypatch, name, make):
    pred = tmp_path / f"pred-{name}"
    pred.mkdir()
    for entry in _manifest(exported)["inputs"]:
        make(pred, entry)
    return _main(["evaluate", pred, "--name", name, *ARGS, "--out", tmp_path / "res"],
                 capsys, monkeypatch)


def _metrics(root, label):
    (run,) = [p for p in (root / "runs" / "lung-ct").glob("*/*") if
              json.loads((p / "manifest.json").read_text())["label"] == label]
    return pd.read_csv(run / "metrics.csv"), json.loads((run / "manifest.json").read_text())


def test_on_the_thin_grid_or_finer_it_is_scored_as_a_run_is(exported, tmp_path, capsys,
                                                             monkeypatch):
    code, _, err = _main(["run", "--methods", "spline-z", *ARGS, "--out", tmp_path / "res"],
                         capsys, monkeypatch)
    assert code == 0, err
    ref, _ = _metrics(tmp_path / "res", "spline-z")

    def thin(pred, entry):             # spline-z's own slices, as a NIfTI on the thin grid
        _save(pred / entry["file"], _spline(exported, entry), entry["thin_lps"])
    code, _, err = _score(exported, tmp_path, capsys, monkeypatch, "thin", thin)
    assert code == 0, err
    got, manifest = _metrics(tmp_path / "res", "external:thin")
    assert np.allclose(got["psnr"], ref["psnr"]) and np.allclose(got["ssim"], ref["ssim"])
    assert not manifest["recipe_changes"]

    def finer(pred, entry):   # the same, every thin slice as 3 slices a third as thick that
        g = dict(entry["thin_lps"])     # differ, and only their mean is the thin slice
        sz = g["spacing"][2]
        normal = np.asarray(g["direction"]).reshape(3, 3)[:, 2]
        g = {**g, "spacing": [*g["spacing"][:2], sz / 3],
             "origin": list(np.asarray(g["origin"]) - sz / 3 * normal)}   # first third's centre
        fine = np.repeat(_spline(exported, entry), 3, axis=0)
        fine += np.tile([0.05, 0.0, -0.05], len(fine) // 3)[:, None, None]
        _save(pred / entry["file"], fine, g)
    code, _, err = _score(exported, tmp_path, capsys, monkeypatch, "finer", finer)
    assert code == 0, err
    got, manifest = _metrics(tmp_path / "res", "external:finer")
    assert np.allclose(got["psnr"], ref["psnr"], atol=1e-4)
    assert manifest["recipe_changes"] == {"z grid": "0.5 mm, mean over each thin slice"}


def _moved(entry, **change):
    g = dict(entry["thin_lps"])
    normal = np.asarray(g["direction"]).reshape(3, 3)[:, 2]
    if "dz" in change:
        g["origin"] = list(np.asarray(g["origin"]) + change["dz"] * normal)
    if "spacing" in change:
        g["spacing"] = change["spacing"]
    return g


@pytest.mark.parametrize("case,words", [
    ("origin 1 mm off along z", ("slices 1.5 mm apart", "expected 8 slices")),
    ("in-plane spacing", ("in-plane spacing",)),
    ("coarser z", ("covering", "the thin slices cover")),
    ("npy off the thin grid", ("a finer grid needs a NIfTI",)),
    # read as the axial track reads a prediction (external.load_prediction): one line each
    ("npz under a .npy name", ("an .npz archive",)),
    ("text values", ("holds <U", "real numbers")),
])
def test_any_other_grid_is_refused_with_the_grid_expected(exported, tmp_path, capsys,
                                                          monkeypatch, case, words):
    def make(pred, entry):
        arr, g = _spline(exported, entry), entry["thin_lps"]
        if case == "origin 1 mm off along z":
            g = _moved(entry, dz=1.0)
        elif case == "in-plane spacing":
            g = _moved(entry, spacing=[1.4, 1.4, 1.5])
        elif case == "coarser z":
            arr, g = arr[::2], _moved(entry, spacing=[1.5, 1.5, 3.0])
        elif case == "npy off the thin grid":
            np.save(pred / f"{entry['name']}.npy", np.repeat(arr, 2, axis=0))
            return
        elif case == "npz under a .npy name":
            with open(pred / f"{entry['name']}.npy", "wb") as fh:
                np.savez(fh, thin=arr)
            return
        else:
            np.save(pred / f"{entry['name']}.npy", np.full(arr.shape, "x"))
            return
        _save(pred / entry["file"], arr, g)
    code, _, err = _score(exported, tmp_path, capsys, monkeypatch, "bad", make)
    _one_line_exit_2(code, err, *words)
    assert not (tmp_path / "res" / "runs").exists()       # nothing written
