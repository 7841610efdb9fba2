"""Metric oracles: our PSNR / SSIM against skimage.metrics and basicsr on the same arrays."""
import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from benchsr.evaluation import metrics


@pytest.fixture
def pair():
    rng = np.random.default_rng(0)
    ref = rng.random((64, 72))
    test = np.clip(ref + rng.normal(0, 0.05, ref.shape), 0, 1)
    return ref, test


def test_psnr_matches_skimage_and_basicsr(pair):
    from basicsr.metrics.psnr_ssim import calculate_psnr
    ref, test = pair
    ours = metrics.psnr(ref, test, 1.0)
    assert ours == pytest.approx(peak_signal_noise_ratio(ref, test, data_range=1.0), abs=1e-9)
    assert ours == pytest.approx(calculate_psnr(ref * 255, test * 255, crop_border=0), abs=1e-6)
    assert metrics.psnr(ref * 2000, test * 2000, 2000.0) == pytest.approx(ours)


def test_windowed_ssim_matches_skimage_and_basicsr(pair):
    from basicsr.metrics.psnr_ssim import calculate_ssim
    ref, test = pair
    ours = metrics.ssim_windowed(ref, test, 1.0)
    sk = structural_similarity(ref, test, data_range=1.0, gaussian_weights=True, sigma=1.5,
                               use_sample_covariance=False)
    assert ours == pytest.approx(sk, abs=1e-6)
    bs = calculate_ssim((ref * 255)[..., None], (test * 255)[..., None], crop_border=0)
    assert ours == pytest.approx(bs, abs=1e-6)
    assert 0.0 < ours < 1.0
    assert metrics.ssim_windowed(ref, ref) == pytest.approx(1.0)


@pytest.mark.parametrize("padding", ["valid", "zero"])
def test_the_separable_window_is_the_2d_gaussian_window(padding):
    """SSIM's local means run as two 1D passes (19x faster on a 512 x 512 float64 slice); they
    must equal the 11 x 11 window's, zeros outside the image included."""
    import torch
    import torch.nn.functional as F
    rng = np.random.default_rng(1)
    a = torch.as_tensor(rng.random((2, 3, 23, 30)))
    b = (a + 0.1 * torch.as_tensor(rng.standard_normal(a.shape))).clamp(0, 1)
    g = metrics._gaussian_1d(11, 1.5, "cpu", torch.float64)
    w = (g[:, None] * g[None, :]).expand(3, 1, 11, 11)
    pad = 5 if padding == "zero" else 0
    mean = lambda t: F.conv2d(t, w, padding=pad, groups=3)  # noqa: E731
    mu_a, mu_b = mean(a), mean(b)
    va, vb, cov = mean(a * a) - mu_a ** 2, mean(b * b) - mu_b ** 2, mean(a * b) - mu_a * mu_b
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    want = (2 * mu_a * mu_b + c1) * (2 * cov + c2) / ((mu_a ** 2 + mu_b ** 2 + c1) * (va + vb + c2))
    got = metrics.ssim_map(a, b, padding=padding)
    assert got.shape == want.shape == ((2, 3, 23, 30) if pad else (2, 3, 13, 20))
    assert torch.allclose(got, want, rtol=0, atol=1e-12)


def test_global_ssim_closed_form():
    rng = np.random.default_rng(1)
    a = rng.random((32, 32))
    b = a + 0.1   # a shift: covariance = variance, so SSIM reduces to the luminance term
    ma, mb = a.mean(), b.mean()
    expected = (2 * ma * mb + 1e-4) / (ma ** 2 + mb ** 2 + 1e-4)
    assert metrics.ssim_global(a, b) == pytest.approx(expected, rel=1e-9)
    assert metrics.ssim_global(a, a) == pytest.approx(1.0)


def test_crop_border():
    img = np.arange(100.0).reshape(10, 10)
    assert metrics.crop_border(img, 2).shape == (6, 6)
    assert metrics.crop_border(img, 0).shape == (10, 10)


