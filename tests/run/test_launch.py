"""A sweep through submitit's local executor: one job per (method, seed), each its own run
folder in the shared results root, one leaderboard at the end, and `benchsr status`."""
import json
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_local_sweep_of_two_methods_by_two_seeds(tmp_path):
    out = tmp_path / "res"
    res = subprocess.run([sys.executable, "-m", "benchsr.cli", "run", "--methods", "bicubic,nearest",
                          "--seeds", "0,1", "--profile", "smoke", "--launcher", "local", "--jobs", "2",
                          "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    manifests = [json.loads(p.read_text()) for p in out.glob("runs/lung-ct/*/*/manifest.json")]
    assert sorted((m["label"], m["seed"]) for m in manifests) == [
        ("bicubic", 0), ("bicubic", 1), ("nearest", 0), ("nearest", 1)]
    assert (out / "leaderboard.md").is_file() and "| nearest" in (out / "leaderboard.md").read_text()
    assert list(out.glob("launch/*/jobs.json"))
    from typer.testing import CliRunner
    from benchsr.cli.main import app
    st = CliRunner().invoke(app, ["status", str(out)], env={"COLUMNS": "200"})
    assert st.exit_code == 0 and st.output.count("complete") == 4, st.output
