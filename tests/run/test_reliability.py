"""Crashes, faulty plugins, concurrent runs and untrusted checkpoints."""
import json
import os
import subprocess
import signal
import sys
import textwrap
import time

import pandas as pd
import pytest
import torch

from benchsr.run import checkpoints
from benchsr import registry
from benchsr.report import rows
from benchsr.contracts import BenchError
from benchsr.runtime.guards import FAULT_ENV
from benchsr.run.runner import Runner

from conftest import board_row, cli_batch, fake_distribution, smoke_config

CFG = ["train.epochs=3"]     # smoke: 2 steps per epoch, so steps 0..5 and three checkpoints


def _cli(args, env_extra=None, timeout=300):
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "benchsr.cli", *args], capture_output=True,
                          text=True, env=env, timeout=timeout)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, lung_smoke):
    out = tmp_path_factory.mktemp("whole")
    run = Runner(lung_smoke, out).run(registry.get("methods", "srcyclegan"),
                                      smoke_config("srcyclegan", extra=CFG))
    assert run.status == "complete"
    return run.run_dir


def _same_results(a, b):
    for name in ("metrics.csv", "losses.csv"):
        x = pd.read_csv(a / name).drop(columns=["ms"], errors="ignore")
        y = pd.read_csv(b / name).drop(columns=["ms"], errors="ignore")
        pd.testing.assert_frame_equal(x, y, check_exact=True)   # bit-identical on the CPU


@pytest.mark.parametrize("fault, resumed_from", [
    ("step:3", 1),          # mid-epoch 1: epoch 0's checkpoint is the last good one
    ("checkpoint:1", 1),    # while epoch 1's checkpoint replaces epoch 0's: prev.pt survives
    ("eval:0", 3),          # training done, killed during evaluation
])
@pytest.mark.slow
def test_sigkill_then_resume_matches_an_uninterrupted_run(fault, resumed_from, tmp_path, lung_smoke,
                                                          uninterrupted):
    args = ["run", "--methods", "srcyclegan", "--profile", "smoke", "--out", str(tmp_path),
            *sum((["--set", c] for c in CFG), [])]
    killed = _cli(args, {FAULT_ENV: fault})
    assert killed.returncode == -9, killed.stderr          # SIGKILL: no clean-up ran
    (run_dir,) = list((tmp_path / "runs" / "lung-ct" / "srcyclegan").iterdir())
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "running"
    assert not rows.load_runs([tmp_path])                 # the leaderboard ignores it

    resumed = Runner(lung_smoke, tmp_path).run(registry.get("methods", "srcyclegan"),
                                               smoke_config("srcyclegan", extra=CFG), resume=True)
    assert resumed.status == "complete" and resumed.run_dir == run_dir
    assert json.loads((run_dir / "manifest.json").read_text())["resumed_from_epoch"] == resumed_from
    _same_results(uninterrupted, run_dir)


def test_a_corrupt_last_checkpoint_falls_back_to_the_previous(tmp_path):
    checkpoints.save(tmp_path, {"method": {"w": torch.ones(3)}, "epoch": 0})
    checkpoints.save(tmp_path, {"method": {"w": torch.ones(3)}, "epoch": 1})
    last = tmp_path / "last.pt"
    last.write_bytes(last.read_bytes()[:40])                # torn write
    ckpt, path, skipped = checkpoints.load_latest(tmp_path, "cpu")
    assert path.name == "prev.pt" and ckpt["epoch"] == 0
    assert len(skipped) == 1 and "corrupt or truncated" in skipped[0]


def test_two_torn_checkpoints_restart_from_epoch_0_and_say_so(tmp_path):
    """Both torn: the run restarted from epoch 0 without a word (issue 28, item 20)."""
    from benchsr.run.training import resume_state
    folder = tmp_path / "checkpoints"
    for epoch in (0, 1):
        checkpoints.save(folder, {"method": {"w": torch.ones(3)}, "epoch": epoch})
    for name in ("last.pt", "prev.pt"):
        (folder / name).write_bytes((folder / name).read_bytes()[:40])
    manifest = {"notes": []}
    assert resume_state(None, tmp_path, manifest, "cpu") == (0, [], [])
    assert sum("resume skipped" in n for n in manifest["notes"]) == 2
    assert "restarted from epoch 0" in manifest["notes"][-1]
    assert resume_state(None, tmp_path / "fresh", {"notes": []}, "cpu") == (0, [], [])


