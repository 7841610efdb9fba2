"""`--launcher slurm` on a real one-node Slurm (tests/slurm_cluster.py, the `slurm` fixture): a
sweep equals the same runs made locally; `benchsr status` reads the scheduler; scancel leaves a
run that --resume finishes, and a requeued job continues its own run, both identical to an
uninterrupted run; a job of two tasks is a data-parallel run; what sbatch and the partition
refuse is one line, exit 2, nothing written."""
import json
import os
import subprocess
import sys
import time

import pandas as pd
import pytest

from benchsr import registry
from benchsr.run.runner import Runner
from conftest import _main, smoke_config, tiny_plugin_env

pytestmark = pytest.mark.slow

TINY = ["--methods", "tinysr", "--profile", "smoke", "--set", "train.batch_size=4",
        "--set", "train.epochs=3", "--set", "train.steps_per_epoch=2", "--set", "eval.max_images=3"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The tinysr plugin's environment, and its two seeds run here, uninterrupted."""
    env = tiny_plugin_env(tmp_path_factory.mktemp("tiny"))
    ref = tmp_path_factory.mktemp("uninterrupted")
    whole = _cli(["run", *TINY, "--seeds", "0,1", "--out", str(ref)], env)
    assert whole.returncode == 0, whole.stderr[-2000:]
    runs = {json.loads((p / "manifest.json").read_text())["seed"]: p
            for p in (ref / "runs" / "lung-ct" / "tinysr").iterdir()}
    return env, runs


def _cli(args, env=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "benchsr.cli", *args], capture_output=True,
                          text=True, env=env or {**os.environ}, timeout=timeout)


def _table(out, env=None) -> list[dict]:
    from benchsr.run.launch import status
    return status(out)


