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
