"""What a table says is what happened: no merged rows, real pairs, guarded outputs, typed config
and honest statistics. Each test failed before the fix it pins."""
import dataclasses
import json
import math
import sys

import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

from benchsr import cli
from benchsr.report import figures, rows, tables
from benchsr.evaluation import metrics
from benchsr import registry
from benchsr.cli.main import app
from benchsr.contracts import BenchError, Method, RunContext
from benchsr.run.runner import Runner
from benchsr.data.volumes import degrade_batch

from conftest import smoke_config


def _run(data, out, extra=()):
    return Runner(data, out).run(registry.get("methods", "bicubic"), smoke_config("bicubic", extra=extra))


# ---- 1. rows are never merged silently --------------------------------------------------------
def test_seeds_pool_into_one_row_and_other_settings_make_their_own(tmp_path, lung_smoke):
    for extra in (["seed=0"], ["seed=1"], ["eval.border_crop=0"], ["seed=0"]):
        assert _run(lung_smoke, tmp_path, extra=extra).status == "complete"
    found = rows.load_runs([tmp_path])
    labels = sorted(r["manifest"]["label"] for r in found)
    assert labels == ["bicubic [eval.border_crop=0]", "bicubic [eval.border_crop=null]"]
    group = tables.groups(found)[0]
    q = group.quality.cells.set_index("Method")
    # an untrained row's repeated seeds are not replication: it says "no training", and n
    # counts distinct images (the two seeds' runs score the same ones)
    assert q.loc["bicubic [eval.border_crop=null]", "Seeds"] == "no training"
    assert q.loc["bicubic [eval.border_crop=0]", "Seeds"] == "no training"
    assert q.loc["bicubic [eval.border_crop=null]", "n"] == q.loc["bicubic [eval.border_crop=0]", "n"]
    row = next(r for r in found if r["manifest"]["label"] == "bicubic [eval.border_crop=null]")
    assert len(row["seed_runs"]) == 2
    prov = group.provenance.cells
    assert len(prov) == 4                                   # every run folder is listed
    assert prov["Status"].str.startswith("superseded by").sum() == 1


# ---- 2. paired means paired ----------------------------------------------------------------------
class PairedProbe(Method):
    name, data, scales = "paired-probe", "paired", (4,)
    seen: list = []

    def build(self):
        self.nets = {"net": torch.nn.Conv2d(1, 1, 1)}
        self.optimizers = {"o": torch.optim.SGD(self.nets["net"].parameters(), lr=0.0)}

    def train_step(self, batch, step):
        PairedProbe.seen.append(batch)
        loss = torch.nn.functional.l1_loss(self.super_resolve(batch.lr), batch.hr)
        self.ctx.optimize(loss + 0 * self.nets["net"].weight.sum(), self.optimizers["o"], step)
        return {"total_g": float(loss)}

    def super_resolve(self, lr):
        return torch.nn.functional.interpolate(lr, scale_factor=4, mode="nearest")


def test_paired_methods_get_real_pairs_made_by_the_dataset_degradation(tmp_path, lung_smoke):
    PairedProbe.seen.clear()
    cfg = smoke_config("bicubic")
    assert Runner(lung_smoke, tmp_path).run(PairedProbe, cfg).status == "complete"
    batch = PairedProbe.seen[0]
    assert batch.paired
    want = degrade_batch(batch.hr.numpy(), 4, lung_smoke.protocol["degradation"])
    assert np.array_equal(batch.lr.numpy(), want)


def test_a_dataset_without_a_degradation_refuses_paired_methods(tmp_path, lung_smoke):
    data = dataclasses.replace(lung_smoke, protocol={k: v for k, v in lung_smoke.protocol.items()
                                                     if k != "degradation"})
    with pytest.raises(BenchError, match="trains on pairs"):
        Runner(data, tmp_path).run(PairedProbe, smoke_config("bicubic"))
    assert not list(tmp_path.glob("**/manifest.json"))      # nothing half-written


def test_the_grid_bicubic_panel_is_the_bicubic_method(lung_smoke):
    img = lung_smoke.eval_images[0]
    bic = registry.get("methods", "bicubic")(smoke_config("bicubic"),
                                              RunContext(torch.device("cpu"), scale=4))
    with torch.no_grad():
        ours = bic.super_resolve(torch.from_numpy(img.lr)[None, None])[0, 0].numpy()
    assert np.array_equal(figures.bicubic_reference(img.lr, 4), ours)


# ---- 3. bad output fails, or is clamped with a note ---------------------------------------------
def _bad_output(kind):
    class Bad(Method):
        name, data, scales = f"bad-{kind}", "none", (4,)

        def super_resolve(self, lr):
            sr = torch.nn.functional.interpolate(lr, scale_factor=4)
            if kind == "nan":
                return sr * float("nan")
            if kind == "shape":
                return sr[..., :-1]
            if kind == "flat":
                return torch.full_like(sr, 0.5)
            if kind == "inverted":                              # the collapse seen in ESRGAN
                return 1 - sr
            return sr * 3 - 1                                   # outside [0, 1]
    return Bad


