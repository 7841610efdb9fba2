"""Tiled super-resolution through MONAI: the old tiling reproduced, tiles per forward, blends,
and `auto`'s choice per device."""
import pytest
import torch

from benchsr import config, registry
from benchsr.evaluation import tiling
from benchsr.api import create_method
from benchsr.contracts import BenchError


@torch.no_grad()
def _old_tiled_sr(method, lr, scale, tile, overlap):
    """benchsr's tiling before MONAI: a loop over tiles, every tile weighing the same."""
    def starts(length):
        s = list(range(0, max(length - tile, 0) + 1, stride))
        return s + [length - tile] if s[-1] + tile < length else s
    _, c, h, w = lr.shape
    stride = max(1, int(round(tile * (1 - overlap))))
    out = torch.zeros(1, c, h * scale, w * scale)
    weight = torch.zeros_like(out)
    for y in starts(h):
        for x in starts(w):
            sr = method.super_resolve(lr[:, :, y:y + tile, x:x + tile]).float().clamp(0, 1)
            out[:, :, y * scale:(y + tile) * scale, x * scale:(x + tile) * scale] += sr
            weight[:, :, y * scale:(y + tile) * scale, x * scale:(x + tile) * scale] += 1
    return out / weight


@pytest.fixture(scope="module")
def g1():
    torch.manual_seed(0)
    method = create_method("srcyclegan", scale=4)    # smoke G1: InstanceNorm, tile-dependent
    method.train(False)
    return method


@pytest.mark.parametrize("tile, overlap", [(32, 0.25), (48, 0.5), (40, 0.25)])
def test_mean_blend_is_the_old_tiling(g1, tile, overlap):
    lr = torch.rand(1, 1, 70, 90)
    new = tiling.tiled_sr(g1, lr, 4, tile, overlap)
    old = _old_tiled_sr(g1, lr, 4, tile, overlap)
    assert new.shape == (1, 1, 280, 360)
    assert float((new - old).abs().max()) < 1e-5
    # InstanceNorm makes tiles matter: the whole image in one forward is another result
    assert float((tiling.tiled_sr(g1, lr, 4, 0, overlap) - new).abs().max()) > 1e-3


def test_tiles_per_forward_change_nothing(g1):
    lr = torch.rand(1, 1, 64, 64)
    one = tiling.tiled_sr(g1, lr, 4, 32, 0.25, batch=1)
    many = tiling.tiled_sr(g1, lr, 4, 32, 0.25, batch=4)
    assert float((one - many).abs().max()) < 1e-5


def test_blends_weigh_the_overlap_differently_but_keep_a_pixelwise_method_exact():
    nearest = create_method("nearest", scale=4)
    lr = torch.rand(1, 1, 50, 60)
    whole = tiling.tiled_sr(nearest, lr, 4, 0, 0.25)
    for blend in tiling.BLENDS:
        tiled = tiling.tiled_sr(nearest, lr, 4, 24, 0.5, batch=3, blend=blend)
        assert float((tiled - whole).abs().max()) < 1e-6, blend
    window = tiling.tent(8)
    assert window.shape == (8, 8) and float(window.min()) == pytest.approx(1 / 64)
    assert float(window.max()) == pytest.approx((3.5 / 4) ** 2)


def test_gaussian_and_linear_blends_differ_from_the_mean_on_a_tile_dependent_net(g1):
    lr = torch.rand(1, 1, 64, 64)
    mean = tiling.tiled_sr(g1, lr, 4, 32, 0.5)
    for blend in ("gaussian", "linear"):
        assert float((tiling.tiled_sr(g1, lr, 4, 32, 0.5, blend=blend) - mean).abs().max()) > 1e-4