def test_bootstrap_summary():
    values = [20.0, 21.0, 22.0, 23.0, 24.0]
    s = metrics.bootstrap_summary(values)
    assert s["n"] == 5 and s["mean"] == pytest.approx(22.0)
    assert s["std"] == pytest.approx(np.std(values, ddof=1))
    assert s["ci95"][0] < 22.0 < s["ci95"][1]
    assert metrics.bootstrap_summary([None, float("nan")])["n"] == 0


def test_lpips_says_why_when_weights_are_absent(tmp_path, monkeypatch):
    import torch
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    lp = metrics.LPIPSMetric()
    assert not lp.available
    assert lp.reason == "n/a: weights not found" and "alexnet" in lp.detail


def test_adding_a_metric_is_one_registry_entry(tmp_path, lung_smoke, monkeypatch):
    """A new metric in benchsr.metrics.METRICS reaches metrics.csv, summary.json and the
    leaderboard with no other edit."""
    import json

    from benchsr.evaluation import metrics
    from benchsr import registry
    from benchsr.report import rows, tables
    from benchsr.run.runner import Runner
    from conftest import smoke_config
    mae = metrics.Metric("mae", "MAE", "MAE", "lower", 4,
                         lambda r, t, _: float(np.abs(np.asarray(r) - np.asarray(t)).mean()))
    monkeypatch.setitem(metrics.METRICS, "mae", mae)
    out = Runner(lung_smoke, tmp_path).run(registry.get("methods", "bicubic"), smoke_config("bicubic"))
    assert out.status == "complete", out.reason
    assert "mae" in (out.run_dir / "metrics.csv").read_text().splitlines()[0]
    summary = json.loads((out.run_dir / "summary.json").read_text())
    assert 0 < summary["mae"]["mean"] < 0.1
    quality = tables.groups(rows.load_runs([tmp_path]))[0].quality.cells
    assert quality.loc[0, "MAE"].startswith(f"{summary['mae']['mean']:.4f}")


def test_ssim_loss_stays_fp32_under_bf16_autocast():
    """Under CPU bf16 autocast the SSIM convolutions ran in bf16: the variances cancelled and a
    quick SR-CycleGAN run (seed 2) failed with an inf generator loss at step 1."""
    import torch
    from benchsr.methods.srcyclegan.losses import ssim_loss
    g = torch.Generator().manual_seed(0)
    a = torch.rand(2, 1, 24, 24, generator=g) * 2 - 1
    b = (a + 0.05 * torch.randn(2, 1, 24, 24, generator=g)).clamp(-1, 1)
    ref = ssim_loss(a, b, 2.0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = ssim_loss(a, b, 2.0)
    assert got.dtype == torch.float32 and torch.isfinite(got)
    assert abs(float(got) - float(ref)) < 1e-6


def test_input_r_tells_a_super_resolution_from_an_inverted_or_unrelated_output():
    from benchsr.evaluation.evaluate import degenerate_reason, input_r
    rng = np.random.default_rng(0)
    lr = rng.random((16, 16)).astype(np.float32)
    sr = np.kron(lr, np.ones((4, 4), np.float32))               # nearest: pools back exactly
    assert input_r(sr, lr) == pytest.approx(1.0)
    assert input_r(1 - sr, lr) == pytest.approx(-1.0)
    assert abs(input_r(rng.random((64, 64)), lr)) < 0.3           # unrelated to the input
    assert input_r(np.full((64, 64), 0.5), lr) is None            # flat: r is undefined
    rows = [{"input_r": r, "psnr": 4.0} for r in (-0.5, -0.4, 0.9)]
    assert "r = -0.40" in degenerate_reason(rows, 0.5) and "4.00 dB" in degenerate_reason(rows, 0.5)
    assert degenerate_reason(rows, 0) is None                     # eval.min_input_r = 0: off
    assert degenerate_reason([{"input_r": 0.68}], 0.5) is None
