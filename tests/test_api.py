"""The notebook API (docs/api.md): what it documents runs, and scores as a run does."""
import numpy as np
import pandas as pd
import pytest

from benchsr import api
from benchsr.contracts import BenchError


def test_evaluate_scores_a_finished_run_as_the_run_did(trained, lung_smoke):
    run = api.load_run(trained["nearest"])
    scores = api.evaluate(run.method(), lung_smoke)
    recorded = pd.read_csv(trained["nearest"] / "metrics.csv")
    assert list(scores["image"]) == list(recorded["image"])
    for m in ("psnr", "ssim", "ssim_global", "mae_hu"):
        assert np.allclose(scores[m], recorded[m], rtol=1e-6), m


def test_evaluate_a_built_method_and_refuse_another_scale(lung_smoke):
    scores = api.evaluate(api.create_method("bicubic"), lung_smoke)
    assert len(scores) == 3 and scores["psnr"].between(15, 40).all()   # a slice per patient
    with pytest.raises(BenchError, match="x8"):
        api.evaluate(api.create_method("bicubic", scale=8, dataset="ct-uct"), lung_smoke)


def test_the_metric_functions():
    rng = np.random.default_rng(0)
    ref = rng.random((32, 32))
    test = np.clip(ref + rng.normal(0, 0.1, ref.shape), 0, 1)
    mse = np.mean((ref - test) ** 2)
    assert api.psnr(ref, test) == pytest.approx(10 * np.log10(1 / mse))
    assert api.rmse(ref, test) == pytest.approx(np.sqrt(mse))
    assert api.ssim_windowed(ref, ref) == pytest.approx(1.0)
    assert api.ssim_global(ref, ref) == pytest.approx(1.0)
    assert 0 < api.ssim_windowed(ref, test) < api.ssim_windowed(ref, (ref + test) / 2) < 1


def test_create_method_on_the_through_plane_track_gets_its_factor_and_profile():
    """It built smore with scale 4 and the 'bicubic' degradation, whose thin positions are
    pick's: a silently wrong geometry."""
    m = api.create_method("smore", scale=2, overrides=("data.plane=through",))
    assert (m.ctx.scale, m.ctx.degradation) == (2, "mean")
    with pytest.raises(BenchError, match="lung-ct is a 2x along z"):
        api.create_method("smore", scale=4, overrides=("data.plane=through",))
    with pytest.raises(BenchError, match="smore runs the through track only"):
        api.create_method("smore")
