"""The baseline GAN plugins (CinCGAN, pseudo-SR, ESRGAN): checkpoints, shapes, and training that
moves the generator and lowers its loss on fixed data."""
import pytest
import torch

from benchsr.nn import blocks, losses
from benchsr import config, registry
from benchsr.contracts import RunContext, TrainBatch
from benchsr.nn.losses import relativistic_d, relativistic_g
from benchsr.methods.pseudosr import _dihedral
from benchsr.methods.pseudosr.networks import build_networks

from conftest import smoke_config

GAN_METHODS = ("cincgan", "esrgan", "pseudosr")
GENERATOR = {"cincgan": "SR", "esrgan": "G", "pseudosr": "U"}
# the generator's content terms: the adversarial ones rise by design as the discriminator learns
CONTENT = {"cincgan": ("cycle_inner", "idt_inner", "cycle_outer", "idt_outer"),
           "esrgan": ("l1",), "pseudosr": ("cycle", "identity", "u_l1")}


def n_params(m):
    return sum(p.numel() for p in m.parameters())


def test_pseudosr_parameter_checkpoint_at_3_channels_x4():
    lung = registry.get("datasets", "lung-ct")
    cfg = config.resolve(registry.get("methods", "pseudosr"), "rgb", lung, "paper", [])
    nets = build_networks(cfg["model"], cfg["model"]["channels"], 4)
    counts = {k: n_params(v) for k, v in nets.items()}
    assert counts["G_xy"] == 3_946_915
    assert counts["G_yx"] == 1_291_379
    assert counts["U"] == 16_697_987
    assert [counts[d] for d in ("D_x", "D_y", "D_sr", "D_esrgan")] == [2_764_737] * 4
    assert sum(counts.values()) == 32_995_229


def test_rrdbnet_is_basicsr_at_x4_and_grows_a_stage_at_x8():
    assert n_params(blocks.rrdbnet(3, 4)) == 16_697_987          # ESRGAN's generator
    x = torch.rand(1, 1, 6, 6)
    for k in (2, 4, 8, 16):
        assert blocks.rrdbnet(1, k, 8, 1, 4)(x).shape == (1, 1, 6 * k, 6 * k)


def test_mean_shift_layers_are_frozen_and_exact():
    net = blocks.Normalised(torch.nn.Identity(), 1, 0.5)
    x = torch.rand(2, 1, 4, 4)
    assert torch.allclose(net(x), x)
    assert not any(p.requires_grad for p in net.parameters())


def test_dihedral_transforms_invert():
    x = torch.arange(12.).view(1, 1, 3, 4)
    outs = {tuple(_dihedral(x[..., :3, :3], i).flatten().tolist()) for i in range(8)}
    assert len(outs) == 8                                        # eight distinct transforms
    for i in range(8):
        assert torch.equal(_dihedral(_dihedral(x, i), i, inverse=True), x)


def test_relativistic_losses_prefer_the_right_side():
    real, fake = torch.full((4, 1), 3.0), torch.full((4, 1), -3.0)
    assert relativistic_d(real, fake) < relativistic_d(fake, real)   # D separates: low loss
    assert relativistic_g(real, fake) > relativistic_g(fake, real)   # G fooled nobody: high


def _method(name, extra=()):
    cfg = smoke_config(name, extra=extra)
    m = registry.get("methods", name)(cfg, RunContext(torch.device("cpu"), scale=4, epochs=2,
                                                                   total_steps=4))
    torch.manual_seed(0)
    m.build()
    return m


def _fixed_batch(lr_patch):
    g = torch.Generator().manual_seed(1)
    lr = torch.rand(2, 1, lr_patch, lr_patch, generator=g)
    hr = torch.nn.functional.interpolate(torch.rand(2, 1, lr_patch, lr_patch, generator=g),
                                         scale_factor=4, mode="bilinear")
    return TrainBatch(lr, hr.clamp(0, 1))


