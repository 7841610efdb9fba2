"""Each method against its reference code: the points where benchsr once differed (issue 13),
pinned by value."""
import copy
import math

import pytest
import torch
import torch.nn.functional as F

from benchsr import registry
from benchsr.contracts import RunContext, TrainBatch
from benchsr.nn.losses import lsgan, vanilla
from benchsr.methods.pseudosr import bicubic_down
from benchsr.methods.srcyclegan.losses import identity_up, ssim_loss
from benchsr.evaluation.metrics import _gaussian_1d

from conftest import smoke_config


def _method(name, preset="default", extra=(), total_steps=8):
    cfg = smoke_config(name, preset, extra=extra)
    ctx = RunContext(torch.device("cpu"), scale=4, epochs=2, total_steps=total_steps)
    m = registry.get("methods", name)(cfg, ctx)
    torch.manual_seed(0)
    m.build()
    return m


def _batch(lr_patch, seed=1):
    g = torch.Generator().manual_seed(seed)
    hr = F.interpolate(torch.rand(2, 1, lr_patch, lr_patch, generator=g), scale_factor=4,
                       mode="bilinear").clamp(0, 1)
    return TrainBatch(torch.rand(2, 1, lr_patch, lr_patch, generator=g), hr)


class Recorder(torch.nn.Module):
    """Wraps a net and keeps every input it sees."""

    def __init__(self, net):
        super().__init__()
        self.net, self.seen = net, []

    def forward(self, x):
        self.seen.append(x.detach().clone())
        return self.net(x)