@pytest.mark.parametrize("text", [b"abc\n" * 50, b"hello", b"model: x\n"])
def test_a_text_file_as_last_checkpoint_falls_back_too(text, tmp_path):
    """Text overwriting last.pt raised an uncaught IndexError (b'abc\\n' * 50): every --resume
    failed instead of taking the intact prev.pt."""
    checkpoints.save(tmp_path, {"method": {"w": torch.ones(3)}, "epoch": 0})
    checkpoints.save(tmp_path, {"method": {"w": torch.ones(3)}, "epoch": 1})
    (tmp_path / "last.pt").write_bytes(text)
    ckpt, path, skipped = checkpoints.load_latest(tmp_path, "cpu")
    assert path.name == "prev.pt" and ckpt["epoch"] == 0 and len(skipped) == 1
    # the note says what is wrong in one line, never torch's advice to load with weights_only=False
    assert "weights_only" not in skipped[0] and "\n" not in skipped[0], skipped
    from benchsr.nn.weights import init_from
    from benchsr.api import create_method
    with pytest.raises(BenchError, match="not a (readable )?torch file"):
        init_from(create_method("nearest"), {"from": str(tmp_path / "last.pt"), "key": "",
                                             "network": "", "strict": True})


class _Payload:
    def __reduce__(self):
        return (os.system, ("echo owned",))


def test_checkpoint_with_pickled_code_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"method": {}, "payload": _Payload()}, path)
    with pytest.raises(BenchError, match="refused: it carries pickled objects beyond tensors"):
        checkpoints.load(path)


def test_a_live_run_is_never_resumed_by_another_process(tmp_path, lung_smoke):
    from benchsr import results
    cfg = smoke_config("bicubic")
    run_dir, lock = results.new_run_dir(tmp_path, "lung-ct", "bicubic", "smoke")
    results.write_yaml(run_dir / "config.yaml", cfg)
    results.write_json(run_dir / "manifest.json", {"status": "running"})
    assert results.find_resumable(tmp_path, "lung-ct", "bicubic", cfg) is None   # held
    lock.release()
    found = results.find_resumable(tmp_path, "lung-ct", "bicubic", cfg)        # crashed: free
    assert found is not None and found[0] == run_dir
    found[1].release()


FAULTY = '''
import time
import torch
from benchsr.contracts import Method


class _Base(Method):
    scales = (2, 4, 8)

    def build(self):
        self.nets["G"] = torch.nn.Conv2d(1, 1, 3, padding=1).to(self.ctx.device)
        self.optimizers["G"] = torch.optim.SGD(self.nets["G"].parameters(), lr=0.01)

    def super_resolve(self, lr):
        return torch.nn.functional.interpolate(lr, scale_factor=self.ctx.scale)


class Raiser(_Base):
    name = "raiser"

    def train_step(self, batch, step):
        raise RuntimeError("plugin bug")


class Hanger(_Base):
    name = "hanger"

    def train_step(self, batch, step):
        if step == 2:                 # after epoch 0's checkpoint
            time.sleep(3600)
        loss = self.nets["G"](batch.lr).abs().mean()
        self.ctx.optimize(loss, self.optimizers["G"], step)
        return {"total_g": float(loss)}


class Nanner(_Base):
    name = "nanner"

    def train_step(self, batch, step):
        loss = self.nets["G"](batch.lr).mean() * float("nan")
        self.ctx.optimize(loss, self.optimizers["G"], step, "G")
        return {"total_g": float(loss)}


class Exiter(_Base):
    name = "exiter"

    def train_step(self, batch, step):
        import sys
        sys.exit(0)                   # ended `benchsr run` with 0, the run marked running


class Interrupter(_Base):
    name = "interrupter"

    def train_step(self, batch, step):
        raise KeyboardInterrupt       # not a Ctrl-C: the plugin's own


PLUGINS = [Raiser, Hanger, Nanner, Exiter, Interrupter]
'''


