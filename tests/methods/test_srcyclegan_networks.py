"""SR-CycleGAN architecture: the exact parameter checkpoints of methods.md and the presets."""
import pytest
import torch

from benchsr import config, registry
from benchsr.contracts import Dataset, RunContext
from benchsr.nn.gan import PatchDiscriminator
from benchsr.methods.srcyclegan.networks import G1, G2


def n_params(m):
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("scale, g1, g2, total", [(8, 802_222, 12_936_769, 19_264_369),
                                                  (4, 797_973, 11_744_065, 18_067_416)])
def test_parameter_checkpoints(scale, g1, g2, total):
    d = n_params(PatchDiscriminator())
    assert d == 2_762_689
    assert n_params(G1(scale)) == g1
    assert n_params(G2(scale)) == g2
    assert n_params(G1(scale)) + n_params(G2(scale)) + 2 * d == total


@pytest.mark.parametrize("kw", [{}, {"upsampler": "transposed", "down_blocks": True},
                                {"down_blocks": True}, {"kernel_mid": 7, "kernel_out": 3}])
def test_generators_scale_by_k(kw):
    x = torch.randn(2, 1, 24, 24)
    for k in (4, 8):
        assert G1(k, ngf=8, n_blocks=1, **kw)(x).shape == (2, 1, 24 * k, 24 * k)
        assert G2(k, ngf=8, n_blocks=1)(torch.randn(2, 1, 24 * k, 24 * k)).shape == (2, 1, 24, 24)


class _Scale8(Dataset):
    name, scale = "fake8", 8


def _built(preset, dataset_cls=None, profile="paper"):
    cls = registry.get("methods", "srcyclegan")
    ds = dataset_cls or registry.get("datasets", "lung-ct")
    cfg = config.resolve(cls, preset, ds, profile, [])
    return cfg


def test_paper_defaults_and_official_preset():
    paper = _built("default")["model"]
    assert (paper["lambda_ssim_x"], paper["lambda_ssim_y"], paper["lambda_down"],
            paper["lambda_up"], paper["lambda_cycle"]) == (1.0, 1.0, 0.7, 0.3, 1.0)
    assert paper["recon_loss"] == "l2" and paper["lr"] == 1e-5 and paper["lambda_identity"] == 0
    official4 = _built("official")["model"]
    assert official4["recon_loss"] == "l1" and official4["lambda_identity"] == 0.2
    assert (official4["lambda_down"], official4["lambda_up"]) == (0.7, 0.3)      # 4x
    official8 = _built("official", _Scale8)["model"]
    assert (official8["lambda_down"], official8["lambda_up"]) == (1.0, 1.0)      # 8x


def test_table2_presets_are_the_same_plugin():
    n1, n2, n3 = (_built(p)["model"] for p in ("network1", "network2", "network3"))
    assert n1["upsampler"] == "transposed" and n1["down_blocks"] and n1["lambda_down"] == 0
    assert n2["upsampler"] == "pixelshuffle" and n2["lambda_ssim_x"] == 0
    assert n3["upsampler"] == "transposed" and n3["lambda_down"] == 0.7
    method_cls = registry.get("methods", "srcyclegan")
    ctx = RunContext(torch.device("cpu"), scale=4)
    m = method_cls(_built("network1"), ctx)
    m.build()
    assert any(isinstance(l, torch.nn.ConvTranspose2d) for l in m.nets["G1"].modules())
    m = method_cls(_built("default"), ctx)
    m.build()
    assert any(isinstance(l, torch.nn.PixelShuffle) for l in m.nets["G1"].modules())
    assert n_params(m.nets["G1"]) + n_params(m.nets["G2"]) + 2 * 2_762_689 == 18_067_416


def test_table7_keys_change_the_network():
    cfg = _built("default")
    assert cfg["model"]["n_blocks"] == 9
    for key, value in (("n_blocks", 6), ("n_blocks", 12), ("kernel_mid", 7), ("kernel_out", 3)):
        g = G1(4, **{key: value})
        assert n_params(g) != 797_973


def test_down_block_generators_super_resolve_any_lr_size():
    """Network1 and Network3 (two stride-2 down-blocks) returned 176 x 240 for the CTA's
    41 x 58 LR slices, and every run of them failed the output contract on three patients."""
    import torch
    from benchsr.api import create_method
    for preset in ("network1", "network3", "default"):
        method = create_method(f"srcyclegan:{preset}", dataset="lung-ct")
        lr = torch.rand(1, 1, 41, 58)
        with torch.no_grad():
            sr = method.super_resolve(lr)
        assert sr.shape == (1, 1, 164, 232), preset
        if preset == "network1":   # the padding only adds context: the crop is what a
            big = torch.nn.functional.pad(lr, (0, 2, 0, 3), mode="reflect")   # padded input gives
            with torch.no_grad():
                assert torch.allclose(sr, method.super_resolve(big)[..., :164, :232], atol=1e-6)
