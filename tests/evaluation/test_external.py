"""Score an outside model's predictions with no plugin: export the inputs, super-resolve them with
a few lines of scipy, score them, and see them ranked beside the built-in methods."""
import json
import os
import sys

import numpy as np
import pytest
from scipy.ndimage import zoom

from benchsr import cli
from benchsr.report import rows, tables

from conftest import _main


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inputs")
    sys_argv = sys.argv
    sys.argv = ["benchsr", "export-inputs", str(folder / "in"), "--dataset", "lung-ct",
                "--profile", "smoke"]
    try:
        cli.main()
    except SystemExit as exc:
        assert exc.code in (0, None)
    finally:
        sys.argv = sys_argv
    return folder / "in"


def _predict(inputs, out, fn):
    out.mkdir()
    manifest = json.loads((inputs / "manifest.json").read_text())
    for entry in manifest["inputs"]:
        np.save(out / f"{entry['name']}.npy", fn(np.load(inputs / entry["file"]), manifest))
    return manifest


def _beside_builtins(smoke_out, tmp_path):
    """A copy of the session's smoke results: the external row joins a copy, not the shared one."""
    import shutil
    shutil.copytree(smoke_out, tmp_path / "results")
    return tmp_path / "results"


def test_export_score_and_rank_an_outside_model(exported, tmp_path, capsys, monkeypatch, smoke_out):
    smoke_out = _beside_builtins(smoke_out, tmp_path)
    pred = tmp_path / "pred"
    manifest = _predict(exported, pred, lambda lr, m: np.clip(zoom(lr, m["scale"], order=3), 0, 1))
    assert manifest["inputs"] and all(e["expected_shape"] == [4 * s for s in e["lr_shape"]]
                                      for e in manifest["inputs"])
    code, out, err = _main(["evaluate", pred, "--name", "scipy-cubic", "--dataset", "lung-ct",
                            "--profile", "smoke",
                           "--out", smoke_out], capsys, monkeypatch)
    assert code == 0, err
    found = rows.load_runs([smoke_out])
    quality = tables.groups(found)[0].quality.cells.set_index("Method")
    assert "external:scipy-cubic" in quality.index
    assert float(quality.loc["external:scipy-cubic", "PSNR (dB)"].split()[0]) > 15
    # a file lookup is no model's speed: n/a, never bold as the fastest
    cost = tables.groups(found)[0].cost
    row = cost.cells.index[cost.cells["Method"] == "external:scipy-cubic"][0]
    assert cost.cells.loc[row, "ms / slice"] == "n/a" and not cost.best.loc[row, "ms / slice"]
    assert cost.cells.loc[row, "Peak memory (MiB)"] == "n/a"


def test_ms_per_image_leaves_out_the_warm_up_call():
    from benchsr.evaluation.evaluate import per_image_ms
    assert per_image_ms([1.907, 0.029, 0.031]) == pytest.approx(30.0)   # the mean was 656
    assert per_image_ms([0.5]) == pytest.approx(500.0) and per_image_ms([]) is None


def test_outside_bicubic_scores_exactly_as_the_bicubic_method(exported, tmp_path, capsys,
                                                               monkeypatch, smoke_out):
    from benchsr.data.volumes import enlarge_bicubic
    smoke_out = _beside_builtins(smoke_out, tmp_path)
    pred = tmp_path / "pred"
    _predict(exported, pred, lambda lr, m: enlarge_bicubic(lr, m["scale"]))
    code, _, err = _main(["evaluate", pred, "--name", "same-bicubic", "--profile", "smoke",
                         "--out", smoke_out], capsys, monkeypatch)
    assert code == 0, err
    stats = tables.groups(rows.load_runs([smoke_out]))[0].quality.numbers
    psnr = stats[stats["metric"] == "psnr"].set_index("label")["mean"]
    assert psnr["external:same-bicubic"] == pytest.approx(psnr["bicubic"], abs=1e-9)


