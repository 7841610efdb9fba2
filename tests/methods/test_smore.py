"""SMORE-style through-plane SR: the pairs it makes from in-plane patches are the protocol's
own thick-and-back, in pixels or at the thin spacing in mm (issue 40), it learns from them, and
its test-time reformats put z along the rows."""
import numpy as np
import pytest
import torch

from benchsr.contracts import BenchError, TrainBatch
from benchsr.data import interpolate_z, mean_over_extents, physical_pair, thicken
from benchsr.run.check import build_method


def test_the_mean_over_each_extent_by_hand():
    x = np.arange(12.0)
    assert mean_over_extents(x, np.arange(13.0), np.arange(5) * 3.0).tolist() == [1, 4, 7, 10]
    # 5 mm cells over 0.84 mm pixels: the first holds pixels 0..4 and 0.8 mm of pixel 5
    got = mean_over_extents(x, np.arange(13) * 0.84, np.arange(3) * 5.0)
    assert got[0] == pytest.approx((0.84 * (0 + 1 + 2 + 3 + 4) + 0.8 * 5) / 5)
    assert got[1] == pytest.approx((0.04 * 5 + 0.84 * (6 + 7 + 8 + 9 + 10) + 0.76 * 11) / 5)
    with pytest.raises(BenchError, match="reach beyond"):
        mean_over_extents(x, np.arange(13) * 0.84, np.arange(4) * 5.0)


def test_physical_pairs_are_at_the_thin_spacing_and_thickened_by_the_profile():
    patch = np.random.default_rng(0).random((48, 40)).astype(np.float32)
    # 0.84 mm pixels, 5 mm thin slices: 48 rows hold 8 thin rows (a multiple of k = 2)
    x, y = physical_pair(patch, 0.842, 5.0, 2, "mean", 3)
    assert x.shape == y.shape == (8, 40)
    assert np.allclose(y, mean_over_extents(patch, np.arange(49) * 0.842, np.arange(9) * 5.0))
    want = interpolate_z(thicken(y[:, None], 2, "mean"), 2, "mean", 3, n_thin=8)[:, 0]
    assert np.allclose(x, want, atol=1e-6)
    # isotropic (1.5 mm): nothing resampled, the pair is the pixel pair of the same patch
    x, y = physical_pair(patch, 1.5, 1.5, 2, "mean", 3)
    pixel = interpolate_z(thicken(patch[:, None], 2, "mean"), 2, "mean", 3, n_thin=48)[:, 0]
    assert np.array_equal(y, patch) and np.allclose(x, pixel, atol=1e-6)
    # thin slices finer than the pixels (1.0 mm under 1.5 mm): linearly interpolated rows,
    # so a ramp along the rows stays a ramp at the thin pitch
    ramp = np.repeat(np.arange(48, dtype=np.float32)[:, None], 4, axis=1)
    _, y = physical_pair(ramp, 1.5, 1.0, 2, "mean", 3)
    assert y.shape == (72, 4)
    inside = slice(1, 70)             # the outermost centres lie past the first/last pixel's
    assert np.allclose(y[inside, 0], ((np.arange(72) + 0.5) / 1.5 - 0.5)[inside], atol=1e-5)
    # too few thin rows for two thick ones: one line naming the key
    with pytest.raises(BenchError, match="train.lr_patch"):
        physical_pair(patch[:16], 0.842, 5.0, 2, "mean", 3)


def test_smore_trains_on_each_patchs_own_geometry():
    m = build_method("smore")
    hr = torch.rand(3, 1, 48, 48, generator=torch.Generator().manual_seed(0))
    spacing = torch.tensor([[0.842, 0.842, 5.0], [0.703, 0.703, 2.5], [1.5, 1.5, 1.5]])
    torch.manual_seed(1)
    groups = m.pairs(TrainBatch(hr[:, :, :, :8], hr, hr_spacing=spacing))
    assert sorted(tuple(y.shape) for _, y in groups) == [(1, 1, 8, 48), (1, 1, 12, 48),
                                                         (1, 1, 48, 48)]
    step = m.train_step(TrainBatch(hr[:, :, :, :8], hr, hr_spacing=spacing), 0)
    assert np.isfinite(step["l1"])
    # no spacing, physical pairs: one line that names the pixel preset
    with pytest.raises(BenchError, match="pixel preset"):
        m.pairs(TrainBatch(hr, hr))


def test_training_pairs_are_the_protocols_thick_and_back():
    m = build_method("smore", preset="pixel")
    assert (m.ctx.scale, m.ctx.degradation) == (2, "mean")
    hr = torch.rand(3, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    x = m.degraded_rows(hr)
    rows = hr[:, 0].numpy().transpose(1, 0, 2)                        # z first
    want = interpolate_z(thicken(rows, 2, "mean"), 2, "mean", 3, n_thin=16).transpose(1, 0, 2)
    assert x.shape == hr.shape and np.allclose(x[:, 0].numpy(), want, atol=1e-6)
    # rows were averaged in pairs: within each column the degradation lost detail along rows
    assert float((x - hr).abs().mean()) > 0.05


def test_it_learns_to_undo_the_degradation():
    torch.manual_seed(0)
    m = build_method("smore")
    base = torch.rand(4, 1, 6, 6, generator=torch.Generator().manual_seed(1))
    hr = torch.nn.functional.interpolate(base, size=(48, 48), mode="bilinear")
    batch = TrainBatch(hr, hr, hr_spacing=torch.tensor([[1.0, 1.0, 2.0]] * 4))
    losses = [m.train_step(batch, step)["l1"] for step in range(60)]
    assert np.mean(losses[-10:]) < 0.7 * np.mean(losses[:10]), losses


def test_coronal_and_sagittal_reformats_put_z_along_the_rows():
    m = build_method("smore")
    m.nets["G"] = torch.nn.Identity()                    # the reformats alone
    thick = torch.rand(4, 6, 5, generator=torch.Generator().manual_seed(2))
    out = m.super_resolve_z(thick)
    want = np.clip(interpolate_z(thick.numpy(), 2, "mean", 3), 0, 1)
    assert out.shape == (8, 6, 5) and np.allclose(out.numpy(), want, atol=1e-6)
