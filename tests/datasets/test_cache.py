"""The volume cache: entries are reused, and a damaged one is rebuilt rather than trusted."""
import json
import logging

import numpy as np
import pytest

from benchsr.data import cache


@pytest.mark.parametrize("damage", ["zeroed", "truncated", "old index"])
def test_a_damaged_cache_entry_is_rebuilt_with_a_warning(damage, tmp_path, monkeypatch, caplog):
    """A zeroed norm.npy used to give a run other metrics, and a truncated one failed every run
    until it was deleted by hand."""
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path / "cache"))
    source = tmp_path / "scan.bin"
    source.write_bytes(b"a scan")
    norm = np.linspace(0, 1, 4096, dtype=np.float32).reshape(4, 32, 32)
    builds = []

    def build():
        builds.append(1)
        return {"norm": norm}
    first = cache.cached(source, {"w": 1}, build)
    again = cache.cached(source, {"w": 1}, build)
    assert len(builds) == 1 and np.array_equal(again["norm"], norm)
    (entry,) = [p for p in (tmp_path / "cache").iterdir() if p.is_dir()]
    del first, again
    path = entry / "norm.npy"
    if damage == "zeroed":
        raw = path.read_bytes()
        path.write_bytes(raw[:128] + bytes(len(raw) - 128))      # header kept, data zeroed
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:1000])
    else:
        (entry / "index.json").write_text(json.dumps(["norm"]))
    with caplog.at_level(logging.WARNING, logger="benchsr"):
        fixed = cache.cached(source, {"w": 1}, build)
    assert len(builds) == 2 and np.array_equal(fixed["norm"], norm)
    assert any("rebuilt" in r.getMessage() for r in caplog.records)
    assert cache.cached(source, {"w": 1}, build) is not None and len(builds) == 2


def test_lung_ct_degrades_once_then_reads_the_cache(tmp_path, monkeypatch):
    """Every process that loads lung-ct paid seconds to degrade its 64 slices again; the second
    load now reads the cache, and gives the same arrays the degradation makes."""
    import sys
    from benchsr import config, registry
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path))
    cls = registry.get("datasets", "lung-ct")
    lung = sys.modules[cls.__module__]
    calls = []
    real = lung.degrade
    monkeypatch.setattr(lung, "degrade", lambda *a, **k: calls.append(1) or real(*a, **k))
    cfg = config.resolve(registry.get("methods", "nearest"), "default", cls, "smoke", [])
    first = cls(cfg).load()
    assert len(calls) == 64 + 133 + 191          # every slice of the three patients, once
    again = cls(cfg).load()
    assert len(calls) == 64 + 133 + 191          # nothing degraded the second time
    ev = again.eval_images[0]
    assert np.array_equal(ev.lr, real(ev.hr, 4, cfg["data"]["degradation"]))
    for a, b in zip(first.train_lr.images.arrays, again.train_lr.images.arrays):
        assert np.array_equal(a, b)
    assert again.metadata == first.metadata and again.protocol == first.protocol