def test_hu_predictions_with_units_hu(exported, tmp_path, capsys, monkeypatch):
    pred = tmp_path / "pred"
    _predict(exported, pred, lambda lr, m: zoom(lr, m["scale"], order=0) * 1500 - 1000)
    code, _, err = _main(["evaluate", pred, "--name", "hu-model", "--profile", "smoke", "--units",
                         "hu", "--out", tmp_path / "res"], capsys, monkeypatch)
    assert code == 0, err


def test_a_cubic_spline_zoom_is_scored_clamped_and_says_how_much(exported, tmp_path, capsys,
                                                                monkeypatch):
    """Predictions as most people would make them, a cubic spline zoom of the exported [0, 1]
    inputs, overshoot at air edges (to about -0.12): clamped, as the methods' outputs are, and
    the row's note gives the share of pixels clamped."""
    pred = tmp_path / "pred"
    _predict(exported, pred, lambda lr, m: zoom(lr, m["scale"], order=3))
    arrays = [np.load(p) for p in sorted(pred.glob("*.npy"))]
    share = sum(int(((a < 0) | (a > 1)).sum()) for a in arrays) / sum(a.size for a in arrays)
    assert min(float(a.min()) for a in arrays) < -0.05 and share > 0.01
    code, _, err = _main(["evaluate", pred, "--name", "spline", "--profile", "smoke",
                          "--out", tmp_path / "res"], capsys, monkeypatch)
    assert code == 0, err
    (manifest,) = (tmp_path / "res" / "runs").glob("*/external-spline/*/manifest.json")
    notes = json.loads(manifest.read_text())["notes"]
    assert any(n.startswith("predictions clamped to [0, 1]") and f"{share:.2%} of pixels" in n
               for n in notes), notes


def test_predictions_of_another_profile_name_both_profiles(exported, tmp_path, capsys, monkeypatch):
    """A smoke export evaluated at the default profile (quick) said only 'N prediction(s)
    missing'; it now names the profiles, and the export's own when its manifest came along."""
    import shutil
    pred = tmp_path / "pred"
    _predict(exported, pred, lambda lr, m: zoom(lr, m["scale"], order=1))
    code, _, err = _main(["evaluate", pred, "--name", "other", "--out", tmp_path / "res"],
                         capsys, monkeypatch)
    assert code == 2 and "this evaluation is at profile quick" in " ".join(err.split()), err
    shutil.copy(exported / "manifest.json", pred / "manifest.json")
    code, _, err = _main(["evaluate", pred, "--name", "other", "--out", tmp_path / "res"],
                         capsys, monkeypatch)
    flat = " ".join(err.split())
    assert code == 2 and "exported at profile smoke (manifest.json)" in flat, err
    assert "evaluate with --profile smoke" in flat and not (tmp_path / "res").exists()


def test_units_hu_on_unit_data_is_refused(exported, tmp_path, capsys, monkeypatch):
    """[0, 1] predictions declared as HU scored 5 dB without a word."""
    pred = tmp_path / "pred"
    _predict(exported, pred, lambda lr, m: np.clip(zoom(lr, m["scale"], order=1), 0, 1))
    code, _, err = _main(["evaluate", pred, "--name", "hu", "--profile", "smoke", "--units", "hu",
                          "--out", tmp_path / "res"], capsys, monkeypatch)
    assert code == 2 and "look like [0, 1], not HU" in err and not (tmp_path / "res").exists()