def test_auto_on_the_cpu_takes_the_fastest_measured_tiling_that_fits(g1, monkeypatch):
    cpu = torch.device("cpu")
    # a cache-bound CPU: time grows faster than the pixel count, so 128² tiles beat the whole
    monkeypatch.setattr(tiling, "time_forward", lambda m, shape, c, d: (shape[0] * shape[1]) ** 1.3)
    p = tiling.plan(g1, (512, 512), 1, cpu, 0.25)
    costs = {t: tiling.n_tiles(512, 512, t, 0.25) * ((t or 512) ** 2) ** 1.3
             for t in (*tiling.CPU_CANDIDATES, 0)}
    assert (p.tile, p.batch) == (min(costs, key=costs.get), 1) and "measured for 512x512" in p.why
    assert costs[p.tile] < 0.9 * costs[tiling.LEGACY_TILE]
    # within the margin of the old default's 128² tiles: keep them (and their outputs)
    per_96 = 0.95 * 25 / tiling.n_tiles(512, 512, 96, 0.25)       # 96² tiles 5 % faster in all
    monkeypatch.setattr(tiling, "time_forward",
                        lambda m, shape, c, d: {128: 1.0, 96: per_96}.get(shape[0], 100.0))
    assert tiling.plan(g1, (512, 512), 1, cpu, 0.25).tile == tiling.LEGACY_TILE
    # an image no larger than one old tile was one forward before: 96² tiles 5 % faster lose too
    per_96 = 0.95 / tiling.n_tiles(128, 128, 96, 0.25)
    monkeypatch.setattr(tiling, "time_forward",
                        lambda m, shape, c, d: {128: 1.0, 96: per_96}.get(shape[0], 100.0))
    assert tiling.plan(g1, (128, 128), 1, cpu, 0.25).tile == 0
    # a fixed cost per forward: one forward of the whole image wins
    monkeypatch.setattr(tiling, "time_forward", lambda m, shape, c, d: 1.0 + 1e-9 * shape[0] * shape[1])
    assert tiling.plan(g1, (512, 512), 1, cpu, 0.25).tile == 0
    # memory for a 100² image only: every candidate above it is left out
    per_pixel = tiling.bytes_per_lr_pixel(g1, 1, cpu) * tiling.PEAK_FACTOR
    monkeypatch.setattr(tiling, "free_memory", lambda d: per_pixel * 100 ** 2 / tiling.MEMORY_SHARE)
    assert tiling.plan(g1, (512, 512), 1, cpu, 0.25).tile == 96
    monkeypatch.setattr(tiling, "free_memory", lambda d: per_pixel * 40 ** 2 / tiling.MEMORY_SHARE)
    assert tiling.plan(g1, (512, 512), 1, cpu, 0.25).tile == 32


def test_the_tile_count_is_what_monai_runs():
    assert tiling.n_tiles(512, 512, 128, 0.25) == 25        # stride 96: 0, 96, ..., 384
    assert tiling.n_tiles(512, 512, 0, 0.25) == 1
    assert tiling.n_tiles(70, 90, 32, 0.5) == 4 * 5


def test_auto_on_a_gpu_batches_the_tiles_that_fit(g1, monkeypatch):
    per_pixel = 1000.0
    monkeypatch.setattr(tiling, "bytes_per_lr_pixel", lambda m, c, d: per_pixel)
    tile_bytes = per_pixel * tiling.PEAK_FACTOR * 128 ** 2
    monkeypatch.setattr(tiling, "free_memory", lambda d: 7.5 * tile_bytes / tiling.MEMORY_SHARE)
    gpu = torch.device("cuda")
    p = tiling.plan(g1, (512, 512), 1, gpu, 0.25)
    assert (p.tile, p.batch) == (128, 7)                        # 7 of the 25 tiles fit
    monkeypatch.setattr(tiling, "free_memory", lambda d: 1e15)
    assert tiling.plan(g1, (512, 512), 1, gpu, 0.25).batch == 25   # never more than there are


