"""`benchsr reproduce`: paper tables declared by plugins, run once, reused, printed beside the
published numbers."""
import json
import shutil
import textwrap

import yaml

import pytest
from typer.testing import CliRunner

from benchsr.report import reproduce
from benchsr.cli.main import app
from benchsr.contracts import BenchError

from conftest import fake_distribution


def test_every_declared_table_resolves_to_valid_configs():
    tables = reproduce.paper_tables()
    assert {"table2", "table3", "table4", "table6", "table7"} <= set(tables)
    for name, spec in tables.items():
        rows = reproduce.row_configs(spec, "smoke", [])
        assert all(row["paper"]["psnr"] > 0 for row, _, _ in rows), name
    (d,) = [cfg for row, _, cfg in reproduce.row_configs(tables["table3"], "smoke", [])
            if row["name"].startswith("D ")]
    assert (d["model"]["lambda_down"], d["model"]["lambda_ssim_x"], d["model"]["lambda_up"]) == (0, 0, 0.3)
    assert d["variant"] == "lambda_down=0,lambda_ssim_x=0,lambda_ssim_y=0"


TOY = '''
import torch.nn.functional as F
from benchsr.contracts import Method


class Blocky(Method):
    name = "blocky"
    data = "none"
    deterministic = True

    def super_resolve(self, lr):
        if self.cfg["model"]["mode"] == "inverted":             # a collapsed method's output
            return 1 - F.interpolate(lr, scale_factor=self.ctx.scale)
        return F.interpolate(lr, scale_factor=self.ctx.scale, mode=self.cfg["model"]["mode"])


PLUGINS = [Blocky]
'''

TABLES = '''
tableX:
  title: "Toy table"
  dataset: lung-ct
  rows:
    - {name: nearest, method: blocky, paper: {psnr: 20.0, ssim_global: 0.9}}
    - {name: bilinear, method: blocky, set: {model.mode: bilinear}, paper: {psnr: 21.0, ssim_global: 0.95}}
  claims:
    - {better: bilinear, than: nearest}
tableY:
  title: "Toy table with a degenerate row"
  dataset: lung-ct
  rows:
    - {name: nearest, method: blocky, paper: {psnr: 20.0}}
    - {name: inverted, method: blocky, set: {model.mode: inverted}, paper: {psnr: 21.0}}
tableZ:
  title: "Toy table with a row that is the preset's own setting"
  dataset: lung-ct
  rows:
    - {name: nearest, method: blocky, paper: {psnr: 20.0}}
    - {name: nearest again, method: blocky, set: {model.mode: nearest}, paper: {psnr: 19.0}}
    - {name: bilinear, method: blocky, set: {model.mode: bilinear}, paper: {psnr: 21.0}}
  claims:
    - {better: nearest, than: nearest again}
    - {better: bilinear, than: nearest again}
'''


@pytest.fixture
def toy_plugin(tmp_path, monkeypatch):
    # one clean commit, whatever the state of the checkout the tests run in
    monkeypatch.setattr("benchsr.results.code_version", lambda: {"commit": "c0de" * 10, "dirty": False})
    pkg = tmp_path / "toyrep"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(TOY)
    (pkg / "presets.yaml").write_text("model: {mode: nearest}\n")
    (pkg / "paper_tables.yaml").write_text(textwrap.dedent(TABLES))
    fake_distribution(tmp_path, "toyrep", {"blocky": "toyrep"})
    monkeypatch.syspath_prepend(str(tmp_path))


def test_reproduce_runs_once_then_reuses(toy_plugin, tmp_path):
    out = tmp_path / "out"
    args = ["reproduce", "tableX", "--profile", "smoke", "--out", str(out)]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    runs = sorted((out / "runs" / "lung-ct").glob("*/*"))
    assert [r.parent.name for r in runs] == ["blocky", "blocky-mode=bilinear"]
    second = CliRunner().invoke(app, args)
    assert second.exit_code == 0, second.output
    assert sorted((out / "runs" / "lung-ct").glob("*/*")) == runs
    md = (out / "reproduce" / "tableX-smoke.md").read_text()
    assert "benchsr reproduce tableX --profile smoke" in md and "compare the ranking" in md
    paper_table = md.split("## Clinical measures")[0]
    lines = {line.split("|")[1].strip(): line for line in paper_table.splitlines()
             if line.startswith("| ")}
    assert "20.00" in lines["nearest"] and "21.00" in lines["bilinear"]
    assert "blocky [mode=bilinear]" in lines["bilinear"]
    # the clinical measures ride along, in a table of their own
    assert "## Clinical measures" in md and "| MAE (HU)" in md and "MAE lung (HU)" in md