@pytest.mark.parametrize("kind, status, words", [
    ("nan", "failed", "Bad.super_resolve returned"),
    ("shape", "failed", "expected (1, 1, "),
    ("flat", "failed", "degenerate output"),
    ("range", "complete", None)])
def test_super_resolve_output_is_guarded(kind, status, words, tmp_path, lung_smoke):
    out = Runner(lung_smoke, tmp_path).run(_bad_output(kind), smoke_config("bicubic"))
    assert out.status == status, out.reason
    manifest = json.loads((out.run_dir / "manifest.json").read_text())
    if words:
        assert words in out.reason and "super_resolve" in out.reason
    else:
        assert any("outside [0, 1] was clamped" in n for n in manifest["notes"])


def test_an_output_unrelated_to_its_input_fails_with_its_scores_kept(tmp_path, lung_smoke):
    """An inverted SR (standard ESRGAN's collapse at 4 dB) is no result: the run fails with the
    reason, and its metrics.csv stays on disk to be looked at (a failed run is never ranked)."""
    cfg = smoke_config("bicubic")
    assert cfg["eval"]["min_input_r"] == 0              # smoke's 4 steps train no GAN: off
    off = Runner(lung_smoke, tmp_path).run(_bad_output("inverted"), cfg)
    assert off.status == "complete"
    assert "output check off" in json.loads((off.run_dir / "manifest.json").read_text())["notes"][-1]
    cfg["eval"]["min_input_r"] = 0.5                     # every other profile's default
    out = Runner(lung_smoke, tmp_path).run(_bad_output("inverted"), cfg)
    assert out.status == "failed" and "degenerate output" in out.reason
    assert "r = -" in out.reason and "during the output check" in out.reason
    df = __import__("pandas").read_csv(out.run_dir / "metrics.csv")
    assert (df["input_r"] < -0.9).all()
    good = Runner(lung_smoke, tmp_path).run(registry.get("methods", "bicubic"), cfg)
    assert good.status == "complete"
    assert not (good.run_dir / ".lock").exists()        # a complete run leaves no lock file
    assert (out.run_dir / ".lock").exists()             # a failed one may be resumed: kept
    assert (__import__("pandas").read_csv(good.run_dir / "metrics.csv")["input_r"] > 0.95).all()


# ---- 4. bad configuration fails first ----------------------------------------------------------
@pytest.mark.parametrize("item", ["train.epochs=abc", "eval.overlap=lots", "eval.overlap=1.5",
                                  "model.lambda_down=-1", "train.batch_size=0"])
def test_bad_set_is_one_line_exit_2_and_no_run_folder(item, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("BENCHSR_DEBUG", raising=False)
    monkeypatch.setattr(sys, "argv", ["benchsr", "run", "--methods", "srcyclegan", "--profile",
                                      "smoke", "--set", item, "--out", str(tmp_path / "out")])
    with pytest.raises(SystemExit) as stop:
        cli.main()
    err = capsys.readouterr().err
    assert stop.value.code == 2 and item.split("=")[0] in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_config_replays_a_run(tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["run", "--methods", "bicubic", "--profile", "smoke", "--set",
                              "eval.border_crop=0", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    first = next(tmp_path.glob("runs/lung-ct/bicubic/*/config.yaml"))
    res = runner.invoke(app, ["run", "--config", str(first), "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    saved = [yaml.safe_load(p.read_text()) for p in tmp_path.glob("runs/lung-ct/bicubic/*/config.yaml")]
    assert len(saved) == 2 and saved[0] == saved[1]


# ---- 5. statistics that do not overstate -------------------------------------------------------
def test_holm_correction():
    assert metrics.holm([0.01, 0.04, None, 0.03]) == pytest.approx([0.03, 0.06, math.nan, 0.06],
                                                                     nan_ok=True)


def test_cluster_bootstrap_is_wider_than_pretending_slices_are_independent():
    rng = np.random.default_rng(0)
    volume_level = rng.normal(0, 1, 6)
    values = np.repeat(volume_level, 20) + rng.normal(0, 0.05, 120)
    clusters = np.repeat([f"v{i}" for i in range(6)], 20)
    iid = metrics.bootstrap_summary(values.tolist(), 0)["ci95"]
    grouped = metrics.bootstrap_summary(values.tolist(), 0, clusters.tolist())
    assert grouped["ci_resampled"] == "t over 6 volumes"
    assert grouped["ci95"][1] - grouped["ci95"][0] > 2 * (iid[1] - iid[0])


def test_lr_consistency_is_a_finite_check_and_compute_is_in_macs(smoke_out):
    found = rows.load_runs([smoke_out])
    group = tables.groups(found)[0]
    assert "GMACs / LR input" in group.cost.cells.columns
    flops = group.cost.numbers.set_index("label").loc["srcyclegan"]
    assert flops["macs"] * 2 == flops["flops"]
    assert "lr_consistency_psnr" not in metrics.METRICS and not metrics.METRICS["lr_consistency_rmse"].ranked
