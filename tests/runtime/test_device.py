"""What needs a GPU: autocast with the grad scaler, torch.compile, tiling `auto` on the device,
and a step of every method at paper size. scripts/device_check.sh runs them on the device that
BENCHSR_TEST_DEVICE names (cuda where one is present; else they are skipped), from the data in
BENCHSR_TEST_DATA_DIR; at DEVICE_CHECK_SMOKE=1 it runs them on the CPU at smoke size."""
import math
import os
from pathlib import Path

import pandas as pd
import pytest
import torch

from benchsr import config, registry
from benchsr.evaluation import tiling
from benchsr.run.runner import Runner

DEVICE = os.environ.get("BENCHSR_TEST_DEVICE") or ("cuda" if torch.cuda.is_available() else "")
PROFILE = "paper" if DEVICE == "cuda" else "smoke"
pytestmark = pytest.mark.skipif(not DEVICE, reason="no GPU (scripts/device_check.sh runs these on one)")
LEARNED = [name for name, e in sorted(registry.discover("methods").items())
           if not e.broken and e.cls.inference_network and "axial" in e.cls.planes]
LEARNED_Z = [name for name, e in sorted(registry.discover("methods").items())
             if not e.broken and e.cls.inference_network and "through" in e.cls.planes]


def _resolve(method: str, *sets: str) -> dict:
    cls = registry.get("methods", method)
    return config.resolve(cls, "default", registry.get("datasets", "lung-ct"), PROFILE, [
        f"device={DEVICE}", "train.epochs=1", "train.steps_per_epoch=2", "eval.max_images=1",
        "eval.every=0", "eval.min_input_r=0", *sets])


@pytest.fixture(scope="module")
def lung():
    data_dir = os.environ.get("BENCHSR_TEST_DATA_DIR")
    ds = registry.get("datasets", "lung-ct")
    return ds(_resolve("nearest"), Path(data_dir) if data_dir else None).load()


def _complete(out) -> pd.DataFrame:
    assert out.status == "complete", out.reason
    losses = pd.read_csv(out.run_dir / "losses.csv")
    assert all(math.isfinite(v) for v in losses["total_g"])
    return pd.read_csv(out.run_dir / "metrics.csv")


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_autocast_trains_and_scores(precision, lung, tmp_path):
    if precision == "fp16" and DEVICE != "cuda":
        pytest.skip("fp16 autocast (with its grad scaler) is CUDA-only")
    out = Runner(lung, tmp_path).run(registry.get("methods", "srcyclegan"),
                                     _resolve("srcyclegan", f"precision={precision}"))
    assert _complete(out)["psnr"].notna().all()


def test_compile_trains_and_scores(lung, tmp_path):
    if DEVICE != "cuda":
        pytest.skip("torch.compile on the CPU takes minutes (benchmarks/bench.py measures it)")
    out = Runner(lung, tmp_path).run(registry.get("methods", "esrgan"),
                                     _resolve("esrgan", "runtime.compile=true"))
    assert _complete(out)["psnr"].notna().all()


def test_tiling_auto_plans_from_the_device(lung):
    from benchsr.run.build import _built
    device = torch.device(DEVICE)
    method = _built(registry.get("methods", "srcyclegan"), _resolve("srcyclegan"), device, lung, [])
    p = tiling.plan_for(method, {"tile": "auto", "tile_batch": "auto", "overlap": 0.25},
                        (128, 128), 1, device)
    assert p.batch >= 1 and p.why
    if DEVICE == "cuda":
        assert p.tile == tiling.TILE_GPU


@pytest.mark.parametrize("method", LEARNED)
def test_a_step_of_every_method_at_the_profile_size(method, lung, tmp_path):
    out = Runner(lung, tmp_path).run(registry.get("methods", method), _resolve(method))
    assert _complete(out)["psnr"].notna().all()


@pytest.mark.parametrize("method", LEARNED_Z)
def test_a_step_of_every_through_plane_method_at_the_profile_size(method, tmp_path):
    data_dir = os.environ.get("BENCHSR_TEST_DATA_DIR")
    ds = registry.get("datasets", "lung-ct")
    through = ds(_resolve("nearest", "data.plane=through"), Path(data_dir) if data_dir else None).load()
    out = Runner(through, tmp_path).run(registry.get("methods", method),
                                        _resolve(method, "data.plane=through"))
    assert _complete(out)["psnr"].notna().all()
