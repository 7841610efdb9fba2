import pytest
"""A sweep through submitit's local executor: one job per (method, seed), each its own run
folder in the shared results root, one leaderboard at the end, and `benchsr status`."""
import subprocess
import sys


@pytest.mark.slow
def test_local_sweep_of_two_jobs(tmp_path):
    out = tmp_path / "res"
    res = subprocess.run([sys.executable, "-m", "benchsr.cli", "run", "--methods", "bicubic,nearest",
                          "--profile", "smoke", "--launcher", "local", "--jobs", "2",
                          "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    runs = sorted(p.parent.parent.name for p in out.glob("runs/lung-ct/*/*/manifest.json"))
    assert runs == ["bicubic", "nearest"]
    assert (out / "leaderboard.md").is_file() and "| nearest" in (out / "leaderboard.md").read_text()
    assert list(out.glob("launch/*/jobs.json"))
    from typer.testing import CliRunner
    from benchsr.cli.main import app
    st = CliRunner().invoke(app, ["status", str(out)], env={"COLUMNS": "200"})
    assert st.exit_code == 0 and st.output.count("complete") == 2, st.output
