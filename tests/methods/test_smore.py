"""SMORE-style through-plane SR: the pairs it makes from in-plane patches are the protocol's
own thick-and-back, it learns from them, and its test-time reformats put z along the rows."""
import numpy as np
import torch

from benchsr.data import interpolate_z, thicken
from benchsr.run.check import build_method


def test_training_pairs_are_the_protocols_thick_and_back():
    m = build_method("smore")
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
    batch = type("B", (), {"hr": torch.nn.functional.interpolate(base, size=(48, 48),
                                                                  mode="bilinear")})()
    losses = [m.train_step(batch, step)["l1"] for step in range(60)]
    assert np.mean(losses[-10:]) < 0.7 * np.mean(losses[:10]), losses


def test_coronal_and_sagittal_reformats_put_z_along_the_rows():
    m = build_method("smore")
    m.nets["G"] = torch.nn.Identity()                    # the reformats alone
    thick = torch.rand(4, 6, 5, generator=torch.Generator().manual_seed(2))
    out = m.super_resolve_z(thick)
    want = np.clip(interpolate_z(thick.numpy(), 2, "mean", 3), 0, 1)
    assert out.shape == (8, 6, 5) and np.allclose(out.numpy(), want, atol=1e-6)