def test_a_failed_run_is_reported_with_its_reason_and_not_rerun(toy_plugin, tmp_path):
    out = tmp_path / "out"
    args = ["reproduce", "tableY", "--profile", "smoke", "--out", str(out),
            "--set", "eval.min_input_r=0.5"]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 1, (first.output, repr(first.exception))   # a row without a complete run
    runs = sorted((out / "runs" / "lung-ct").glob("*/*"))
    assert isinstance(first.exception, SystemExit), repr(first.exception)
    md = (out / "reproduce" / "tableY-smoke.md").read_text()
    assert "FAILED run blocky-mode=inverted/" in md and "degenerate output" in md
    assert "Failed rows (see their run folders): inverted" in md
    CliRunner().invoke(app, args)                     # the same degenerate seed is not rerun
    assert sorted((out / "runs" / "lung-ct").glob("*/*")) == runs


def test_unknown_table_is_a_clear_error():
    with pytest.raises(BenchError, match="unknown paper table 'table9'"):
        reproduce.check_known("table9", reproduce.paper_tables())


def test_seeds_claims_and_another_dataset(toy_plugin, tmp_path):
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["reproduce", "tableX", "--profile", "smoke", "--seeds", "0,1",
                                   "--dataset", "ct-uct", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert len(list((out / "runs" / "ct-uct").glob("*/*"))) == 4          # 2 rows x 2 seeds
    md = (out / "reproduce" / "tableX-ct-uct-smoke.md").read_text()
    assert "run on ct-uct instead of lung-ct" in md and "--seeds 0,1" in md
    assert "(2 seeds)" in md and "## Claims" in md
    claim = [line for line in md.splitlines() if line.startswith("| bilinear > nearest")]
    # PSNR and global SSIM, each on the bicubic proxy and on the simulated true pairs
    assert len(claim) == 4
    assert sum("true cross-modality (simulated)" in line for line in claim) == 2
    assert "21.00 vs 20.00" in claim[0]
    # the toy method trains nothing and the smoke specimen is 1 volume: the test pairs its
    # blocks of slices (evaluation slices far apart), and says it does not generalise
    assert all("1 volume (" in line and "does not generalise across patients" in line
               for line in claim), claim
    assert "no training" in claim[0]
    # the table shows the true cross-modality PSNR beside the proxy, from the runs' summaries
    header = next(line for line in md.splitlines() if line.startswith("| Row"))
    assert "PSNR (dB): ours, true cross-modality (simulated)" in header
    col = [c.strip() for c in header.split("|")].index("PSNR (dB): ours, true cross-modality (simulated)")
    runs = sorted((out / "runs" / "ct-uct" / "blocky").glob("*"))
    true_psnr = [json.loads((r / "summary.json").read_text())["groups"]
                 ["true cross-modality (simulated)"]["psnr"]["mean"] for r in runs]
    row = next(line for line in md.splitlines() if line.startswith("| nearest"))
    assert row.split("|")[col].strip().startswith(f"{sum(true_psnr) / 2:.2f} ± ")

    # rebuilt from the run folders the report lists, running nothing: the same report, even
    # when the code's configs have moved on (a changed default would otherwise make new runs)
    report = out / "reproduce" / "tableX-ct-uct-smoke.md"
    saved = tmp_path / "old.md"
    shutil.copy(report, saved)
    before = sorted((out / "runs").glob("*/*/*"))
    res = CliRunner().invoke(app, ["reproduce", "tableX", "--profile", "smoke", "--seeds", "0,1",
                                   "--dataset", "ct-uct", "--out", str(out), "--runs-of", str(saved),
                                   "--set", "eval.border_crop=3"])
    assert res.exit_code == 0, res.output
    assert sorted((out / "runs").glob("*/*/*")) == before
    assert report.read_text().split("## Claims")[1] == saved.read_text().split("## Claims")[1]


def test_a_failure_of_other_code_runs_again(toy_plugin, tmp_path):
    """A failed run is reused only when this code made it: a fix since then gets its chance."""
    out = tmp_path / "out"
    args = ["reproduce", "tableY", "--profile", "smoke", "--out", str(out),
            "--set", "eval.min_input_r=0.5"]
    CliRunner().invoke(app, args)
    (failed,) = [r for r in (out / "runs" / "lung-ct").glob("blocky-mode=inverted/*")]
    manifest = json.loads((failed / "manifest.json").read_text())
    assert manifest["status"] == "failed"
    manifest["provenance"]["commit"] = "0" * 40          # as if an older commit had made it
    (failed / "manifest.json").write_text(json.dumps(manifest))
    CliRunner().invoke(app, args)
    again = sorted((out / "runs" / "lung-ct").glob("blocky-mode=inverted/*"))
    assert len(again) == 2 and failed in again


def test_rows_run_a_subset_and_its_claims_only(toy_plugin, tmp_path):
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["reproduce", "tableX", "--profile", "smoke", "--rows", "bilinear",
                                   "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert [r.parent.name for r in (out / "runs" / "lung-ct").glob("*/*")] == ["blocky-mode=bilinear"]
    md = (out / "reproduce" / "tableX-smoke.md").read_text()
    assert "--rows bilinear" in md and "Rows run: 1 of 2 (not run here: nearest)" in md
    assert "## Claims" not in md                      # its one claim needs the row left out
    spec = reproduce.paper_tables()["table3"]
    fig12 = reproduce.select_rows(spec, "A,C,H,I,M")
    assert [r["name"][0] for r in fig12["rows"]] == list("ACHIM")
    assert {(c["better"][0], c["than"][0]) for c in fig12["claims"]} == {
        ("M", "H"), ("M", "I"), ("I", "C"), ("H", "C"), ("C", "A")}
    with pytest.raises(BenchError, match=r"--rows A,Z: no row 'Z' in this table \(rows: A, B"):
        reproduce.select_rows(spec, "A,Z")


def test_a_stopped_run_is_continued_not_started_again(toy_plugin, tmp_path):
    out = tmp_path / "out"
    args = ["reproduce", "tableX", "--profile", "smoke", "--rows", "bilinear", "--out", str(out)]
    assert CliRunner().invoke(app, args).exit_code == 0
    (run,) = (out / "runs" / "lung-ct" / "blocky-mode=bilinear").iterdir()
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["status"] = "stopped"              # as a SIGTERM leaves it
    (run / "manifest.json").write_text(json.dumps(manifest))
    assert reproduce.stopped_run(out, yaml.safe_load((run / "config.yaml").read_text())) == run
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert list((out / "runs" / "lung-ct" / "blocky-mode=bilinear").iterdir()) == [run]
    assert json.loads((run / "manifest.json").read_text())["status"] == "complete"


def test_a_row_that_is_another_rows_config_runs_once_and_its_claim_is_untestable(toy_plugin, tmp_path):
    """At quick, Table 7's rows 2 (6 blocks) and 6 (24 px patch) are row 1's config: the profile
    already trains 6 blocks on 24 px patches. They were run and judged as three conditions."""
    spec = reproduce.paper_tables()["table7"]
    same = reproduce.same_config_rows(reproduce.row_configs(spec, "quick", [], "lung-ct", [0, 1]))
    assert same == {"2 (6 blocks)": "1 (9, 3+7, 32)", "6 (24 px patch)": "1 (9, 3+7, 32)"}
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["reproduce", "tableZ", "--profile", "smoke", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert sorted(r.parent.name for r in (out / "runs" / "lung-ct").glob("*/*")) == [
        "blocky", "blocky-mode=bilinear"]
    md = (out / "reproduce" / "tableZ-smoke.md").read_text()
    assert "SAME CONFIG at profile 'smoke': nearest again is row nearest's config here (mode=nearest)" in md
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")]
            for line in md.split("## Clinical")[0].splitlines() if line.startswith("| ")}
    col = rows["Row"].index("Trained with")
    assert (rows["nearest again"][col], rows["bilinear"][col]) == ("mode=nearest", "mode=bilinear")
    assert rows["nearest again"][rows["Row"].index("Runs")] == rows["nearest"][rows["Row"].index("Runs")]
    claims = {line.split("|")[1].strip(): line for line in md.split("## Claims")[1].splitlines()
              if line.startswith("| ")}
    assert "untestable" in claims["nearest > nearest again"]
    assert "the same config at this profile" in claims["nearest > nearest again"]
    assert "untestable" not in claims["bilinear > nearest again"]
    assert "MDE at these seeds" in claims["Claim"]
    assert "No run of this table wrote curve.csv" in md       # the toy trains nothing


