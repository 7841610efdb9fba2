"""Shared fixtures. SimpleITK is imported only where a test writes a scan (benchsr.data.sitk), so
the suite also runs where it is absent (scripts/device_check.sh)."""
from __future__ import annotations

import os
import sys

if os.environ.get("PYTEST_XDIST_WORKER"):     # -n auto: one worker per core, one thread each
    os.environ.setdefault("OMP_NUM_THREADS", "1")   # (subprocesses inherit it)
    import torch
    torch.set_num_threads(1)

import numpy as np
import pytest

from benchsr import config, registry
from benchsr.data import sitk
from benchsr.data.cache import CACHE_ENV


# the longest files first: xdist deals files to the workers in this order, so that the workers
# end together instead of one finishing a long file alone
LONG_FILES = ("tests/run/test_slurm.py", "tests/datasets/test_through_plane.py",
              "tests/datasets/test_prepared.py", "tests/runtime/test_distributed.py",
              "tests/run/test_reliability.py", "tests/run/test_launch.py",
              "tests/report/test_folds.py", "tests/plugins/test_packaging.py")


def pytest_collection_modifyitems(config, items):
    def rank(item):
        return next((i for i, f in enumerate(LONG_FILES) if item.nodeid.startswith(f)), len(LONG_FILES))
    items.sort(key=rank)          # stable: the order inside a file is kept


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory):
    """Tests never write into the user's ~/.cache/benchsr (subprocesses inherit this too)."""
    os.environ[CACHE_ENV] = str(tmp_path_factory.mktemp("benchsr-cache"))


@pytest.fixture(scope="session")
def lung_cls():
    return registry.get("datasets", "lung-ct")


@pytest.fixture(scope="session")
def lung_smoke(lung_cls):
    """The real embedded chest CT, loaded once for the whole session (smoke profile)."""
    cfg = config.resolve(registry.get("methods", "nearest"), "default", lung_cls, "smoke", [])
    return lung_cls(cfg).load()


@pytest.fixture(scope="session")
def trained(tmp_path_factory, lung_smoke):
    """A smoke SR-CycleGAN run (with a checkpoint) and a nearest run (no weights)."""
    from benchsr.run.runner import Runner
    out = tmp_path_factory.mktemp("runs")
    return {m: Runner(lung_smoke, out).run(registry.get("methods", m), smoke_config(m)).run_dir
            for m in ("srcyclegan", "nearest")}


def smoke_config(method: str, preset: str = "default", dataset_cls=None, extra=()):
    dataset_cls = dataset_cls or registry.get("datasets", "lung-ct")
    return config.resolve(registry.get("methods", method), preset, dataset_cls, "smoke", list(extra))


@pytest.fixture(scope="session")
def smoke_out(tmp_path_factory):
    """`benchsr run --methods all --profile smoke` once for the session: the run folders and
    the leaderboard that tests read."""
    from typer.testing import CliRunner
    from benchsr.cli.main import app
    out = tmp_path_factory.mktemp("results")
    res = CliRunner().invoke(app, ["run", "--methods", "all", "--profile", "smoke", "--out", str(out)])
    assert res.exit_code == 0, res.output
    return out