@pytest.mark.parametrize("spoil, words", [
    (lambda d: next(d.glob("*.npy")).unlink(), "missing"),
    (lambda d: np.save(d / "stranger.npy", np.zeros((4, 4))), "no evaluation input is called"),
    (lambda d: np.save(next(d.glob("*.npy")), np.zeros((8, 8))), "expected"),
    (lambda d: [np.save(p, zoom(np.load(p), 0.5, order=0)) for p in list(d.glob("*.npy"))[:1]],
     "2x the 32x32 input exported for it; this dataset is x4"),
    (lambda d: [np.save(p, np.load(p) * np.nan) for p in list(d.glob("*.npy"))[:1]], "non-finite"),
    (lambda d: [np.save(p, np.load(p) * 1500 - 1000) for p in list(d.glob("*.npy"))[:1]],
     "need --units hu"),
    # clamped with only a note before (the band was [-0.5, 1.5]): shifted, not overshooting
    (lambda d: [np.save(p, np.load(p) * 0.2 + 1.2) for p in list(d.glob("*.npy"))[:1]],
     "100% of pixels are not in [0, 1]: shifted or scaled"),
    (lambda d: [np.save(p, np.load(p) * 2 - 1) for p in list(d.glob("*.npy"))[:1]],
     "look like [-1, 1] (tanh)"),
    (lambda d: [np.save(p, np.round(np.load(p) * 255).astype(np.uint8)) for p in d.glob("*.npy")],
     "look like 8-bit 0..255"),
    # a FIFO named like a prediction made evaluate hang forever
    (lambda d: [p.unlink() or os.mkfifo(p) for p in list(d.glob("*.npy"))[:1]],
     "not a regular file"),
    # these two gave a traceback (TypeError, ValueError)
    (lambda d: [np.save(p, np.zeros(np.load(p).shape, [("x", "f4"), ("y", "f4")]))
                for p in list(d.glob("*.npy"))[:1]], "a prediction is an array of real numbers"),
    (lambda d: [np.savez(p, a=np.load(p)) or os.replace(f"{p}.npz", p)
                for p in list(d.glob("*.npy"))[:1]], "an .npz archive, not one .npy array"),
    (lambda d: [np.save(p, np.load(p) > 0.5) for p in list(d.glob("*.npy"))[:1]],
     "holds bool values"),
    # misleading words (issue 28, item 17): a text file was "pickled data", an empty array
    # "x0 of the input", and a prediction of another input's size "x8 of the input"
    (lambda d: [p.write_text("root:x:0:0:root:/root:/bin/bash\n") for p in list(d.glob("*.npy"))[:1]],
     "not a .npy file (no NumPy header)"),
    (lambda d: [np.save(p, np.zeros((0, 0), np.float32)) for p in list(d.glob("*.npy"))[:1]],
     "(an empty array)"),
    (lambda d: [np.save(p, np.zeros((8 * 32, 8 * 32), np.float32))
                for p in list(d.glob("*.npy"))[:1]], "8x the 32x32 input exported for it"),
    # was a FAILED run in a written leaderboard, exit 0 (item 19)
    (lambda d: [np.save(p, np.full(np.load(p).shape, 0.5, np.float32))
                for p in list(d.glob("*.npy"))[:1]], "constant (0.5 everywhere)"),
])
def test_bad_predictions_are_one_line_and_write_nothing(spoil, words, exported, tmp_path, capsys,
                                                         monkeypatch):
    pred = tmp_path / "pred"
    _predict(exported, pred, lambda lr, m: np.clip(zoom(lr, m["scale"], order=1), 0, 1))
    spoil(pred)
    code, _, err = _main(["evaluate", pred, "--name", "bad", "--profile", "smoke", "--out",
                         tmp_path / "res"], capsys, monkeypatch)
    assert code == 2 and words in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "res").exists()


def _score(pred, name, tmp_path, capsys, monkeypatch):
    code, _, err = _main(["evaluate", pred, "--name", name, "--profile", "smoke", "--out",
                          tmp_path / name], capsys, monkeypatch)
    return code, err, (json.loads(next((tmp_path / name).glob("runs/*/*/*/summary.json")).read_text())
                       ["psnr"]["mean"] if code == 0 else None)