def test_learning_curves_one_panel_per_row_with_where_each_stops(tmp_path):
    done = []
    for name, slope in (("M (11111)", 0.01), ("C (1----)", 0.0002)):
        runs = []
        for seed in range(2):
            run = tmp_path / f"{name[0]}{seed}"
            run.mkdir()
            steps = [75 * k for k in range(1, 7)]
            (run / "curve.csv").write_text("step,metric,value\n" + "".join(
                f"{s},psnr,{12 + slope * s + 0.1 * seed}\n" for s in steps))
            runs.append(run)
        done.append(({"name": name}, runs))
    spec = {"title": "Toy", "claims": [{"better": "M (11111)", "than": "C (1----)"}]}
    png = tmp_path / "curves.png"
    md = reproduce.curves_section(spec, done, png)
    assert png.is_file() and "![learning curves](curves.png)" in md
    assert "M (11111)'s mean dashed" in md
    lines = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")]
             for line in md.splitlines() if line.startswith("| ")}
    # mean of the two seeds at step 450: 12 + 0.01 * 450 + 0.05 = 16.55, rising 1.1 dB over the
    # second half; C gains 0.045 dB there, within RISE_DB: level
    assert lines["M (11111)"][4] == "16.55 (450)" and lines["M (11111)"][-2] == "rising"
    assert lines["C (1----)"][4] == "12.14 (450)" and lines["C (1----)"][-2] == "level"
