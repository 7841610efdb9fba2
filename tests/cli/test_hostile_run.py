"""`benchsr run` under hostile input: bad windows, sizes, numbers, config text, data folders
and out folders are one line before any run folder; a result that is not one fails the run.
More one-line cases: tests/cli/test_cli_errors.py and tests/cli/test_experiment_files.py."""
import json
import subprocess
import sys

import numpy as np
import pytest

from benchsr import registry
from benchsr.run.runner import Runner

from conftest import _ct, _main, _one_line_exit_2, smoke_config, write_volume as _write

ONE = "data.patients=[Lung-PET-CT-Dx-A0001]"   # data.split=ranges takes one patient


@pytest.mark.parametrize("item, words", [("data.window=[500,-1000]", "low < high"),
                                         ("data.window=[0,0]", "low < high"),
                                         ("data.window=5", "expected a list"),
                                         # MAE 0.0 HU was reported through a 0.01 HU window
                                         ("data.window=[-1000,-999.99]",
                                          "a window 0.01 wide leaves almost nothing to score")])
def test_reversed_or_degenerate_window_is_refused_before_loading(item, words, tmp_path, capsys,
                                                                  monkeypatch):
    monkeypatch.setattr(sys, "argv", ["benchsr", "run", "--methods", "bicubic", "--profile", "smoke",
                                      "--set", item, "--out", str(tmp_path / "o")])
    with pytest.raises(SystemExit) as stop:
        from benchsr import cli
        cli.main()
    _one_line_exit_2(stop.value.code, capsys.readouterr().err, words)
    assert not (tmp_path / "o").exists()

def test_an_infinite_metric_is_a_failed_run(tmp_path, lung_smoke):
    import dataclasses
    hr_only = [dataclasses.replace(i, lr=i.hr[::4, ::4]) for i in lung_smoke.eval_images[:2]]
    data = dataclasses.replace(lung_smoke, eval_images=[
        dataclasses.replace(i, hr=np.kron(i.lr, np.ones((4, 4), np.float32))) for i in hr_only])
    out = Runner(data, tmp_path).run(registry.get("methods", "nearest"), smoke_config("nearest"))
    assert out.status == "failed" and "psnr is inf" in out.reason


def test_an_implausibly_high_psnr_is_no_result():
    """An all-zero scan ranked nearest #1 at 144.49 dB: a floored MSE, not a measurement."""
    from benchsr.evaluation.evaluate import check_finite_metrics
    from benchsr.errors import BenchError
    check_finite_metrics([{"image": "a", "psnr": 48.0, "ssim": 0.99}])
    with pytest.raises(BenchError, match=r"psnr is 144.49 on image a: not a result"):
        check_finite_metrics([{"image": "a", "psnr": 144.49, "ssim": 1.0}])

def test_resume_rebuilds_losses_from_the_checkpoint(tmp_path, lung_smoke):
    method = registry.get("methods", "srcyclegan")
    out = Runner(lung_smoke, tmp_path).run(method, smoke_config("srcyclegan"))
    full = (out.run_dir / "losses.csv").read_text()
    (out.run_dir / "losses.csv").write_text("epoch,step,total_g\n0,0,99\n")   # stale
    manifest = json.loads((out.run_dir / "manifest.json").read_text())
    manifest["status"] = "running"                              # as if killed after the checkpoint
    (out.run_dir / "manifest.json").write_text(json.dumps(manifest))
    again = Runner(lung_smoke, tmp_path).run(method, smoke_config("srcyclegan"), resume=True)
    assert again.run_dir == out.run_dir and again.status == "complete"
    assert (out.run_dir / "losses.csv").read_text() == full
    summary = json.loads((out.run_dir / "summary.json").read_text())
    assert summary["training"]["total_g_first_epoch"] != 99

@pytest.mark.parametrize("text, words", [("volumes: [a.mha]\n", "'volumes' must map"),
                                         ("volumes: {a.mha: 3}\n", "must be a mapping")])
def test_ct_uct_manifest_schema(text, words, tmp_path):
    from benchsr.contracts import BenchError
    from benchsr.datasets.ct_uct import read_manifest
    (tmp_path / "manifest.yaml").write_text(text)
    with pytest.raises(BenchError, match=words):
        read_manifest(tmp_path)

def test_ct_uct_link_out_of_its_folder_is_refused(tmp_path):
    from benchsr.contracts import BenchError
    from benchsr.datasets.ct_uct import CTuCT
    outside = _write(tmp_path / "elsewhere.mha", _ct())
    (tmp_path / "uct").mkdir()
    (tmp_path / "uct" / "scan.mha").symlink_to(outside)
    with pytest.raises(BenchError, match="outside"):
        CTuCT._entries(tmp_path / "uct")

