"""`benchsr leaderboard` under hostile input: over damaged run folders each damaged folder is a
FAILED row with its reason, the other runs are built and ranked, and nothing raises."""
import json
import os
import shutil

import pytest

from benchsr import registry
from benchsr.report import publish
from benchsr.run.runner import Runner

from conftest import board_row, smoke_config


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, lung_smoke):
    root = tmp_path_factory.mktemp("board")
    for name in ("bicubic", "nearest"):
        Runner(lung_smoke, root).run(registry.get("methods", name), smoke_config(name))
    return root


def _edit_json(path, fn):
    path.write_text(json.dumps(fn(json.loads(path.read_text()))))


def _metrics_line_twice(run):
    text = (run / "metrics.csv").read_text()
    (run / "metrics.csv").write_text(text + text.splitlines()[1] + "\n")


CASES = {
    "metrics.csv with a string value": (lambda r: (r / "metrics.csv").write_text(
        (r / "metrics.csv").read_text().replace(",2", ",abc", 1)), "non-numeric"),
    "metrics.csv with an image twice": (_metrics_line_twice, "damaged"),
    "metrics.csv of binary junk": (lambda r: (r / "metrics.csv").write_bytes(bytes(range(256)) * 4),
                                   "metrics.csv is unreadable"),
    "metrics.csv a link to a system file": (lambda r: ((r / "metrics.csv").unlink(),
                                                       os.symlink("/etc/passwd", r / "metrics.csv")),
                                            "metrics.csv"),
    # a text file pandas reads as a table of other columns: KeyError 'group' before
    "metrics.csv a link to a table of other columns": (lambda r: (
        (r / "metrics.csv").unlink(), (r / "other.csv").write_text("a,b\n1,2\n"),
        os.symlink(r / "other.csv", r / "metrics.csv")), "metrics.csv has no image or group column"),
    "summary.json with a string mean": (lambda r: _edit_json(r / "summary.json", lambda d: {
        **d, "psnr": {**d["psnr"], "mean": "abc"}}), "summary.json gives psnr mean 'abc'"),
    "manifest.json a list": (lambda r: (r / "manifest.json").write_text("[1, 2]"),
                             "manifest.json is a list"),
    "manifest.json a string": (lambda r: (r / "manifest.json").write_text('"x"'),
                               "manifest.json is a str"),
    "manifest.json without a dataset": (lambda r: _edit_json(r / "manifest.json", lambda d: {
        k: v for k, v in d.items() if k != "dataset"}), "dataset None"),
    "manifest.json with an integer label": (lambda r: _edit_json(
        r / "manifest.json", lambda d: {**d, "label": 5}), "label 5"),
    "manifest.json with a string protocol": (lambda r: _edit_json(
        r / "manifest.json", lambda d: {**d, "protocol": "x"}), "protocol 'x'"),
    "manifest.json with a list seed": (lambda r: _edit_json(
        r / "manifest.json", lambda d: {**d, "seed": [0]}), "seed [0]"),
    "cost.json holding strings": (lambda r: _edit_json(r / "cost.json", lambda d: {
        k: "x" for k in d}), "cost.json"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_damaged_folder_is_a_failed_row_and_the_rest_are_built(case, two_runs, tmp_path):
    damage, reason = CASES[case]
    root = tmp_path / "results"
    shutil.copytree(two_runs, root, symlinks=True)
    damage(next((root / "runs" / "lung-ct" / "bicubic").iterdir()))
    publish.build([root / "runs"], root)
    board = (root / "leaderboard.md").read_text()
    bicubic, nearest = board_row(board, "bicubic"), board_row(board, "nearest")
    assert "FAILED" in bicubic and reason in bicubic, bicubic
    assert "#1" in nearest, nearest                                  # the other run is ranked


def test_a_corrupt_sample_leaves_the_grid_and_nothing_else(two_runs, tmp_path):
    root = tmp_path / "results"
    shutil.copytree(two_runs, root)
    for path in (root / "runs" / "lung-ct" / "bicubic").glob("*/samples/*.npz"):
        path.write_bytes(b"garbage")
    publish.build([root / "runs"], root)
    board = (root / "leaderboard.md").read_text()
    assert "FAILED" not in board and "| bicubic" in board


def test_a_sample_of_the_wrong_shape_leaves_the_grid_and_nothing_else(two_runs, tmp_path):
    """An SR crop that is not k times its LR crop raised ZeroDivisionError in the grid."""
    import numpy as np
    root = tmp_path / "results"
    shutil.copytree(two_runs, root)
    for path in (root / "runs" / "lung-ct" / "bicubic").glob("*/samples/*.npz"):
        with np.load(path) as z:
            arrays = dict(z)
        np.savez(path, **{**arrays, "lr": arrays["lr"][:10, :7], "sr": np.zeros((5, 5))})
    publish.build([root / "runs"], root)
    board = (root / "leaderboard.md").read_text()
    assert "FAILED" not in board and "| bicubic" in board


def test_notes_saved_as_one_string_are_one_note(tmp_path):
    """A hand-edited manifest whose notes are a string printed as 'n; o; t; e'."""
    from benchsr.report.tables import _notes
    assert _notes({"manifest": {"notes": "a hand note"}}) == "a hand note"