def without(folder, *modules: str) -> str:
    """PYTHONPATH for a subprocess in which `modules` cannot be imported (as on a machine that
    lacks them): a sitecustomize in `folder` that blocks them, before the inherited path."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(
        "import sys\n" + "".join(f"sys.modules[{m!r}] = None\n" for m in modules))
    return os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")])


def fake_distribution(folder, name: str, methods: dict[str, str]) -> None:
    """An installed-looking distribution in `folder` (put it on sys.path or PYTHONPATH): a
    .dist-info whose entry points register `methods` (entry name -> module) as benchsr.methods."""
    dist = folder / f"{name}-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[benchsr.methods]\n" + "".join(f"{k} = {v}\n" for k, v in methods.items()))


# ---- a COVID-19-20 tree with the challenge's real layout, from the real chest CT ----
TRAIN = ["volume-covid19-A-0003", "volume-covid19-A-0011_1", "volume-covid19-A-0014_day000",
         "volume-covid19-A-0020", "volume-covid19-A-0025_day012"]
VALID = ["volume-covid19-A-0101", "volume-covid19-A-0110_day004"]


def _write(img: sitk.Image, path):
    sitk.WriteImage(img, str(path), useCompression=True)


def _case(series: sitk.Image, z0: int) -> sitk.Image:
    """Ten real axial slices, the central 256 x 256 of the chest, HU kept, spacing kept."""
    return series[128:384, 128:384, z0:z0 + 10]


@pytest.fixture(scope="session")
def covid_tree(tmp_path_factory):
    from benchsr.data.embedded import chest_ct_folder as series_folder
    from benchsr.data.volumes import read_volume
    series = sitk.Cast(read_volume(series_folder()), sitk.sitkInt16)
    root = tmp_path_factory.mktemp("covid") / "COVID-19-20_v2"
    (root / "Train").mkdir(parents=True)
    (root / "Validation").mkdir()
    for i, name in enumerate(TRAIN):
        vol = _case(series, 4 * i)
        _write(vol, root / "Train" / f"{name}_ct.nii.gz")
        _write(sitk.Cast(vol > 0, sitk.sitkUInt8), root / "Train" / f"{name}_seg.nii.gz")
    for i, name in enumerate(VALID):
        _write(_case(series, 40 + 12 * i), root / "Validation" / f"{name}_ct.nii.gz")
    return root


_CLI_BATCH = r'''
import json, os, sys, tempfile, traceback
from benchsr import cli
results = []
for argv in json.loads(sys.argv[1]):
    with tempfile.TemporaryFile(mode="w+") as err:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(err.fileno(), 2)            # the real stderr, as a user's terminal gets it
        code = 0
        try:
            sys.argv = ["benchsr", *argv]
            cli.main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:
            code = "crashed"
            traceback.print_exc()
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
        err.seek(0)
        results.append({"returncode": code, "stderr": err.read()})
print(json.dumps(results))
'''


def cli_batch(cases: list[list[str]], env: dict | None = None, timeout: int = 600) -> list:
    """Run `benchsr ARGS` for each case through the real entry point (cli.main: its exit code
    and its stderr), all in one fresh process: the imports (torch, basicsr) are paid once
    instead of once per case. Returns objects with .returncode and .stderr, in order."""
    import json
    import os
    import subprocess
    import sys
    from types import SimpleNamespace
    out = subprocess.run([sys.executable, "-c", _CLI_BATCH, json.dumps(cases)], capture_output=True,
                         text=True, timeout=timeout, env={**os.environ, **(env or {})})
    assert out.returncode == 0, out.stderr[-2000:]
    return [SimpleNamespace(**r) for r in json.loads(out.stdout.strip().splitlines()[-1])]


# ---- helpers of the infer and hostile-input tests ----------------------------------------
def _ct(shape=(4, 40, 48), seed=0) -> np.ndarray:
    """A small HU volume: air around a soft-tissue disc with noise."""
    z, y, x = np.indices(shape)
    body = (y - shape[1] / 2) ** 2 + (x - shape[2] / 2) ** 2 < (min(shape[1:]) / 2.5) ** 2
    rng = np.random.default_rng(seed)
    return np.where(body, 40, -1000).astype(np.int16) + rng.integers(-20, 20, shape).astype(np.int16)


def write_volume(path, array, spacing=(0.7, 0.8, 2.5), origin=(-10.0, 20.0, 5.0), direction=None):
    img = sitk.GetImageFromArray(array)
    img.SetSpacing(spacing)
    img.SetOrigin(origin)
    if direction is not None:
        img.SetDirection(direction)
    sitk.WriteImage(img, str(path))
    return path


def _one_line_exit_2(code, err, *words):
    """A refusal as the CLI must make one: exit 2, one line on stderr, no traceback."""
    assert code == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    for w in words:
        assert w in err, err


def _main(args, capsys, monkeypatch):
    """The real entry point in-process: exit code, stdout, stderr."""
    monkeypatch.delenv("BENCHSR_DEBUG", raising=False)
    monkeypatch.setattr(sys, "argv", ["benchsr", *map(str, args)])
    code = 0
    try:
        from benchsr import cli
        cli.main()
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


# ---- a tiny installed plugin for runs in subprocesses (torchrun, Slurm jobs) ----
TINY = '''
import os
import time

import torch
import torch.nn.functional as F
from torch import nn
from benchsr.contracts import Method


class TinySR(Method):
    """A BatchNorm-free net: its data-parallel gradient is exactly the mean of the shards'."""
    name = "tinysr"

    def build(self):
        k = self.ctx.scale
        self.nets["G"] = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(),
                                       nn.Conv2d(8, k * k, 3, padding=1),
                                       nn.PixelShuffle(k)).to(self.ctx.device)
        self.optimizers["G"] = torch.optim.Adam(self.nets["G"].parameters(), lr=1e-3)

    def _sr(self, lr):
        return F.interpolate(lr, scale_factor=self.ctx.scale, mode="bilinear") + self.nets["G"](lr)

    def train_step(self, batch, step):
        time.sleep(float(os.environ.get("TINY_SLEEP_S", "0")))   # a window to stop a job in
        k = self.ctx.scale
        loss = (F.mse_loss(F.avg_pool2d(self._sr(batch.lr), k), batch.lr)
                + F.mse_loss(self._sr(F.avg_pool2d(batch.hr, k)), batch.hr))
        self.ctx.optimize(loss, self.optimizers["G"], step, "G")
        return {"total_g": float(loss)}

    def super_resolve(self, lr):
        return self._sr(lr).clamp(0, 1)


