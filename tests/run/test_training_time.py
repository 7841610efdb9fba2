"""Training time is training: the learning curve's validation points were timed into s / epoch
and samples / s (3x on the through-plane track at quick), making a method that validates look
slower to train than one that does not."""
import json
import time

from benchsr import registry
from benchsr.report.tables import cost_table
from benchsr.run import runner as runner_module
from benchsr.run.runner import Runner

from conftest import smoke_config

PAUSE = 1.5     # seconds each validation point takes here


def test_validation_points_are_timed_apart_from_training(tmp_path, lung_smoke, monkeypatch):
    def slow_validator(method, data, cfg, device):
        def validate(step):
            time.sleep(PAUSE)
            return [{"step": step, "metric": "psnr", "value": 20.0 + step, "images": 1}]
        return validate
    monkeypatch.setattr(runner_module, "validator", slow_validator)
    cfg = smoke_config("srcyclegan", extra=["eval.every=1"])        # 2 points per epoch
    run = Runner(lung_smoke, tmp_path).run(registry.get("methods", "srcyclegan"), cfg)
    assert run.status == "complete", run.reason
    cost = json.loads((run.run_dir / "cost.json").read_text())
    assert cost["validation_s_per_epoch"] >= 2 * PAUSE
    assert 0 < cost["s_per_epoch"] < 2 * PAUSE and cost["epoch_excludes_validation"] is True
    assert cost["samples_per_s"] == cost["batch_size"] * cost["steps_per_epoch"] / cost["s_per_epoch"]


def test_runs_timed_the_old_way_say_so_in_the_cost_table(tmp_path):
    recs = []
    for name, key, curve in (("old", False, True), ("new", True, True), ("no-curve", False, False)):
        folder = tmp_path / name
        folder.mkdir()
        if curve:
            (folder / "curve.csv").write_text("step,metric,value,images\n1,psnr,20,4\n")
        cost = {"s_per_epoch": 12.5, "samples_per_s": 24.0, "params_total": 1, "params": {}}
        if key:
            cost["epoch_excludes_validation"] = True
        recs.append({"dir": folder, "cost": cost,
                     "manifest": {"label": name, "profile": "quick", "precision": "fp32"}})
    cells = cost_table(recs).cells.set_index("Method")
    assert cells.loc["old", "s / epoch"] == "12.5 (incl. validation)"
    assert cells.loc["old", "samples / s"] == "24.0 (incl. validation)"
    assert cells.loc["new", "s / epoch"] == "12.5" and cells.loc["no-curve", "s / epoch"] == "12.5"
