"""A sweep through submitit's local executor: one job per (method, seed), each its own run
folder in the shared results root, one leaderboard at the end, and `benchsr status`."""
import json
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_a_local_launch(tmp_path):
    """One job through submitit's local executor (tests/run/test_slurm.py sweeps two methods by
    two seeds on Slurm, through the same launch code)."""
    out = tmp_path / "res"
    res = subprocess.run([sys.executable, "-m", "benchsr.cli", "run", "--methods", "nearest",
                          "--seeds", "1", "--profile", "smoke", "--launcher", "local", "--jobs", "2",
                          "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    (manifest,) = [json.loads(p.read_text()) for p in out.glob("runs/lung-ct/*/*/manifest.json")]
    assert (manifest["label"], manifest["seed"], manifest["job"]["launcher"]) == ("nearest", 1, "local")
    assert (out / "leaderboard.md").is_file() and "| nearest" in (out / "leaderboard.md").read_text()
    (record,) = list(out.glob("launch/*/jobs.json"))
    assert [j["launcher"] for j in json.loads(record.read_text())] == ["local"]
    from typer.testing import CliRunner
    from benchsr.cli.main import app
    st = CliRunner().invoke(app, ["status", str(out)], env={"COLUMNS": "200"})
    assert st.exit_code == 0 and st.output.count("complete") == 1, st.output


# ---- the Slurm queries, without a cluster (tests/run/test_slurm.py runs them on one) ----
from benchsr.errors import BenchError  # noqa: E402
from benchsr.run import launch, slurm  # noqa: E402

PARTS = {"cpu": {"default": True, "gpus": False, "max_min": 600},
         "gpu": {"default": False, "gpus": True, "max_min": None}}


@pytest.mark.parametrize("limit, minutes", [("infinite", None), ("10:00:00", 600), ("30:00", 30),
                                            ("1-00:00:00", 1440), ("2-12:30:00", 3630), ("5", 5),
                                            ("00:00:30", 1)])
def test_slurm_time_limits_in_minutes(limit, minutes):
    assert slurm.minutes(limit) == minutes


def test_the_plan_follows_the_partition(monkeypatch):
    monkeypatch.setattr(slurm, "partitions", lambda: PARTS)
    plan = slurm.plan()                                  # the default partition, its CPUs
    assert (plan.partition, plan.gpus, plan.tasks, plan.time_min) == ("cpu", 0, 1, 600)
    plan = slurm.plan("gpu", options=["account=lab", "--qos=short"])
    assert (plan.gpus, plan.tasks, plan.time_min) == (1, 1, 24 * 60)
    assert plan.executor_parameters()["slurm_additional_parameters"] == {"account": "lab",
                                                                          "qos": "short"}
    assert slurm.plan("gpu", gpus_per_job=2).tasks == 2   # a rank per GPU
    assert slurm.plan(tasks_per_job=2).tasks == 2          # data-parallel on CPUs
    with pytest.raises(BenchError, match=r"^--slurm-partition nosuch: no such partition "
                                         r"\(sinfo lists cpu, gpu\)$"):
        slurm.plan("nosuch")
    with pytest.raises(BenchError, match="partition cpu offers no GPUs"):
        slurm.plan("cpu", gpus_per_job=1)
    monkeypatch.setattr(slurm, "partitions", lambda: {"a": {**PARTS["cpu"], "default": False}})
    with pytest.raises(BenchError, match="no default partition; name one with --slurm-partition"):
        slurm.plan()


@pytest.mark.parametrize("option, said", [
    ("partition=x", "set by --slurm-partition"), ("time=5", "set by --slurm-time"),
    ("account", "expected KEY=VALUE"), ("a b=1", "expected KEY=VALUE"),
    ("mem=1G\nx", "expected KEY=VALUE")])
def test_a_site_option_that_cannot_pass_through_is_refused(option, said):
    with pytest.raises(BenchError, match=said):
        slurm.parse_options([option])


def test_sbatch_words_are_kept_on_one_line():
    exc = RuntimeError("sbatch: error: Batch job submission failed: Invalid account\n"
                       "sbatch: error: Batch job submission failed: Invalid account\n")
    assert slurm.refusal(exc) == "sbatch: error: Batch job submission failed: Invalid account"


def test_status_reads_the_scheduler_for_slurm_jobs(tmp_path, monkeypatch):
    """A run whose job is pending again was requeued; one whose job runs is running; a job
    with no run folder is queued (and why), running, or ended (and where its log is)."""
    run = tmp_path / "runs" / "lung-ct" / "x" / "r1"
    run.mkdir(parents=True)
    (run / "manifest.json").write_text(json.dumps({"label": "x", "seed": 0, "status": "running",
                                                   "job": {"launcher": "slurm", "id": "7"}}))
    (tmp_path / "launch" / "t").mkdir(parents=True)
    jobs = [{"method": "x:default", "overrides": [f"seed={s}"], "launcher": "slurm",
             "job_id": str(j)} for s, j in ((0, 7), (1, 8), (2, 9), (3, 10))]
    (tmp_path / "launch" / "t" / "jobs.json").write_text(json.dumps(jobs))
    queue = {"7": ("PENDING", "BeginTime"), "8": ("PENDING", "Priority"), "9": ("RUNNING", "None"),
             "10": ("CANCELLED", "None")}
    monkeypatch.setattr(slurm, "queue", lambda: queue)
    got = {(line["seed"]): (line["status"], line["reason"]) for line in launch.status(tmp_path)}
    assert got[0] == ("requeued", "job 7 waits to run again (BeginTime); it continues this run")
    assert got[1] == ("queued", "Slurm: pending (Priority)")
    assert got[2] == ("running", "starting (no run folder yet)")
    assert got[3] == ("ended", "Slurm: cancelled, no run folder: see launch/t/submitit/10_0_log.err")
    queue["7"] = ("RUNNING", "None")
    assert launch.status(tmp_path)[0]["status"] == "running"


def test_a_job_at_its_time_limit_is_resubmitted_to_resume():
    """submitit calls `checkpoint` on USR2 (the time limit near, or a preemption) and requeues
    what it returns: the same run, continued."""
    spec = launch.JobSpec("srcyclegan:default", "lung-ct", "paper", ["seed=2"], "/res")
    again = launch.run_job.checkpoint(spec)
    assert again.function is launch.run_job and again.args == (launch.replace(spec, resume=True),)