@pytest.mark.parametrize("name", GAN_METHODS)
def test_training_moves_the_generator_and_lowers_its_loss(name):
    # 1e-3: large enough that a dozen steps on one fixed batch show the trend
    # (the supervised pre-training phases have tests of their own)
    lr_key = {"cincgan": ["model.lr_inner=1e-3", "model.lr_outer=1e-3", "model.inner_fraction=0",
                          "model.pretrain_fraction=0"],
              "esrgan": ["model.lr=1e-3", "model.psnr_fraction=0"],
              "pseudosr": ["model.lr=1e-3", "model.u_warmup_fraction=0"]}[name]
    m = _method(name, lr_key)
    batch = _fixed_batch(m.cfg["train"]["lr_patch"])
    gen = m.nets[GENERATOR[name]]
    before = [p.detach().clone() for p in gen.parameters()]
    logs = [m.train_step(batch, step) for step in range(10)]
    losses = [sum(log[k] for k in CONTENT[name]) for log in logs]
    assert any(not torch.equal(a, b) for a, b in zip(before, gen.parameters()))
    assert "gan" in logs[-1] or "gan_outer" in logs[-1] or "u_gan" in logs[-1]   # GAN was on
    assert all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-3:]) / 3 < losses[0], losses


def test_pseudosr_rgb_takes_grey_slices():
    cfg = smoke_config("pseudosr", "rgb")
    m = registry.get("methods", "pseudosr")(cfg, RunContext(torch.device("cpu"), scale=4))
    m.build()
    assert m.nets["U"].conv_first.in_channels == 3
    assert m.super_resolve(torch.rand(1, 1, 8, 8)).shape == (1, 1, 32, 32)


def test_esrgan_paired_option_and_discriminator_sizes():
    m = _method("esrgan", ["model.training=paired", "model.psnr_fraction=0"])
    assert m.d_size == 128                                          # 32 x 4 = the recipe's patch
    out = m.train_step(_fixed_batch(32), 0)
    assert {"l1", "gan", "d"} <= out.keys()
    m = _method("esrgan", ["train.lr_patch=48"])                     # 192: the paper's COVID patch
    assert m.d_size == 128 and any("random 128px crops" in n for n in m.ctx.notes)
    real, fake = m._for_d(torch.rand(2, 1, 192, 192), torch.rand(2, 1, 192, 192))
    assert real.shape[-1] == fake.shape[-1] == 128


def test_vgg_perceptual_loads_from_the_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    assert losses.VGGPerceptual.load("cpu")[0] is None                 # absent: off, with reason
    path = losses.vgg19_weights_path()
    path.parent.mkdir(parents=True)
    torch.manual_seed(0)
    feats = losses.vgg19_features()
    torch.save({f"features.{k}": v for k, v in feats.state_dict().items()}, path)
    loss, reason = losses.VGGPerceptual.load("cpu")
    assert reason == "" and loss is not None
    a = torch.rand(1, 1, 32, 32)
    assert float(loss(a, a)) == 0.0 and float(loss(a, 1 - a)) > 0
    m = _method("esrgan", ["model.psnr_fraction=0"])
    assert m.perceptual is not None and not any("perceptual" in n for n in m.ctx.notes)
    assert "percep" in m.train_step(_fixed_batch(32), 0)


def test_cincgan_real_parameter_count_is_the_documented_one():
    lung = registry.get("datasets", "lung-ct")
    cfg = config.resolve(registry.get("methods", "cincgan"), "default", lung, "paper", [])
    m = registry.get("methods", "cincgan")(cfg, RunContext(torch.device("cpu"), scale=4))
    m.build()
    counts = {k: n_params(v) for k, v in m.nets.items()}
    assert counts == {"G1": 598_721, "G2": 598_721, "D1": 2_763_585, "SR": 1_515_265,
                      "G3": 656_065, "D2": 2_763_585}                 # README's numbers
    assert sum(counts.values()) == 8_895_942 != 27_030_790            # not the paper's
