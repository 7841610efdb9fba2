"""The plugin contract (benchsr/contracts.py), checked on every discovered plugin, built-in or
entry point, at smoke size, by the code `benchsr check` runs (benchsr/run/check.py): no list of
methods or datasets is written here."""
import pytest

from benchsr import registry
from benchsr.run import check

METHODS = sorted(n for n, e in registry.discover("methods").items() if not e.broken)
DATASETS = sorted(n for n, e in registry.discover("datasets").items() if not e.broken)


def _failed(findings):
    return [f"{f.check}: {f.detail}" for f in findings if not f.ok]


@pytest.mark.parametrize("name", METHODS)
def test_method_contract(name):
    findings = check.check_method(name)
    assert not _failed(findings), _failed(findings)
    done = {f.check for f in findings}
    planes = registry.get("methods", name).planes
    assert "state_dict round trip" in done
    assert ("output shape and range" in done) == ("axial" in planes)
    assert ("through-plane output shape and range" in done) == ("through" in planes)
    trains = registry.get("methods", name).data != "none"
    assert ("one training step through ctx.optimize" in done) == trains


@pytest.mark.parametrize("name", DATASETS)
def test_dataset_contract(name, request):
    # smoke runs everywhere: every method's smoke patch fits each dataset's smoke images
    # (ESRGAN's 32 LR px at x8 asked for 256 HR px of ct-uct's 192)
    cls = registry.get("datasets", name)
    data_dir = request.getfixturevalue("covid_tree") if cls.needs_data_dir else None
    findings = check.check_dataset(name, data_dir)
    assert not _failed(findings), _failed(findings)
    done = {f.check for f in findings}
    assert "every method's smoke patch fits" in done
    assert ("through-plane slabs: shapes, disjoint from training" in done) == \
        check.has_through_plane(cls)


def test_the_through_plane_check_finds_a_validation_slab_that_is_scored(monkeypatch):
    lung = registry.get("datasets", "lung-ct")
    assert "3 evaluation and 3 validation slabs" in check._through_slabs(lung, None)
    honest = lung._through

    def leaky(self, vol, names):
        data = honest(self, vol, names)
        data.val_volumes = data.eval_volumes[:1]
        return data
    monkeypatch.setattr(lung, "_through", leaky)
    with pytest.raises(AssertionError, match="validation slab holds an evaluation slice"):
        check._through_slabs(lung, None)


def test_create_method_refuses_a_scale_its_dataset_does_not_have():
    from benchsr.api import create_method
    from benchsr.contracts import BenchError
    with pytest.raises(BenchError, match="lung-ct is a 4x dataset"):
        create_method("srcyclegan", scale=8, dataset="lung-ct")
    assert create_method("srcyclegan", scale=8, dataset="ct-uct").ctx.scale == 8


def test_every_preset_resolves_within_its_plugins_limits():
    """presets.yaml's `limits:` name keys the plugin has, and no preset, profile or scale
    breaks them (config.check_limits runs in every resolve)."""
    from benchsr import config
    for name in METHODS:
        cls = registry.get("methods", name)
        for preset in config.preset_names(cls):
            for dataset in ("lung-ct", "ct-uct"):
                for profile in config.PROFILES:
                    config.resolve(cls, preset, registry.get("datasets", dataset), profile, [])


def test_a_limit_on_a_key_the_plugin_lacks_is_the_plugins_error():
    from benchsr import config
    from benchsr.contracts import BenchError
    with pytest.raises(BenchError, match="limits 'model.nope', which it does not have"):
        config.check_limits({"model": {"lr": 1.0}}, {"model.nope": {"min": 0}}, "toy")
    with pytest.raises(BenchError, match=r"must be < 1; toy"):
        config.check_limits({"model": {"beta": 1.0}}, {"model.beta": {"below": 1}}, "toy")
