"""`benchsr status` under hostile input: killed runs and damaged job files are listed, never a
traceback."""
import pytest

from conftest import _main, _one_line_exit_2


def test_status_tells_a_killed_run_from_a_running_one(tmp_path, capsys, monkeypatch):
    """A run killed by SIGKILL showed as "running" forever; a missing root printed an empty
    table with exit 0."""
    from benchsr import results
    from benchsr.run.launch import status
    run = tmp_path / "runs" / "lung-ct" / "nearest" / "20261201-000000-smoke-abcdef"
    run.mkdir(parents=True)
    results.write_json(run / "manifest.json", {"status": "running", "label": "nearest", "seed": 0})
    (run / ".lock").touch()
    assert status(tmp_path)[0]["status"] == "stopped"          # nobody holds the lock
    held = results.RunLock(run)
    assert held.acquire()
    try:
        assert status(tmp_path)[0]["status"] == "running"
    finally:
        held.release()
    code, _, err = _main(["status", tmp_path / "nowhere"], capsys, monkeypatch)
    _one_line_exit_2(code, err, "no such results root")

@pytest.mark.parametrize("jobs", ['{"not": "a list"}', "\x00\x01 binary",
                                  '[{"method": "nearest", "job_id": "7", "overrides": ["seed=abc"]}]'])
def test_status_lists_an_unreadable_or_odd_jobs_file_instead_of_a_traceback(jobs, tmp_path, capsys,
                                                                            monkeypatch):
    (tmp_path / "launch" / "x").mkdir(parents=True)
    (tmp_path / "launch" / "x" / "jobs.json").write_text(jobs)
    code, out, err = _main(["status", tmp_path], capsys, monkeypatch)
    assert code == 0 and "Traceback" not in err, err
    assert ("unreadable" in out) or ("queued" in out and "abc" in out), out
