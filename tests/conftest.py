import pytest

from benchsr import config, registry


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
