"""The methods' lr schedules are torch's schedulers (torch.optim.lr_scheduler), stepped once per
training step. Pinned here: the lr each optimiser has before every step of a run equals the
references' closed forms (what benchsr computed by hand before, and what its published runs
used), and a resume from a checkpoint continues the sequence."""
import math
import warnings

import pytest
import torch

from benchsr import registry
from benchsr.contracts import RunContext
from benchsr.nn import milestones

from conftest import smoke_config


def _method(name, total_steps, extra=()):
    cfg = smoke_config(name, extra=extra)
    m = registry.get("methods", name)(cfg, RunContext(torch.device("cpu"), scale=4, epochs=1,
                                                      total_steps=total_steps))
    torch.manual_seed(0)
    m.build()
    return m


def _lrs(m, total, names, start=0):
    """{name: [lr before step t]} over the run, stepping only the schedulers (no training)."""
    seen = {n: [] for n in names}
    with warnings.catch_warnings():   # "scheduler stepped before optimizer": no training here
        warnings.simplefilter("ignore")
        for t in range(start, total):
            for n in names:
                seen[n].append(m.optimizers[n].param_groups[0]["lr"])
            m._step_schedulers(t)
    return seen


def test_esrgan_cosine_restarts_then_multistep():
    total = 700
    m = _method("esrgan", total)
    mc = m.cfg["model"]
    psnr, period = m.psnr_steps, -(-m.psnr_steps // int(mc["psnr_periods"]))
    base, eta = mc["lr_psnr"], mc["psnr_eta_min"]
    seen = _lrs(m, total, ("G_psnr", "G", "D"))
    for t in range(psnr):
        want = eta + (base - eta) * 0.5 * (1 + math.cos(math.pi * (t % period) / period))
        assert seen["G_psnr"][t] == pytest.approx(want, rel=1e-12, abs=0), t
    gan = milestones(mc["gan_milestones"], total - psnr)
    for t in range(psnr, total):
        want = mc["lr"] * mc["gan_gamma"] ** sum(t - psnr >= s for s in gan)
        assert seen["G"][t] == seen["D"][t] == pytest.approx(want, rel=1e-12), t
    assert seen["G"][psnr - 1] == mc["lr"]              # no GAN decay during the PSNR phase


def test_cincgan_halves_every_tenth_of_the_cycle_steps_for_each_group():
    total = 400
    m = _method("cincgan", total)
    pre, every = m.pretrain_steps, m.halve_every
    bases = [g["lr"] for g in m.optimizers["G"].param_groups]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for t in range(total):
            factor = 0.5 ** ((t - pre) // every) if t >= pre else 1.0
            got = [g["lr"] for g in m.optimizers["G"].param_groups]
            assert got == pytest.approx([b * factor for b in bases], rel=1e-12), t
            m._step_schedulers(t)


def test_pseudosr_multistep_and_d_esrgan_counting_from_the_warm_up():
    total = 3000
    m = _method("pseudosr", total)
    mc, warm = m.cfg["model"], m.warmup_steps
    steps = milestones(mc["lr_milestones"], total)
    seen = _lrs(m, total, ("G", "U", "D_esrgan"))
    for t in range(total):
        passed = lambda at: sum(at >= s for s in steps)           # noqa: E731
        assert seen["G"][t] == pytest.approx(mc["lr"] * mc["lr_gamma_cycle"] ** passed(t), rel=1e-12)
        assert seen["U"][t] == pytest.approx(mc["lr"] * mc["lr_gamma_sr"] ** passed(t), rel=1e-12)
        want = mc["lr"] * mc["lr_gamma_sr"] ** passed(max(0, t - warm))
        assert seen["D_esrgan"][t] == pytest.approx(want, rel=1e-12), t


def test_a_resumed_schedule_continues_where_it_stopped():
    total = 700
    whole = _lrs(_method("esrgan", total), total, ("G_psnr", "G"))
    first = _method("esrgan", total)
    _lrs(first, 300, ("G_psnr",))                             # 300 steps, then a checkpoint
    again = _method("esrgan", total)
    again.load_state_dict(first.state_dict())
    rest = _lrs(again, total, ("G_psnr", "G"), start=300)
    assert rest["G_psnr"] == whole["G_psnr"][300:] and rest["G"] == whole["G"][300:]
