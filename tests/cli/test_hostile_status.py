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
    assert "unreadable" in out and "queued" not in out, out     # no phantom "seed abc, queued"


@pytest.mark.parametrize("manifest, words", [
    ("[1, 2]", "manifest.json is a list"), ("\x00\x01 binary", "manifest.json is unreadable"),
    ('{"label": 5, "seed": "x", "status": "complete"}', "manifest.json: label 5"),
    ('{"label": "nearest", "seed": 0, "status": 5}', "manifest.json: status 5")])
def test_status_lists_a_damaged_manifest_instead_of_leaving_it_out(manifest, words, tmp_path,
                                                                  capsys, monkeypatch):
    """A manifest that was a JSON list or binary was left out; mistyped fields showed as label
    None, seed None, status 5."""
    from benchsr.run.launch import status
    run = tmp_path / "runs" / "lung-ct" / "nearest" / "20261201-000000-smoke-abcdef"
    run.mkdir(parents=True)
    (run / "manifest.json").write_text(manifest)
    (line,) = status(tmp_path)
    assert (line["label"], line["status"]) == ("nearest", "damaged") and words in line["reason"]
