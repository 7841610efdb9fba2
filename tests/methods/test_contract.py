"""The plugin contract (benchsr/contracts.py), checked on every discovered plugin, built-in or
entry point, at smoke size: no list of methods or datasets is written here."""
import pytest
import torch

from benchsr import config, registry
from benchsr.contracts import RunContext, TrainBatch

from conftest import smoke_config

METHODS = sorted(n for n, e in registry.discover("methods").items() if not e.broken)
DATASETS = sorted(n for n, e in registry.discover("datasets").items() if not e.broken)


def _build(name, scale=4):
    cls = registry.get("methods", name)
    cfg = smoke_config(name)
    ctx = RunContext(torch.device("cpu"), scale=scale, epochs=1, total_steps=2)
    method = cls(cfg, ctx)
    torch.manual_seed(0)
    method.build()
    return method


def _batch(method):
    p, k = method.cfg["train"]["lr_patch"], method.ctx.scale
    g = torch.Generator().manual_seed(0)
    hr = torch.rand(2, 1, p * k, p * k, generator=g)
    return TrainBatch(method.ctx.degrade(hr), hr, paired=True)


@pytest.mark.parametrize("name", METHODS)
def test_method_contract(name, monkeypatch):
    method = _build(name)
    if method.data != "none":
        calls = []
        real = RunContext.optimize
        monkeypatch.setattr(RunContext, "optimize",
                            lambda self, loss, opt, step, what="loss": calls.append(what) or
                            real(self, loss, opt, step, what))
        losses = method.train_step(_batch(method), 0)
        assert calls, "train_step must step its optimisers through ctx.optimize"
        assert losses and all(isinstance(v, float) and torch.isfinite(torch.tensor(v))
                              for v in losses.values()), losses
    method.train(False)
    with torch.no_grad():
        out = method.super_resolve(torch.rand(1, 1, 12, 16))
    assert out.shape == (1, 1, 48, 64)
    assert torch.isfinite(out).all() and 0 <= float(out.min()) and float(out.max()) <= 1
    twin = _build(name)
    twin.load_state_dict(method.state_dict())
    twin.train(False)
    lr = torch.rand(1, 1, 12, 12)
    with torch.no_grad():
        assert torch.equal(twin.super_resolve(lr), method.super_resolve(lr))
        # several tiles per forward (eval.tile_batch): each comes out as it would alone
        tiles = torch.rand(3, 1, 12, 12)
        together = method.super_resolve(tiles)
        alone = torch.cat([method.super_resolve(t[None]) for t in tiles])
        assert float((together - alone).abs().max()) < 1e-4


@pytest.mark.parametrize("name", DATASETS)
def test_dataset_contract(name, request):
    cls = registry.get("datasets", name)
    data_dir = request.getfixturevalue("covid_tree") if cls.needs_data_dir else None
    cfg = config.resolve(registry.get("methods", "nearest"), "default", cls, "smoke", [])
    data = cls(cfg, data_dir).load()
    k, p = data.scale, cfg["train"]["lr_patch"]
    assert k == cls.scale and data.protocol["scale"] == k and data.protocol["degradation"]
    assert data.train_lr.images.shape[1] >= p and data.train_hr.images.shape[1] >= p * k
    for img in data.eval_images:
        if img.hr is not None:
            assert img.hr.shape == (img.lr.shape[0] * k, img.lr.shape[1] * k), img.name
    for key in ("window_hu", "hr_window", "hr_units"):   # what `benchsr infer` reads
        assert key in data.protocol, key
    # smoke runs everywhere: every method's smoke patch fits this dataset's smoke images
    # (ESRGAN's 32 LR px at x8 asked for 256 HR px of ct-uct's 192)
    from benchsr.run.build import check_fits
    for method in METHODS:
        method_cls = registry.get("methods", method)
        for preset in config.plugin_presets(method_cls).get("presets") or {"default": {}}:
            check_fits(config.resolve(method_cls, preset, cls, "smoke", []), data)


def test_create_method_refuses_a_scale_its_dataset_does_not_have():
    import pytest
    from benchsr.api import create_method
    from benchsr.contracts import BenchError
    with pytest.raises(BenchError, match="lung-ct is a 4x dataset"):
        create_method("srcyclegan", scale=8, dataset="lung-ct")
    assert create_method("srcyclegan", scale=8, dataset="ct-uct").ctx.scale == 8
