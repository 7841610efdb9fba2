"""A built wheel is a working benchsr: the built-in methods and datasets travel inside it as
benchsr.methods / benchsr.datasets, with their presets, and register through entry points."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_non_editable_install_lists_every_builtin_plugin(tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                    "--no-build-isolation", "--target", str(target), str(ROOT)],
                   check=True, capture_output=True, timeout=300)
    assert (target / "benchsr" / "methods" / "srcyclegan" / "presets.yaml").is_file()
    assert not (target / "datasets").exists()          # never a top-level `datasets`
    env = {"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin", "COLUMNS": "250"}
    where = subprocess.run([sys.executable, "-c", "import benchsr; print(benchsr.__file__)"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert where.stdout.strip().startswith(str(target)), where.stdout   # not the checkout
    out = subprocess.run([sys.executable, "-m", "benchsr.cli", "list"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    for name in ("srcyclegan", "cincgan", "pseudosr", "esrgan", "bicubic", "nearest",
                 "lung-ct", "covid19", "ct-uct", "official, network1"):
        assert name in out.stdout, name
    assert "BROKEN" not in out.stdout and "SHADOWED" not in out.stdout
    # the contract checks run from the wheel, with no source checkout in reach
    for name in ("esrgan", "lung-ct"):
        res = subprocess.run([sys.executable, "-m", "benchsr.cli", "check", name], cwd=tmp_path,
                             env=env, capture_output=True, text=True, timeout=300)
        assert res.returncode == 0 and "checks passed" in res.stdout, res.stdout + res.stderr