PLUGINS = [TinySR]
'''


def tiny_plugin_env(folder) -> dict:
    """The environment of a subprocess that sees the `tinysr` plugin (a two-conv net)."""
    (folder / "tinysr.py").write_text(TINY)
    fake_distribution(folder, "tinysr", {"tinysr": "tinysr"})
    (folder / "tmp").mkdir()
    return {**os.environ, "PYTHONPATH": f"{folder}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
            "OMP_NUM_THREADS": "1", "TMPDIR": str(folder / "tmp")}


@pytest.fixture
def tiny_env(tmp_path):
    return tiny_plugin_env(tmp_path)


# ---- a one-node Slurm (tests/slurm_cluster.py) ----
REQUIRE_SLURM = "BENCHSR_REQUIRE_SLURM"    # .ci/run sets it: there, a missing cluster fails


@pytest.fixture(scope="session")
def slurm(tmp_path_factory):
    """A one-node Slurm for the session, SLURM_CONF set for this process and its children; the
    daemons stop when the session ends. Where it cannot start, the tests skip with the reason."""
    import slurm_cluster
    why = slurm_cluster.unavailable()
    if why:
        (pytest.fail if os.environ.get(REQUIRE_SLURM) == "1" else pytest.skip)(why)
    folder = tmp_path_factory.mktemp("slurm")
    before = os.environ.get("SLURM_CONF")
    os.environ.update(slurm_cluster.up(folder))
    yield folder
    slurm_cluster.down(folder)
    if before is None:
        os.environ.pop("SLURM_CONF", None)
    else:
        os.environ["SLURM_CONF"] = before


def board_row(board: str, label: str) -> str:
    """A leaderboard.md row as a reader takes it in: its table line and its note under the table
    (`- **label**: ...`, unwrapped)."""
    lines = board.splitlines()
    row = next(line for line in lines if line.startswith(f"| {label} "))
    start = next((i for i, line in enumerate(lines) if line.startswith(f"- **{label}**: ")), None)
    note = ""
    if start is not None:
        end = next((i for i in range(start + 1, len(lines)) if not lines[i].startswith("  ")), len(lines))
        note = " ".join(line.strip() for line in lines[start:end])
    return f"{row} {note}"
