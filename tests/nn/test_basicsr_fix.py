"""basicsr 1.4.2 breaks on torchvision >= 0.17; basicsr-fixed must import and work here."""
import numpy as np
import pytest
import torchvision


def test_basicsr_imports_with_new_torchvision():
    import basicsr  # noqa: F401 - the import itself is the test
    from basicsr.archs.rrdbnet_arch import RRDBNet
    assert tuple(int(v) for v in torchvision.__version__.split(".")[:2]) >= (0, 17)
    net = RRDBNet(3, 3, scale=4, num_feat=64, num_block=23, num_grow_ch=32)
    assert sum(p.numel() for p in net.parameters()) == 16_697_987


def test_matlab_imresize_oracles():
    from benchsr.data.volumes import degrade
    flat = np.full((64, 64), 0.25)
    assert np.allclose(degrade(flat, 4, "bicubic"), 0.25, atol=1e-6)
    ramp = np.tile(np.arange(64, dtype=np.float64), (64, 1)) / 63   # in [0, 1], as the contract
    small = degrade(ramp, 4, "bicubic")
    assert small.shape == (16, 16)
    # away from the borders an antialiased resize of a linear ramp is the block mean
    assert small[8, 4:12] == pytest.approx(ramp[0].reshape(16, 4).mean(1)[4:12], abs=1e-4)
    assert np.allclose(degrade(ramp, 4, "avgpool"), ramp.reshape(16, 4, 16, 4).mean((1, 3)))
