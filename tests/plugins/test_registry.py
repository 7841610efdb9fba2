"""Plugin discovery: built-in folders, a throwaway third-party package via entry points, and a
broken plugin that is listed as broken while the others keep working."""
import subprocess
import sys

import pytest

from benchsr import registry
from benchsr.contracts import BenchError

from conftest import fake_distribution

TOY = '''
import torch.nn.functional as F
from benchsr.contracts import Method

class Toy(Method):
    name = "toy-bilinear"
    description = "a third-party plugin found through its entry point"
    data = "none"
    scales = (4,)

    def super_resolve(self, lr):
        return F.interpolate(lr, scale_factor=self.ctx.scale, mode="bilinear")

PLUGINS = [Toy]
'''


@pytest.fixture
def plugin_path(tmp_path, monkeypatch):
    """An installed-looking distribution: a module plus a .dist-info with entry_points.txt."""
    (tmp_path / "toyplug.py").write_text(TOY)
    (tmp_path / "brokenplug.py").write_text("import a_module_that_does_not_exist\n")
    fake_distribution(tmp_path, "toyplug", {"toy": "toyplug", "broken": "brokenplug"})
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_builtins_are_found():
    methods = registry.discover("methods")
    assert {"srcyclegan", "bicubic", "nearest"} <= set(methods)
    assert all(not e.broken for n, e in methods.items() if n in ("srcyclegan", "bicubic", "nearest"))
    assert "lung-ct" in registry.discover("datasets")
    assert "datasets" not in sys.modules   # never a top-level `datasets` package


def test_entry_point_plugin_and_broken_plugin(plugin_path):
    methods = registry.discover("methods")
    assert methods["toy-bilinear"].cls.__name__ == "Toy"
    assert methods["toy-bilinear"].origin.startswith("entry-point:")
    assert methods["broken"].broken and "a_module_that_does_not_exist" in methods["broken"].error
    assert not methods["srcyclegan"].broken
    with pytest.raises(BenchError, match="broken"):
        registry.get("methods", "broken")


def test_a_taken_name_is_shown_as_shadowed(tmp_path, monkeypatch):
    (tmp_path / "fakebicubic.py").write_text(TOY.replace('"toy-bilinear"', '"bicubic"'))
    fake_distribution(tmp_path, "fakebicubic", {"bicubic": "fakebicubic"})
    monkeypatch.syspath_prepend(str(tmp_path))
    entry = registry.discover("methods")["bicubic"]
    assert entry.origin.startswith("builtin:")                       # the built-in wins
    assert [e.origin for e in entry.shadowed] == ["entry-point:fakebicubic"]
    out = subprocess.run([sys.executable, "-m", "benchsr.cli", "list"], capture_output=True,
                         text=True, env={"PYTHONPATH": str(tmp_path), "COLUMNS": "250",
                                         "PATH": "/usr/bin:/bin"}, timeout=120)
    assert "SHADOWED" in out.stdout and "fakebicubic" in out.stdout


def test_a_run_records_its_plugins(plugin_path, tmp_path, lung_smoke):
    import json
    from benchsr.run.runner import Runner
    from conftest import smoke_config
    cls = registry.get("methods", "toy-bilinear")
    out = Runner(lung_smoke, tmp_path).run(cls, smoke_config("bicubic") | {"method": cls.name})
    plugins = json.loads((out.run_dir / "manifest.json").read_text())["plugins"]
    assert plugins["method"] == {"name": "toy-bilinear", "origin": "entry-point:toyplug",
                                 "version": "0.1"}
    assert plugins["dataset"]["origin"] == "builtin:datasets/lung_ct"


def test_unknown_name_lists_the_available():
    with pytest.raises(BenchError, match="available: .*srcyclegan"):
        registry.get("methods", "no-such-method")


def test_cli_list_shows_broken_and_third_party(plugin_path):
    env_path = f"{plugin_path}"
    out = subprocess.run([sys.executable, "-m", "benchsr.cli", "list"], capture_output=True,
                         text=True, env={"PYTHONPATH": env_path, "COLUMNS": "250",
                                         "PATH": "/usr/bin:/bin"}, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "toy-bilinear" in out.stdout and "BROKEN" in out.stdout
    assert "srcyclegan" in out.stdout and "lung-ct" in out.stdout


def test_third_party_method_runs_through_the_harness(plugin_path, tmp_path):
    from typer.testing import CliRunner
    from benchsr.cli.main import app
    res = CliRunner().invoke(app, ["run", "--methods", "toy-bilinear,bicubic", "--profile", "smoke",
                                   "--out", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    board = (tmp_path / "out" / "leaderboard.md").read_text()
    assert "toy-bilinear" in board and "bicubic" in board
