import os

import pytest

from benchsr import config, registry
from benchsr.cache import CACHE_ENV


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


def smoke_config(method: str, preset: str = "default", dataset_cls=None, extra=()):
    dataset_cls = dataset_cls or registry.get("datasets", "lung-ct")
    return config.resolve(registry.get("methods", method), preset, dataset_cls, "smoke", list(extra))


@pytest.fixture(scope="session")
def smoke_out(tmp_path_factory):
    """`benchsr run --methods all --profile smoke` once for the session: the run folders and
    the leaderboard that tests read."""
    from typer.testing import CliRunner
    from benchsr.cli import app
    out = tmp_path_factory.mktemp("results")
    res = CliRunner().invoke(app, ["run", "--methods", "all", "--profile", "smoke", "--out", str(out)])
    assert res.exit_code == 0, res.output
    return out


def fake_distribution(folder, name: str, methods: dict[str, str]) -> None:
    """An installed-looking distribution in `folder` (put it on sys.path or PYTHONPATH): a
    .dist-info whose entry points register `methods` (entry name -> module) as benchsr.methods."""
    dist = folder / f"{name}-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[benchsr.methods]\n" + "".join(f"{k} = {v}\n" for k, v in methods.items()))