# ---- pseudo-SR ------------------------------------------------------------------------------
def test_pseudosr_d_sr_tells_the_real_path_from_the_pseudo_path():
    m = _method("pseudosr")
    batch = _batch(m.cfg["train"]["lr_patch"])
    before = copy.deepcopy(m.nets)
    m.nets["D_sr"] = Recorder(m.nets["D_sr"])
    torch.manual_seed(5)
    m.train_step(batch, 0)
    torch.manual_seed(5)    # the same noise map z as the step drew
    with torch.no_grad():
        y_down = bicubic_down(batch.hr, 4)
        z = torch.randn(2, 1, y_down.shape[-2] // 4, y_down.shape[-1] // 4)
        real = before["U"](before["G_xy"](batch.lr))                             # U(G_xy(x))
        fake = before["U"](before["G_xy"](before["G_yx"](y_down, z)))            # pseudo path
    seen = m.nets["D_sr"].seen
    assert len(seen) == 3                                       # D: real, fake; then G's term
    assert torch.allclose(seen[0], real, atol=1e-5)
    assert torch.allclose(seen[1], fake, atol=1e-5)
    assert torch.allclose(seen[2], fake, atol=1e-5)             # generator term: pseudo path
    assert not any(s.shape == batch.hr.shape and torch.allclose(s, batch.hr) for s in seen)


def test_pseudosr_follows_the_reference_settings():
    m = _method("pseudosr", total_steps=300_000)
    assert m.warmup_steps == 5000
    assert all(isinstance(c, torch.nn.Conv2d) and c.stride == (1, 1)
               for c in m.nets["D_esrgan"].modules() if isinstance(c, torch.nn.Conv2d))
    assert float(m.nets["G_xy"].sub_mean.bias.abs().max()) == 0.0   # mean shift 0
    sched = {name: s.milestones for name, s in m.schedulers.items()}   # MultiStepLR's Counter
    assert all(sorted(ms.elements()) == [100_000, 180_000, 240_000, 280_000] for ms in sched.values())
    assert [m.schedulers[n].gamma for n in ("G", "D", "U", "D_esrgan")] == [0.5, 0.5, 0.9, 0.9]
    y = torch.rand(1, 1, 16, 16)
    plain = F.interpolate(y, scale_factor=0.25, mode="bicubic", align_corners=False).clamp(0, 1)
    assert torch.equal(bicubic_down(y, 4), plain)


# ---- CinCGAN ---------------------------------------------------------------------------------
def test_cincgan_pretrains_the_sr_net_on_pairs_before_the_cycles():
    m = _method("cincgan", extra=["model.pretrain_fraction=0.5", "model.lr_pretrain=1e-3"],
                total_steps=16)
    assert m.pretrain_steps == 8 and any("EDSR pre-trained 8 steps" in n for n in m.ctx.notes)
    batch = _batch(m.cfg["train"]["lr_patch"])
    sr_before = [p.detach().clone() for p in m.nets["SR"].parameters()]
    g1_before = [p.detach().clone() for p in m.nets["G1"].parameters()]
    logs = [m.train_step(batch, step) for step in range(8)]
    assert all(log["phase"] == 0 and "pretrain_l1" in log for log in logs)
    assert any(not torch.equal(a, b) for a, b in zip(sr_before, m.nets["SR"].parameters()))
    assert all(torch.equal(a, b) for a, b in zip(g1_before, m.nets["G1"].parameters()))
    assert logs[-1]["pretrain_l1"] < logs[0]["pretrain_l1"]
    assert m.train_step(batch, 8)["phase"] == 1                 # then the inner cycle


def test_cincgan_networks_follow_the_references():
    m = _method("cincgan")
    convs = lambda net: [c for c in net.modules() if isinstance(c, torch.nn.Conv2d)]  # noqa: E731
    assert [c.stride[0] for c in convs(m.nets["D2"])] == [2, 2, 2, 1, 1]
    assert any(isinstance(b, torch.nn.BatchNorm2d) for b in m.nets["D1"].modules())
    assert any(isinstance(b, torch.nn.BatchNorm2d) for b in m.nets["G1"].modules())
    assert m.optimizers["D"].param_groups[1]["lr"] == m.cfg["model"]["lr_outer"]   # D2
    assert m.nets["G3"](torch.rand(1, 1, 32, 32)).shape == (1, 1, 8, 8)
    from benchsr.nn.losses import tv_loss
    img = torch.tensor([[[[0.0, 1.0], [0.0, 1.0]]]])
    assert float(tv_loss(img)) == 2.0                            # Junshk: 2 x (0 + 1)


# ---- ESRGAN ----------------------------------------------------------------------------------
def test_esrgan_psnr_phase_is_l1_on_pairs_then_the_gan_from_its_weights():
    m = _method("esrgan", extra=["model.lr_psnr=1e-3"], total_steps=10)
    assert m.psnr_steps == 7
    batch = _batch(m.cfg["train"]["lr_patch"])
    d_before = [p.detach().clone() for p in m.nets["D"].parameters()]
    logs = [m.train_step(batch, step) for step in range(7)]
    assert all(set(log) == {"psnr_l1", "total_g"} for log in logs)
    assert all(torch.equal(a, b) for a, b in zip(d_before, m.nets["D"].parameters()))
    assert logs[-1]["psnr_l1"] < logs[0]["psnr_l1"]
    m.train(False)
    lr = torch.rand(1, 1, 8, 8)
    with torch.no_grad():   # no GAN step yet: the plain generator is what is evaluated
        assert torch.equal(m.super_resolve(lr), m.nets["G"](lr).clamp(0, 1))
    m.train(True)
    assert "gan" in m.train_step(batch, 7) and int(m.g_ema.n_averaged) == 1


def test_esrgan_psnr_preset_and_schedules():
    m = _method("esrgan", "psnr", total_steps=6)
    assert m.psnr_steps == 6
    m = _method("esrgan", total_steps=1_400_000)
    assert m.psnr_steps == 1_000_000
    assert m.gan_milestones == [1_050_000, 1_100_000, 1_200_000, 1_300_000]
    assert m.schedulers["G_psnr"].T_0 == 250_000 and m.schedulers["G_psnr"].eta_min == 1e-7
    assert sorted(m.schedulers["G"].milestones.elements()) == [50_000, 100_000, 200_000, 300_000]


def test_the_supervised_reference_adds_to_bicubic_and_old_runs_read_as_before():
    import torch.nn.functional as F
    from benchsr import config
    ref = _method("esrgan", "psnr", total_steps=6)
    assert ref.cfg["model"]["residual"] == "bicubic" and ref.cfg["model"]["lr_psnr"] == 1e-3
    g, lr = ref.nets["G"], torch.rand(1, 1, 8, 8)
    with torch.no_grad():
        up = F.interpolate(lr, scale_factor=ref.ctx.scale, mode="bicubic", align_corners=False)
        assert torch.allclose(g(lr), g.net(lr) + up)
    assert "perceptual" not in ref.ctx.recipe_changes   # no GAN phase: no perceptual term to lose
    plain = _method("esrgan", total_steps=6)          # ESRGAN itself keeps BasicSR's RRDBNet
    assert plain.cfg["model"]["residual"] == "none" and not hasattr(plain.nets["G"], "net")
    # a config saved before the key existed reads with the value those runs used, so old and
    # new runs of one recipe stay one leaderboard row; other methods get no esrgan key
    old = {"method": "esrgan", "model": {"lr": 1e-4}}
    assert config.upgrade(old)["model"]["residual"] == "none"
    assert "residual" not in config.upgrade({"method": "srcyclegan", "model": {}})["model"]


# ---- SR-CycleGAN -----------------------------------------------------------------------------
def test_zero_padded_ssim_matches_a_hand_computed_value():
    # one pixel, window 11, zero padding: only the centre weight w0 of the window sees it
    p, q, c1, c2 = 0.8, 0.3, 0.01 ** 2, 0.03 ** 2
    w0 = float(_gaussian_1d(11, 1.5, "cpu", torch.float64)[5]) ** 2   # the 2D window's centre
    mu_p, mu_q = w0 * p, w0 * q
    var_p, var_q, cov = w0 * p * p - mu_p ** 2, w0 * q * q - mu_q ** 2, w0 * p * q - mu_p * mu_q
    hand = ((2 * mu_p * mu_q + c1) * (2 * cov + c2)) / ((mu_p ** 2 + mu_q ** 2 + c1) * (var_p + var_q + c2))
    a, b = torch.full((1, 1, 1, 1), p, dtype=torch.float64), torch.full((1, 1, 1, 1), q, dtype=torch.float64)
    assert math.isclose(1 - float(ssim_loss(a, b, 1.0, padding="zero")), hand, rel_tol=1e-6)


def test_vanilla_gan_loss_and_the_presets_that_use_it():
    assert math.isclose(float(vanilla(torch.zeros(3), True)), math.log(2), rel_tol=1e-6)
    assert float(vanilla(torch.full((3,), 20.0), True)) < 1e-6
    assert math.isclose(float(vanilla(torch.full((3,), 2.0), False)), math.log1p(math.exp(2)),
                        rel_tol=1e-6)
    assert _method("srcyclegan").adv is vanilla                 # paper eq. 2
    official = _method("srcyclegan", "official")
    assert official.adv is lsgan                                # the authors' code
    m = official.cfg["model"]
    assert (m["ssim_padding"], m["input_range"], m["identity_up"], m["quasi_pair_every"],
            m["quasi_pair_noise_p"]) == ("zero", "unit", "nearest", 1, 0.1)   # 4x: COVID pipeline


def test_identity_upsampling_modes():
    x = torch.tensor([[[[0.0, 1.0]]]])
    assert identity_up(x, 2, "nearest")[0, 0, 0].tolist() == [0.0, 0.0, 1.0, 1.0]
    assert identity_up(x, 2, "bilinear_ac")[0, 0, 0].tolist() == pytest.approx([0, 1 / 3, 2 / 3, 1])


@pytest.mark.parametrize("profile", ["smoke", "quick", "standard", "paper"])
def test_every_schedule_follows_the_runs_length(profile):
    """No schedule point past the run's end, and at most one in its first tenth (an absolute
    step count, like CinCGAN's 40k-step halving at a 450-step profile, fails this)."""
    from benchsr import api, config, registry
    for name, entry in sorted(registry.discover("methods").items()):
        if entry.broken or entry.cls.data == "none":
            continue
        cfg = config.resolve(entry.cls, "default", registry.get("datasets", "lung-ct"), profile, [])
        small = [f"model.{k}={v}" for k, v in (config.resolve(
            entry.cls, "default", registry.get("datasets", "lung-ct"), "smoke", [])["model"]).items()
            if isinstance(v, int) and not isinstance(v, bool) and ("feat" in k or "blocks" in k
                                                                    or k in ("ndf", "nf", "ngf"))]
        through = "axial" not in entry.cls.planes      # built on its own track
        method = api.create_method(name, scale=2 if through else 4, profile=profile,
                                   overrides=tuple(small) + (("data.plane=through",) if through else ()))
        total = int(cfg["train"]["epochs"]) * int(cfg["train"]["steps_per_epoch"])
        assert method.ctx.total_steps == total
        points = [p for pts in method.schedule_points().values() for p in pts]
        assert points, f"{name} declares no schedule points"
        assert all(0 <= p <= total for p in points), (name, profile, method.schedule_points())
        early = [p for p in points if 0 < p < total / 10]
        assert len(early) <= 1, (name, profile, method.schedule_points())
