"""Start from given weights, hand weights out: init.from (benchsr exports and checkpoints,
BasicSR .pth, safetensors) and `benchsr export-weights`, round trip bit-identical."""
import json

import pandas as pd
import pytest
import torch
import yaml
from typer.testing import CliRunner

from benchsr import registry
from benchsr.cli.main import app
from benchsr.contracts import BenchError
from benchsr.run.runner import Runner

from conftest import _main, smoke_config


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
    # zero epochs still leave a checkpoint: the given weights can be exported again
    res = CliRunner().invoke(app, ["export-weights", str(again.run_dir), str(tmp_path / "x.safetensors")])
    assert res.exit_code == 0, res.output


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
    with pytest.raises(BenchError, match="shape mismatch.*the file fits model.ngf=32"):
        init_from(method, {"from": str(tmp_path / "big.pth"), "key": "", "network": "", "strict": True})
    assert "entry 'params_ema'" in init_from(method, {"from": str(tmp_path / "net_g.pth"), "key": "",
                                                       "network": "", "strict": True})
    with pytest.raises(BenchError, match="no entry 'nope'"):
        init_from(method, {"from": str(tmp_path / "net_g.pth"), "key": "nope", "network": "",
                           "strict": True})


def test_non_strict_init_loads_what_matches_counts_it_and_refuses_to_load_nothing(tmp_path):
    from benchsr.api import create_method
    from benchsr.nn.weights import init_from
    donor = create_method("srcyclegan", profile="smoke", overrides=("seed=5",))
    state = {k: v + 1 for k, v in donor.nets["G1"].state_dict().items()}
    first = next(iter(state))
    state[first] = torch.zeros(3, 3)                                  # wrong shape: skipped
    state["extra.weight"] = torch.zeros(1)                            # not in G1: ignored
    torch.save(state, tmp_path / "partial.pth")
    method = create_method("srcyclegan", profile="smoke")
    before = {k: v.clone() for k, v in method.nets["G1"].state_dict().items()}
    spec = {"from": str(tmp_path / "partial.pth"), "key": "", "network": "", "strict": False}
    note = init_from(method, spec)
    n = len(before)
    assert f"G1 {n - 1} of {n} tensors" in note and f"G1.{first} (shape)" in note
    now = method.nets["G1"].state_dict()
    assert torch.equal(now[first], before[first])                     # the skipped one kept
    assert all(torch.equal(now[k], state[k]) for k in now if k != first)
    torch.save({f"renamed.{k}": v for k, v in donor.nets["G1"].state_dict().items()},
               tmp_path / "renamed.pth")
    with pytest.raises(BenchError, match="no tensor of it fits"):   # used to 'initialise' silently
        init_from(method, {**spec, "from": str(tmp_path / "renamed.pth")})


def test_a_bad_init_file_is_one_line_before_any_folder_and_its_content_is_part_of_the_config(
        tmp_path, lung_smoke, capsys, monkeypatch):
    from benchsr.api import create_method
    torch.save(create_method("srcyclegan", profile="quick").nets["G1"].state_dict(), tmp_path / "big.pth")
    code, out, err = _main(["run", "--methods", "srcyclegan", "--profile", "smoke", "--out",
                            tmp_path / "out", "--set", f"init.from={tmp_path / 'big.pth'}"],
                           capsys, monkeypatch)
    assert code == 2 and "does not fit" in err and "model.ngf=32" in err, (out, err)
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out" / "runs").exists()                  # nothing written
    weights = tmp_path / "w.pth"
    shas = []
    for seed in (1, 2):                 # one path, two contents: two configs, never two seeds
        torch.manual_seed(seed)
        torch.save(create_method("srcyclegan", profile="smoke").nets["G1"].state_dict(), weights)
        out = _run(lung_smoke, tmp_path / "runs", "srcyclegan", [f"init.from={weights}", "train.epochs=0"])
        assert out.status == "complete", out.reason
        shas.append(yaml.safe_load((out.run_dir / "config.yaml").read_text())["init"]["sha256"])
    assert len(set(shas)) == 2 and all(len(s) == 64 for s in shas)


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