def _wait_for(predicate, what: str, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def _same(a, b, exact=True):
    for name in ("metrics.csv", "losses.csv"):
        if not (a / name).exists():
            continue
        x = pd.read_csv(a / name).drop(columns=["ms"], errors="ignore")
        y = pd.read_csv(b / name).drop(columns=["ms"], errors="ignore")
        pd.testing.assert_frame_equal(x, y, check_exact=exact)


def test_a_sweep_of_two_methods_and_two_seeds_equals_the_runs_made_here(slurm, tmp_path, lung_smoke,
                                                                        capsys, monkeypatch):
    out = tmp_path / "res"
    code, said, err = _main(["run", "--methods", "bicubic,nearest", "--seeds", "0,1", "--profile",
                             "smoke", "--launcher", "slurm", "--out", out], capsys, monkeypatch)
    assert code == 0, said[-2000:] + err[-2000:]
    # no partition and no GPU count given: the cluster's default partition, its (absent) GPUs
    assert "partition debug (the cluster's default); no GPUs on it" in said
    assert "Bypassing" not in err + said           # no sacct noise
    runs = {}
    for manifest in out.glob("runs/lung-ct/*/*/manifest.json"):
        m = json.loads(manifest.read_text())
        assert m["status"] == "complete" and m["job"]["launcher"] == "slurm"
        runs[m["label"], m["seed"]] = manifest.parent
    assert sorted(runs) == [("bicubic", 0), ("bicubic", 1), ("nearest", 0), ("nearest", 1)]
    assert "| nearest" in (out / "leaderboard.md").read_text()
    here = tmp_path / "here"
    for (label, seed), run_dir in runs.items():
        local = Runner(lung_smoke, here).run(registry.get("methods", label),
                                             smoke_config(label, extra=[f"seed={seed}"]))
        _same(run_dir, local.run_dir)
    assert [line["status"] for line in _table(out)] == ["complete"] * 4


def _job_of(out, seed):
    for manifest in out.glob("runs/lung-ct/tinysr/*/manifest.json"):
        m = json.loads(manifest.read_text())
        if m["seed"] == seed and (manifest.parent / "checkpoints" / "last.pt").exists():
            return manifest.parent, m["job"]["id"]
    return None


def _status_of(out, run_dir):
    return next((line["status"], line["reason"]) for line in _table(out)
                if line["run"] == run_dir.name)


def test_scancel_then_resume_and_a_requeue_both_end_as_an_uninterrupted_run(slurm, tmp_path, tiny,
                                                                           capsys, monkeypatch):
    (tiny_env, refs), out = tiny, tmp_path / "res"
    slow = {**tiny_env, "TINY_SLEEP_S": "0.5"}    # sleeps between steps: the numbers are the same
    # one job held back by the scheduler: status says it is queued, and why
    code, _, err = _main(["run", "--methods", "nearest", "--profile", "smoke", "--launcher", "slurm",
                          "--slurm-option", "begin=now+1hour", "--no-wait", "--out", out],
                         capsys, monkeypatch)
    assert code == 0, err[-2000:]
    res = _cli(["run", *TINY, "--seeds", "0,1", "--launcher", "slurm", "--no-wait",
                "--out", str(out)], slow)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "submitted; `benchsr status" in res.stdout
    queued = [line for line in _table(out) if line["label"] == "nearest"]
    assert [(q["status"], "BeginTime" in q["reason"]) for q in queued] == [("queued", True)]

    cancelled, job0 = _wait_for(lambda: _job_of(out, 0), "seed 0's first checkpoint")
    requeued, job1 = _wait_for(lambda: _job_of(out, 1), "seed 1's first checkpoint")
    assert _status_of(out, cancelled) == ("running", f"job {job0}")    # from squeue
    subprocess.run(["scancel", job0], check=True)
    subprocess.run(["scontrol", "requeue", job1], check=True)
    assert _wait_for(lambda: _status_of(out, cancelled)[0] == "stopped", "the cancelled run")
    assert "--resume continues it" in _status_of(out, cancelled)[1]
    assert _wait_for(lambda: _status_of(out, requeued)[0] == "requeued", "the requeued job")
    # Slurm holds a requeued job back for about two minutes: an operator releases it
    subprocess.run(["scontrol", "update", f"jobid={job1}", "StartTime=now"], check=True)

    again = _cli(["run", *TINY, "--seeds", "0", "--launcher", "slurm", "--resume",
                  "--out", str(out)], tiny_env)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    _wait_for(lambda: _status_of(out, requeued)[0] == "complete", "the requeued job's run", 180)
    for seed, run_dir in ((0, cancelled), (1, requeued)):
        manifest = json.loads((run_dir / "manifest.json").read_text())
        assert manifest["status"] == "complete" and manifest["resumed_from_epoch"] >= 1
        _same(refs[seed], run_dir)
    assert len(list(out.glob("runs/lung-ct/tinysr/*"))) == 2     # no second run of either seed
    subprocess.run(["scancel", "-u", "root"], check=True)


def test_a_job_of_two_tasks_is_one_data_parallel_run(slurm, tmp_path, tiny):
    (tiny_env, refs), out = tiny, tmp_path / "two"
    two = _cli(["run", *TINY, "--launcher", "slurm", "--slurm-tasks-per-job", "2", "--out",
                str(out)], {**tiny_env, "BENCHSR_GRAD_SYNC": "ddp"})
    assert two.returncode == 0, two.stdout[-2000:] + two.stderr[-2000:]
    assert "2 task(s) per job, data-parallel" in two.stdout
    (run,) = (out / "runs" / "lung-ct" / "tinysr").iterdir()    # rank 0 alone wrote
    manifest = json.loads((run / "manifest.json").read_text())
    assert (manifest["world_size"], manifest["grad_sync"]) == (2, "ddp")
    la, lb = pd.read_csv(refs[0] / "losses.csv"), pd.read_csv(run / "losses.csv")
    pd.testing.assert_series_equal(la["total_g"], lb["total_g"], rtol=1e-4)   # as under torchrun
    ma, mb = pd.read_csv(refs[0] / "metrics.csv"), pd.read_csv(run / "metrics.csv")
    assert list(ma["image"]) == list(mb["image"]) and len(ma) == 3
    assert (ma["psnr"] - mb["psnr"]).abs().max() < 1e-3


def _refused(args, said, tmp_path, capsys, monkeypatch):
    out = tmp_path / "res"
    code, _, err = _main(["run", "--methods", "nearest", "--profile", "smoke", "--launcher",
                          "slurm", *args, "--out", out], capsys, monkeypatch)
    assert code == 2 and said in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()
    queued = subprocess.run(["squeue", "-h"], capture_output=True, text=True, check=True).stdout
    assert not queued.strip()


def test_what_the_cluster_refuses_is_one_line_and_nothing_is_written(slurm, tmp_path, capsys,
                                                                    monkeypatch):
    where = (tmp_path, capsys, monkeypatch)
    _refused(["--slurm-gpus-per-job", "1"], "partition debug offers no GPUs (sinfo shows no gpu "
             "gres): --slurm-gpus-per-job 0 runs each job on its CPUs", *where)
    _refused(["--slurm-partition", "nosuch"], "--slurm-partition nosuch: no such partition "
             "(sinfo lists debug)", *where)
    # over the partition's limit: sbatch's own refusal, in its words
    _refused(["--slurm-time", "100000"], "the job of nearest:default was refused, nothing was "
             "launched: sbatch: error: Batch job submission failed: Requested time limit is "
             "invalid", *where)
    # a site option passes through to sbatch, which refuses it there
    _refused(["--slurm-option", "mem=100000G"], "sbatch: error: Memory specification can not be "
             "satisfied", *where)
