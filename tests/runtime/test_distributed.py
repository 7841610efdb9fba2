"""`benchsr run` under torchrun: 2 CPU processes on gloo match one process with the same global
batch, and only rank 0 writes."""
import json
import os
import subprocess
import sys

import pandas as pd
import pytest


ARGS = ["run", "--methods", "tinysr", "--profile", "smoke", "--set", "train.batch_size=4",
        "--set", "train.epochs=2", "--set", "train.steps_per_epoch=3", "--set", "eval.max_images=3"]


def _single_run(out):
    (run,) = list((out / "runs" / "lung-ct" / "tinysr").iterdir())
    return run


@pytest.mark.slow
def test_two_gloo_ranks_equal_one_process(tiny_env, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    res = subprocess.run([sys.executable, "-m", "benchsr.cli", *ARGS, "--out", str(one)],
                         env=tiny_env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    res = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                          "--nproc_per_node=2", "-m", "benchsr.cli", *ARGS, "--out", str(two)],
                         env={**tiny_env, "BENCHSR_GRAD_SYNC": "ddp"}, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    a, b = _single_run(one), _single_run(two)               # rank 0 alone made a run folder
    manifest = json.loads((b / "manifest.json").read_text())
    assert (manifest["world_size"], manifest["grad_sync"]) == (2, "ddp")   # one DDP per net
    la, lb = pd.read_csv(a / "losses.csv"), pd.read_csv(b / "losses.csv")
    pd.testing.assert_series_equal(la["total_g"], lb["total_g"], rtol=1e-4)
    ma, mb = pd.read_csv(a / "metrics.csv"), pd.read_csv(b / "metrics.csv")
    assert list(ma["image"]) == list(mb["image"]) and len(ma) == 3   # all images, in order
    assert (ma["psnr"] - mb["psnr"]).abs().max() < 1e-3            # dB
    assert (ma["ssim"] - mb["ssim"]).abs().max() < 1e-5
    assert not list((tmp_path / "tmp").glob("benchsr-rank*"))   # rank 1's scratch is removed


@pytest.mark.slow
def test_a_gan_under_per_net_ddp_equals_the_flat_all_reduce(tmp_path):
    """SR-CycleGAN runs D on real and fake before one backward and freezes both Ds in the
    generator's update: per-net DDP must give the flat all-reduce's losses and scores."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    runs = {}
    for mode in ("ddp", "flat"):
        out = tmp_path / mode
        res = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                              "--nproc_per_node=2", "-m", "benchsr.cli", "run", "--methods",
                              "srcyclegan", "--profile", "smoke", "--set", "train.batch_size=4",
                              "--set", "train.steps_per_epoch=3", "--out", str(out)],
                             env={**env, "BENCHSR_GRAD_SYNC": mode}, capture_output=True,
                             text=True, timeout=300)
        assert res.returncode == 0, res.stderr[-3000:]
        (runs[mode],) = list((out / "runs" / "lung-ct" / "srcyclegan").iterdir())
        assert json.loads((runs[mode] / "manifest.json").read_text())["grad_sync"] == mode
    la, lb = (pd.read_csv(runs[m] / "losses.csv") for m in ("ddp", "flat"))
    assert len(la) == 6
    pd.testing.assert_frame_equal(la, lb, rtol=1e-5)
    ma, mb = (pd.read_csv(runs[m] / "metrics.csv") for m in ("ddp", "flat"))
    assert (ma["psnr"] - mb["psnr"]).abs().max() < 1e-4


def test_an_unknown_grad_sync_is_a_clear_error(monkeypatch):
    from benchsr.runtime import distributed
    from benchsr.contracts import BenchError
    monkeypatch.setenv("BENCHSR_GRAD_SYNC", "ring")
    with pytest.raises(BenchError, match="BENCHSR_GRAD_SYNC=ring: expected ddp or flat"):
        distributed.grad_sync()
