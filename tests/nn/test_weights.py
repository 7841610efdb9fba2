"""Start from given weights, hand weights out: init.from (benchsr exports and checkpoints,
BasicSR .pth, safetensors) and `benchsr export-weights`, round trip bit-identical."""
import json

import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from benchsr import registry
from benchsr.cli.main import app
from benchsr.contracts import BenchError
from benchsr.run.runner import Runner

from conftest import smoke_config


def _run(data, out, name, extra=()):
    return Runner(data, out).run(registry.get("methods", name), smoke_config(name, extra=extra))


@pytest.mark.parametrize("name", ["srcyclegan", "cincgan", "esrgan"])
def test_export_then_init_gives_bit_identical_sr(name, tmp_path, lung_smoke):
    first = _run(lung_smoke, tmp_path / "a", name)
    assert first.status == "complete", first.reason
    weights = tmp_path / "w.safetensors"
    res = CliRunner().invoke(app, ["export-weights", str(first.run_dir), str(weights)])
    assert res.exit_code == 0, res.output
    again = _run(lung_smoke, tmp_path / "b", name, [f"init.from={weights}", "train.epochs=0"])
    assert again.status == "complete", again.reason
    a, b = (pd.read_csv(r.run_dir / "metrics.csv") for r in (first, again))
    assert a["psnr"].tolist() == b["psnr"].tolist() and a["ssim"].tolist() == b["ssim"].tolist()
    notes = json.loads((again.run_dir / "manifest.json").read_text())["notes"]
    assert any(n.startswith("initialised from") for n in notes)


def test_basicsr_pth_and_checkpoint_and_mismatches(tmp_path, lung_smoke, trained):
    from benchsr.api import create_method
    from benchsr.nn.weights import init_from
    donor = create_method("srcyclegan", profile="smoke")
    torch.save({"params": donor.nets["G1"].state_dict(), "params_ema": donor.nets["G1"].state_dict()},
               tmp_path / "net_g.pth")
    method = create_method("srcyclegan", profile="smoke")
    note = init_from(method, {"from": str(tmp_path / "net_g.pth"), "key": "params_ema",
                              "network": "", "strict": True})
    assert "G1" in note
    assert all(torch.equal(a, b) for a, b in zip(method.nets["G1"].state_dict().values(),
                                                 donor.nets["G1"].state_dict().values()))
    ckpt = trained["srcyclegan"] / "checkpoints" / "last.pt"
    assert "G2" in init_from(method, {"from": str(ckpt), "key": "", "network": "", "strict": True})
    big = create_method("srcyclegan", profile="quick")           # other widths: shapes differ
    torch.save(big.nets["G1"].state_dict(), tmp_path / "big.pth")
    with pytest.raises(BenchError, match="shape mismatch"):
        init_from(method, {"from": str(tmp_path / "big.pth"), "key": "", "network": "", "strict": True})
    with pytest.raises(BenchError, match="no entry 'nope'"):
        init_from(method, {"from": str(tmp_path / "net_g.pth"), "key": "nope", "network": "",
                           "strict": True})


def test_run_log_tensorboard_and_losses_before_the_epoch_ends(tmp_path, lung_smoke):
    out = _run(lung_smoke, tmp_path, "srcyclegan",
               ["log.tensorboard=true", "log.every_steps=1", "train.steps_per_epoch=3"])
    assert out.status == "complete", out.reason
    log = (out.run_dir / "run.log").read_text()
    assert "epoch 0:" in log and "evaluated psnr" in log and "complete" in log
    assert list((out.run_dir / "tensorboard").glob("events.out.tfevents.*"))
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = EventAccumulator(str(out.run_dir / "tensorboard"))
    events.Reload()
    assert "loss/total_g" in events.Tags()["scalars"] and events.Tags()["images"]
    assert len(events.Scalars("loss/total_g")) == 6              # every step of 2 epochs