def test_eval_keys_take_auto_and_refuse_nonsense():
    cls, ds = registry.get("methods", "bicubic"), registry.get("datasets", "lung-ct")
    cfg = config.resolve(cls, "default", ds, "smoke", ["eval.tile=auto", "eval.tile_batch=auto",
                                                       "eval.blend=gaussian"])
    assert (cfg["eval"]["tile"], cfg["eval"]["tile_batch"], cfg["eval"]["blend"]) == ("auto", "auto", "gaussian")
    for bad, words in (("eval.blend=cubic", "mean, gaussian, linear"),
                       ("eval.tile_batch=0", "out of range"), ("eval.tile=big", "or auto")):
        with pytest.raises(BenchError, match=words):
            config.resolve(cls, "default", ds, "smoke", [bad])
    with pytest.raises(BenchError, match="--tile-batch x"):
        tiling.tiling_request(tile_batch="x")


# the largest mean change that tiling may make (64² LR tiles, overlap 0.25, against whole
# slices) for a method that does not declare tiles_change_output: 2 HU in a 1500 HU window
TILE_FREE_BOUND = 2 / 1500


def _smooth_slice(side: int = 160) -> torch.Tensor:
    from scipy.ndimage import gaussian_filter
    rng = torch.Generator().manual_seed(0)
    img = torch.from_numpy(gaussian_filter(torch.rand(side, side, generator=rng).numpy(), 3))
    return ((img - img.min()) / (img.max() - img.min())).float()[None, None]


def test_every_method_that_tiling_changes_declares_it():
    """Measured, per axial plugin at its smoke initialisation: a method whose output moves by more
    than the bound between whole slices and tiles declares tiles_change_output (so infer's auto
    never picks its tiling by timing); one that declares nothing stays within the bound."""
    lr, measured = _smooth_slice(), {}
    for name, entry in sorted(registry.discover("methods").items()):
        if entry.broken or "axial" not in entry.cls.planes:
            continue
        torch.manual_seed(0)
        method = create_method(name, scale=4)
        method.train(False)
        whole = tiling.tiled_sr(method, lr, 4, 0, 0.25)
        change = float((tiling.tiled_sr(method, lr, 4, 64, 0.25) - whole).abs().mean())
        measured[name] = change
        assert (change > TILE_FREE_BOUND) == entry.cls.tiles_change_output, (name, change)
    assert measured["srcyclegan"] > 5 * TILE_FREE_BOUND and measured["nearest"] == 0


def test_auto_for_a_tile_dependent_method_is_the_plan_it_was_scored_with(g1, monkeypatch):
    """However the timings fall (a busy machine), auto gives SR-CycleGAN the tiling of its run's
    evaluation, and says why; a plan that does not fit is refused, never silently changed."""
    cpu = torch.device("cpu")
    ev = {"tile": "auto", "tile_batch": "auto", "overlap": 0.25}
    for favourite in (128, 0):      # timing would pick 128² tiles, then whole images
        monkeypatch.setattr(tiling, "time_forward",
                            lambda m, shape, c, d, f=favourite: 1.0 if shape[0] == (f or 512) else 9.0)
        p = tiling.plan_for(g1, ev, (512, 512), 1, cpu)
        assert (p.tile, p.batch) == (g1.cfg["eval"]["tile"], 1) == (0, 1)
        assert "as the run was scored (eval.tile 0)" in p.why and "depends on the tiling" in p.why
    monkeypatch.setitem(g1.cfg["eval"], "tile", 96)
    assert tiling.plan_for(g1, ev, (512, 512), 1, cpu).tile == 96
    monkeypatch.setitem(g1.cfg["eval"], "tile", 0)
    monkeypatch.setattr(tiling, "free_memory", lambda d: 1000.0)
    with pytest.raises(BenchError, match="give --tile N"):
        tiling.plan_for(g1, ev, (512, 512), 1, cpu)
    # a tile given by hand is that tile, and the message says it was asked for
    p = tiling.plan_for(g1, {**ev, "tile": 0}, (512, 512), 1, cpu)
    assert (p.tile, p.why) == (0, "whole slices as asked, one per forward (CPU)")
    p = tiling.plan_for(g1, {**ev, "tile": 128}, (512, 512), 1, cpu)
    assert (p.tile, p.why) == (128, "128² tiles as asked, one per forward (CPU)")
