"""Opt-in fast paths run through the real runner and keep results sane; speed is measured in
benchmarks/bench.py, not here."""
import json

import pandas as pd
import pytest
import torch

from benchsr import registry
from benchsr.contracts import BenchError, RunContext
from benchsr.run.fastpaths import apply
from benchsr.run.runner import Runner

from conftest import _main, smoke_config



@pytest.mark.slow
@pytest.mark.parametrize("method", ["srcyclegan", "esrgan"])
def test_bf16_channels_last_fused_run_completes(method, tmp_path, lung_smoke, capsys, monkeypatch):
    # the command docs/speed.md shows, at smoke size
    code, _, err = _main(["run", "--methods", method, "--precision", "bf16",
                          "--set", "runtime.channels_last=true", "--set", "runtime.optimizer=fused",
                          "--profile", "smoke", "--out", tmp_path / "fast"], capsys, monkeypatch)
    assert code == 0, err
    fast = next((tmp_path / "fast" / "runs" / "lung-ct").glob("*/*/manifest.json")).parent
    assert json.loads((fast / "manifest.json").read_text())["fast_path"]["applied"] == {
        "channels_last": True, "optimizer": "fused", "compile": False}
    plain = Runner(lung_smoke, tmp_path / "plain").run(registry.get("methods", method),
                                                      smoke_config(method))
    assert plain.status == "complete", plain.reason
    a, b = (pd.read_csv(d / "metrics.csv") for d in (plain.run_dir, fast))
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


def test_precision_auto_picks_native_bf16_and_says_why(tmp_path, lung_smoke, monkeypatch):
    import json

    import yaml

    from benchsr.runtime import devices
    cpu = torch.device("cpu")
    monkeypatch.setattr(devices, "cpu_flags", lambda: {"avx512f"})
    assert devices.resolve_precision("auto", cpu)[0] == "fp32"
    monkeypatch.setattr(devices, "cpu_flags", lambda: {"avx512f", "avx512_bf16"})
    assert devices.resolve_precision("auto", cpu) == ("bf16", "auto: CPU with avx512_bf16")
    assert devices.resolve_precision("fp32", cpu) == ("fp32", "asked")
    out = Runner(lung_smoke, tmp_path).run(registry.get("methods", "nearest"),
                                           smoke_config("nearest", extra=["precision=auto"]))
    manifest = json.loads((out.run_dir / "manifest.json").read_text())
    assert manifest["precision"] == "bf16" and "avx512_bf16" in manifest["precision_reason"]
    assert yaml.safe_load((out.run_dir / "config.yaml").read_text())["precision"] == "auto"


def test_fast_auto_adds_the_measured_choice_keeps_explicit_keys_and_is_recorded(monkeypatch, tmp_path, lung_smoke):
    from benchsr.run import fastpaths
    monkeypatch.setitem(fastpaths.MEASURED, "cpu", ({"channels_last": True}, "measured: NHWC won"))
    cpu = torch.device("cpu")
    runtime = {"fast": "auto", "channels_last": False, "optimizer": "foreach", "compile": False}
    chosen, why = fastpaths.resolve(runtime, cpu)
    assert chosen["channels_last"] is True and chosen["optimizer"] == "foreach"
    assert why == "runtime.fast auto: measured: NHWC won"
    off, why = fastpaths.resolve({**runtime, "fast": "off"}, cpu)
    assert off["channels_last"] is False and "as given" in why
    out = Runner(lung_smoke, tmp_path).run(registry.get("methods", "bicubic"), smoke_config("bicubic"))
    manifest = pd.read_json(out.run_dir / "manifest.json", typ="series")
    assert manifest["fast_path"]["applied"]["channels_last"] is True
    assert "NHWC won" in manifest["fast_path"]["why"]
    with pytest.raises(BenchError, match="runtime.fast 'fast'"):
        fastpaths.check({"fast": "fast"})


def test_configs_saved_before_new_keys_read_as_what_those_runs_did():
    from benchsr import config
    from benchsr.run import fastpaths
    cls, ds = registry.get("methods", "srcyclegan"), registry.get("datasets", "lung-ct")
    new = config.resolve(cls, "default", ds, "quick", [])
    old = {**new, "eval": {k: v for k, v in new["eval"].items() if k not in ("tile_batch", "blend")},
           "runtime": {k: v for k, v in new["runtime"].items() if k != "fast"}}
    assert config.upgrade(old) == new
    # old runs did what `auto` does on the CPU only while auto adds nothing there
    assert config.UPGRADES["runtime.fast"] == "auto" and fastpaths.MEASURED["cpu"][0] == {}
