"""Opt-in fast paths run through the real runner and keep results sane; speed is measured in
benchmarks/bench.py, not here."""
import pandas as pd
import pytest
import torch

from benchsr import registry
from benchsr.contracts import BenchError, RunContext
from benchsr.fastpaths import apply
from benchsr.runner import Runner

from conftest import smoke_config

FAST = ["precision=bf16", "runtime.channels_last=true", "runtime.optimizer=fused"]


@pytest.mark.parametrize("method", ["srcyclegan", "esrgan"])
def test_bf16_channels_last_fused_run_completes(method, tmp_path, lung_smoke):
    fast = Runner(lung_smoke, tmp_path / "fast").run(registry.get("methods", method),
                                                    smoke_config(method, extra=FAST))
    plain = Runner(lung_smoke, tmp_path / "plain").run(registry.get("methods", method),
                                                      smoke_config(method))
    assert fast.status == plain.status == "complete", fast.reason
    a, b = (pd.read_csv(r.run_dir / "metrics.csv") for r in (plain, fast))
    assert b["psnr"].notna().all() and (b["psnr"] - a["psnr"]).abs().max() < 3   # same ballpark


def test_apply_switches_optimizer_and_layout():
    cls = registry.get("methods", "srcyclegan")
    m = cls(smoke_config("srcyclegan"), RunContext(device=torch.device("cpu")))
    m.build()
    apply(m, {"channels_last": True, "optimizer": "fused"}, m.ctx)
    assert all(g["fused"] for opt in m.optimizers.values() for g in opt.param_groups)
    conv = next(mod for mod in m.nets["G1"].modules() if isinstance(mod, torch.nn.Conv2d) and mod.in_channels > 1)
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    with pytest.raises(BenchError, match="runtime.optimizer 'turbo'"):
        apply(m, {"optimizer": "turbo"}, m.ctx)