def test_nifti_predictions_score_as_saved_whatever_the_writer(exported, tmp_path, capsys, monkeypatch):
    """The obvious nibabel save (identity affine) was read transposed: 9 dB instead of ~20."""
    import nibabel as nib
    import SimpleITK as sitk
    manifest = json.loads((exported / "manifest.json").read_text())
    assert "SimpleITK" in manifest["nifti_axis_order"]
    folders = {k: tmp_path / k for k in ("npy", "nibabel", "sitk", "ambiguous")}
    for f in folders.values():
        f.mkdir()
    for entry in manifest["inputs"]:
        sr = np.clip(zoom(np.load(exported / entry["file"]), manifest["scale"], order=3), 0, 1)
        np.save(folders["npy"] / f"{entry['name']}.npy", sr)
        nib.save(nib.Nifti1Image(sr, np.eye(4)), folders["nibabel"] / f"{entry['name']}.nii.gz")
        sitk.WriteImage(sitk.GetImageFromArray(sr), str(folders["sitk"] / f"{entry['name']}.nii.gz"))
        nib.save(nib.Nifti1Image(sr, np.diag([0.7, 0.7, 1, 1])),
                 folders["ambiguous"] / f"{entry['name']}.nii.gz")
    scores = {k: _score(folders[k], k, tmp_path, capsys, monkeypatch) for k in folders}
    assert scores["npy"][0] == 0 and scores["npy"][2] > 15
    assert scores["nibabel"][2] == pytest.approx(scores["npy"][2], abs=1e-4)
    assert scores["sitk"][2] == pytest.approx(scores["npy"][2], abs=1e-4)
    code, err, _ = scores["ambiguous"]
    assert code == 2 and "ambiguous" in err and len(err.strip().splitlines()) == 1


def test_export_inputs_on_a_full_disk_leaves_nothing_and_a_retry_works(tmp_path, capsys,
                                                                       monkeypatch):
    import errno
    real, calls = np.save, []

    def save_until_full(path, arr, *a, **k):
        calls.append(path)
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, arr, *a, **k)
    out = tmp_path / "inputs"
    monkeypatch.setattr(np, "save", save_until_full)
    code, _, err = _main(["export-inputs", out, "--profile", "smoke"], capsys, monkeypatch)
    assert code == 2 and "No space left on device" in err and "nothing was written" in err, err
    assert list(tmp_path.iterdir()) == []                  # no OUT, no hidden partial folder
    monkeypatch.setattr(np, "save", real)
    code, _, err = _main(["export-inputs", out, "--profile", "smoke"], capsys, monkeypatch)
    assert code == 0, err
    manifest = json.loads((out / "manifest.json").read_text())
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["manifest.json", *(e["file"] for e in manifest["inputs"])])


def test_infer_and_export_weights_on_an_outside_models_run_say_what_it_is(exported, tmp_path,
                                                                          capsys, monkeypatch):
    """Both said "unknown method 'external:...'"."""
    pred = tmp_path / "pred"
    _predict(exported, pred, lambda lr, m: np.clip(zoom(lr, m["scale"], order=1), 0, 1))
    code, _, err = _main(["evaluate", pred, "--name", "mine", "--profile", "smoke", "--out",
                          tmp_path / "res"], capsys, monkeypatch)
    assert code == 0, err
    run = next((tmp_path / "res" / "runs" / "lung-ct").glob("external*/*"))
    for args in (["infer", run, tmp_path / "in.nii.gz", tmp_path / "o.nii.gz"],
                 ["export-weights", run, tmp_path / "w.safetensors"]):
        code, _, err = _main(args, capsys, monkeypatch)
        assert code == 2 and "outside model's predictions (external:mine)" in err, err
        assert "unknown method" not in err


def test_sigterm_during_export_inputs_leaves_no_hidden_folder(tmp_path):
    """SIGTERM killed export-inputs at once: OUT was never half-written, but the hidden
    .OUT.partial-* folder beside it stayed behind."""
    import subprocess
    script = (
        "import os, signal, sys\n"
        "import numpy as np\n"
        "from benchsr.cli.main import app\n"
        "real = np.save\n"
        "def save_then_term(path, arr, *a, **k):\n"
        "    real(path, arr, *a, **k)\n"
        "    if '.partial-' in str(path):\n"   # not the dataset cache's own writes
        "        os.kill(os.getpid(), signal.SIGTERM)\n"
        "np.save = save_then_term\n"
        "app([\"export-inputs\", sys.argv[1], \"--profile\", \"smoke\"])\n")
    out = tmp_path / "inputs"
    proc = subprocess.run([sys.executable, "-c", script, str(out)], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode in (143, -15), proc.stderr[-500:]
    assert list(tmp_path.iterdir()) == [], list(tmp_path.iterdir())   # no OUT, nothing hidden