def test_bad_out_folder(tmp_path):
    (tmp_path / "afile").write_text("x")
    res = subprocess.run([sys.executable, "-m", "benchsr.cli", "run", "--methods", "bicubic",
                          "--profile", "smoke", "--out", str(tmp_path / "afile")],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "is a file" in res.stderr and len(res.stderr.strip().splitlines()) == 1

@pytest.mark.parametrize("item, words", [
    ("train.lr_patch=1000", "smaller than its 1000x1000 patch"),        # was a FAILED run, exit 1
    ("eval.border_crop=100", "leaves nothing of a 128-pixel evaluation image"),   # likewise
    ("model.lambda_cycle=1e400", "must be >= 0"),
    ("model.lr=1e400", "must be a finite number"),                     # said "must be >= None"
])
def test_sizes_and_numbers_the_run_cannot_take_are_one_line_before_any_folder(
        item, words, tmp_path, capsys, monkeypatch):
    out = tmp_path / "res"
    code, _, err = _main(["run", "--methods", "srcyclegan", "--profile", "smoke", "--set", item,
                          "--out", out], capsys, monkeypatch)
    _one_line_exit_2(code, err, words)
    assert not out.exists()

def test_slurm_without_srun_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))           # no srun anywhere
    code, _, err = _main(["run", "--methods", "nearest", "--profile", "smoke", "--launcher", "slurm",
                          "--slurm-partition", "gpu", "--out", tmp_path / "res"], capsys, monkeypatch)
    _one_line_exit_2(code, err, "no srun on PATH")
    assert not (tmp_path / "res").exists()

@pytest.mark.parametrize("content, args, words", [
    (bytes(range(200, 256)) * 4, [], "not UTF-8 text"),
    ("method: bicubic\nvariant: caf\u00e9\n".encode("latin-1"), [], "not UTF-8 text"),
    (("x: " + "[" * 5000 + "]" * 5000).encode(), [], "nested too deeply"),
    (None, ["--set", "seed=" + "[" * 5000 + "]" * 5000], "nested too deeply"),
    (None, ["--set", "data.split=ranges", "--set", ONE, "--set", "data.lr_slices=[a,b]"], "two whole slice numbers"),
    (None, ["--set", "data.split=ranges", "--set", ONE, "--set", "data.lr_slices=[1,2,3]"], "expected [first, stop]"),
])
def test_config_text_that_gave_a_traceback_is_one_line(content, args, words, tmp_path, capsys,
                                                       monkeypatch):
    """Binary junk, Latin-1, a 5000-deep list (RecursionError) and malformed slice ranges."""
    source = ["--methods", "bicubic"]
    if content is not None:
        (tmp_path / "c.yaml").write_bytes(content)
        source = ["--config", tmp_path / "c.yaml"]
    code, _, err = _main(["run", *source, "--profile", "smoke", *args, "--out", tmp_path / "res"],
                         capsys, monkeypatch)
    _one_line_exit_2(code, err, words)
    assert not (tmp_path / "res").exists()


def test_a_pipe_where_a_file_is_read_is_one_line_and_never_waited_on(tmp_path, capsys,
                                                                     monkeypatch):
    """--config and init.from named a FIFO: 'no such file' about a file that is there."""
    import os
    pipe = tmp_path / "pipe.yaml"
    os.mkfifo(pipe)
    for args in (["--config", pipe], ["--methods", "srcyclegan", "--profile", "smoke", "--set",
                                      f"init.from={pipe}"]):
        code, _, err = _main(["run", *args, "--out", tmp_path / "res"], capsys, monkeypatch)
        _one_line_exit_2(code, err, "not a regular file")
        assert not (tmp_path / "res").exists()


@pytest.mark.parametrize("items, words", [
    (["data.lr_slices=[30,10]"], "--set data.lr_slices: lung-ct reads it only under "
                                 "data.split=ranges (here interleaved): it would change nothing"),
    (["data.eval_slices=[40,64]"], "reads it only under data.split=ranges"),
    (["data.fold=1"], "reads it only under data.split=patients (here interleaved)"),
    (["data.z_factor=4"], "reads it only under data.plane=through (here axial)"),
])
def test_a_key_the_split_ignores_is_refused(items, words, tmp_path, capsys, monkeypatch):
    out = tmp_path / "res"
    code, _, err = _main(["run", "--methods", "nearest", "--profile", "smoke",
                          *sum((["--set", i] for i in items), []), "--out", out], capsys, monkeypatch)
    _one_line_exit_2(code, err, words)
    assert not out.exists()


def test_a_key_read_under_its_setting_is_taken(lung_cls):
    from benchsr import config
    cfg = config.resolve(registry.get("methods", "nearest"), "default", lung_cls, "smoke",
                         ["data.split=ranges", "data.lr_slices=[0,20]"])
    assert cfg["data"]["lr_slices"] == [0, 20]
    # a replayed config.yaml gives every key, at its default where the split ignores it
    config.resolve(registry.get("methods", "nearest"), "default", lung_cls, "smoke",
                   ["data.lr_slices=[0,24]"])


@pytest.mark.parametrize("spec", ["", " ", ","])
def test_an_empty_methods_list_runs_nothing(spec, tmp_path, capsys, monkeypatch):
    """`--methods ''` ran every method (8 folders)."""
    out = tmp_path / "res"
    code, _, err = _main(["run", "--methods", spec, "--profile", "smoke", "--out", out],
                         capsys, monkeypatch)
    _one_line_exit_2(code, err, "--methods is empty")
    assert not out.exists()