@pytest.mark.slow
def test_faulty_plugins_fail_alone_and_are_shown(tmp_path):
    (tmp_path / "faulty.py").write_text(FAULTY)
    fake_distribution(tmp_path, "faulty", {"faulty": "faulty"})
    out = tmp_path / "out"
    env = {"PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    # one process for both commands (cli_batch): `check` of a plugin whose step calls
    # sys.exit(0) exited 0 and printed nothing
    res, check = cli_batch([["run", "--methods", "raiser,hanger,nanner,exiter,interrupter,bicubic",
                             "--profile", "smoke", "--set", "time_limit_s=6", "--out", str(out)],
                            ["check", "exiter"]], env)
    assert check.returncode == 1 and check.stderr.strip() == (
        "method exiter:default: 1 of 9 checks failed: one training step through ctx.optimize")
    assert res.returncode == 1, res.stderr                # some runs failed, and stderr says so
    said = res.stderr.strip().splitlines()[-1]
    assert said.startswith("error: 5 of 6 run(s) did not complete: raiser failed: RuntimeError: "
                           "plugin bug"), said
    status = {}
    for label in ("raiser", "hanger", "nanner", "exiter", "interrupter", "bicubic"):
        (run,) = list((out / "runs" / "lung-ct" / label).iterdir())
        status[label] = json.loads((run / "manifest.json").read_text())
    assert status["bicubic"]["status"] == "complete"
    assert "plugin bug" in status["raiser"]["reason"] and "step 0" in status["raiser"]["reason"]
    assert "6 s limit" in status["hanger"]["reason"] and "step 2" in status["hanger"]["reason"]
    assert status["hanger"]["last_checkpoint"] == "checkpoints/last.pt (epoch 0)"
    assert "G loss is nan at step 0" in status["nanner"]["reason"]
    assert status["exiter"]["reason"].startswith("PluginExit: the method raised SystemExit(0) "
                                                 "instead of returning (during step 0)")
    assert "raised KeyboardInterrupt instead of returning" in status["interrupter"]["reason"]
    board = (out / "leaderboard.md").read_text()
    for label in ("raiser", "hanger", "nanner", "exiter", "interrupter"):
        assert "FAILED" in board_row(board, label), label


@pytest.mark.slow
def test_two_runs_into_one_results_folder(tmp_path):
    args = ["run", "--methods", "bicubic,nearest", "--profile", "smoke", "--out", str(tmp_path)]
    procs = [subprocess.Popen([sys.executable, "-m", "benchsr.cli", *args],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode()
    runs = list((tmp_path / "runs" / "lung-ct").glob("*/*"))
    assert len(runs) == 4 and len({r.name for r in runs}) == 4      # unique run ids
    assert all(json.loads((r / "manifest.json").read_text())["status"] == "complete" for r in runs)
    assert not list(tmp_path.rglob("*.tmp"))                        # no stray temp files
    (csv,) = list((tmp_path / "leaderboard").glob("*-quality.csv"))
    assert sorted(pd.read_csv(csv)["Method"]) == ["bicubic", "nearest"]


def test_unsafe_yaml_is_refused(tmp_path):
    from benchsr import config
    path = tmp_path / "presets.yaml"
    path.write_text(textwrap.dedent("""
        model: !!python/object/apply:os.system ["echo owned"]
    """))
    with pytest.raises(BenchError, match="invalid YAML"):
        config.read_yaml(path)


def test_a_signal_stops_a_run_resumable_where_a_plugin_exit_fails_it(tmp_path, lung_smoke,
                                                                      monkeypatch):
    """SIGTERM left a run folder marked "running"; a plugin's own SystemExit is told apart."""
    from benchsr.runtime.guards import Interrupted, exit_on_signals
    with pytest.raises(Interrupted) as sent, exit_on_signals():   # a real signal, in-process
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
    assert sent.value.code == 143
    cls = registry.get("methods", "srcyclegan")

    def stopped(self, batch, step):
        raise Interrupted(143)                  # as the handler raises it during a step
    monkeypatch.setattr(cls, "train_step", stopped)
    with pytest.raises(Interrupted):
        Runner(lung_smoke, tmp_path).run(cls, smoke_config("srcyclegan"))
    (run,) = list((tmp_path / "runs" / "lung-ct" / "srcyclegan").iterdir())
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "stopped"
    assert manifest["reason"] == "stopped by SIGTERM during step 0: --resume continues it"
    assert not rows.load_runs([tmp_path])                # never a result


def test_sigterm_in_any_command_is_one_line_and_exit_143(capsys, monkeypatch):
    import importlib
    from benchsr.runtime.guards import Interrupted
    cli_main = importlib.import_module("benchsr.cli.main")     # the module, not its main()

    def app(**_):
        raise Interrupted(143)
    monkeypatch.setattr(cli_main, "app", app)
    with pytest.raises(SystemExit) as done:
        cli_main.main()
    err = capsys.readouterr().err.strip().splitlines()
    assert done.value.code == 143 and len(err) == 1 and err[0].startswith("stopped: SIGTERM;")


def test_resume_after_a_complete_run_starts_nothing_new(tmp_path, lung_smoke):
    """A short run that finished after its scancel was resumed into a second run."""
    cls, cfg = registry.get("methods", "nearest"), smoke_config("nearest")
    first = Runner(lung_smoke, tmp_path).run(cls, cfg)
    again = Runner(lung_smoke, tmp_path).run(cls, cfg, resume=True)
    assert (again.status, again.run_dir, again.reason) == ("complete", first.run_dir,
                                                           "already complete (--resume)")
    assert len(list((tmp_path / "runs" / "lung-ct" / "nearest").iterdir())) == 1
    other = Runner(lung_smoke, tmp_path).run(cls, smoke_config("nearest", extra=["seed=1"]),
                                             resume=True)
    assert other.run_dir != first.run_dir           # another config is another run


def test_staging_folders_a_killed_process_left_are_removed_by_the_next(tmp_path):
    """8 SIGKILLs of `leaderboard` left 4 .leaderboard-new-* folders that no run removed."""
    import platform
    import re
    from benchsr.results import staging_folder
    host = re.sub(r"[^A-Za-z0-9]+", "", platform.node())[:20]
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    left = tmp_path / f".leaderboard-new-{host}-{dead}-abc"
    live = tmp_path / f".leaderboard-new-{host}-{os.getpid()}-def"    # another build, running
    elsewhere = tmp_path / f".leaderboard-new-otherhost-{dead}-ghi"  # another machine's: unknown
    for folder in (left, live, elsewhere):
        folder.mkdir()
    new = staging_folder(tmp_path, ".leaderboard-new-")
    assert not left.exists() and live.exists() and elsewhere.exists() and new.is_dir()
