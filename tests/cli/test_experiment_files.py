"""`benchsr run --config FILE`: a partial YAML, inherited with `_base_:`, unknown keys with a
"did you mean", `--set` over the file, and a file and an option that disagree refused."""
import pytest
import yaml

from benchsr import config, experiments, registry

from conftest import _main


def _write(path, text):
    path.write_text(text)
    return path


def test_a_partial_file_sets_only_its_keys(tmp_path):
    path = _write(tmp_path / "lr.yaml", "model: {lr: 1.0e-4}\n")
    doc = experiments.read(path)
    cls, ds = registry.get("methods", "srcyclegan"), registry.get("datasets", "lung-ct")
    items = experiments.overrides(doc, cls, "default", ds, "smoke", path)
    assert items == ["model.lr=0.0001"]
    cfg = config.resolve(cls, "default", ds, "smoke", items)
    plain = config.resolve(cls, "default", ds, "smoke", [])
    assert cfg["model"]["lr"] == 1e-4 != plain["model"]["lr"]
    assert {**cfg, "model": {**cfg["model"], "lr": plain["model"]["lr"]}} == plain


def test_bases_merge_in_order_and_the_file_wins(tmp_path):
    _write(tmp_path / "a.yaml", "profile: smoke\neval: {border_crop: 2, samples: 3}\n")
    (tmp_path / "sub").mkdir()
    _write(tmp_path / "sub" / "b.yaml", "_base_: ../a.yaml\neval: {samples: 1}\n")
    child = _write(tmp_path / "c.yaml", "_base_: [sub/b.yaml]\nmethod: bicubic\n"
                                        "eval: {border_crop: 0}\n")
    assert experiments.read(child) == {"profile": "smoke", "method": "bicubic",
                                       "eval": {"border_crop": 0, "samples": 1}}


def test_a_file_runs_and_set_wins_over_it(tmp_path, capsys, monkeypatch):
    _write(tmp_path / "base.yaml", "profile: smoke\neval: {border_crop: 0, samples: 1}\n")
    child = _write(tmp_path / "exp.yaml", "_base_: base.yaml\nmethod: bicubic\n")
    code, _, err = _main(["run", "--config", child, "--set", "eval.samples=0", "--out",
                          tmp_path / "res"], capsys, monkeypatch)
    assert code == 0, err
    saved = yaml.safe_load(next((tmp_path / "res").glob("runs/lung-ct/bicubic/*/config.yaml"))
                           .read_text())
    assert (saved["profile"], saved["eval"]["border_crop"], saved["eval"]["samples"]) == ("smoke", 0, 0)


def _bomb(levels: int = 9, width: int = 9) -> str:
    """Nested anchors, each level `width` aliases of the one below: width**levels values."""
    value = "&a0 [-1000, 500]"
    for i in range(1, levels):
        value = f"&a{i} [{value}, " + ", ".join([f"*a{i - 1}"] * (width - 1)) + "]"
    return value


BOMB = _bomb()


@pytest.mark.parametrize("text, args, words", [
    ("model: {lrr: 1.0e-4}\n", ["--methods", "srcyclegan"], ["model.lrr", "did you mean 'model.lr'"]),
    ("method: esrgan\n", ["--methods", "bicubic"], ["disagree"]),
    ("profile: quick\n", ["--methods", "bicubic", "--profile", "smoke"], ["disagree"]),
    ("_base_: loop.yaml\n", ["--methods", "bicubic"], ["includes itself"]),
    ("_base_: missing.yaml\n", ["--methods", "bicubic"], ["no such file"]),
    ("preset: paired\n", [], ["a preset without a method"]),
    ("# nothing\n", [], ["sets no key"]),
    ("a: \x00\x01\x02\n", [], ["invalid YAML (unacceptable character #x0000"]),   # was a traceback
    # an alias bomb in a known key's value hung past 180 s at 2-3 GB
    ("method: nearest\ndata:\n  window: " + BOMB + "\n", [], ["aliases expand to more than 100,000"]),
    ("_base_: base.yaml\n", [], ["aliases expand"]),      # through a _base_ (written below)
])
def test_bad_files_are_one_line_and_write_nothing(text, args, words, tmp_path, capsys, monkeypatch):
    _write(tmp_path / "base.yaml", "method: nearest\ndata:\n  window: " + BOMB + "\n")
    path = _write(tmp_path / "loop.yaml", text)
    code, _, err = _main(["run", "--config", path, *args, "--out", tmp_path / "res"],
                         capsys, monkeypatch)
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert all(w in err for w in words), err
    assert not (tmp_path / "res").exists()


def test_set_with_a_misspelt_key_names_the_nearest(capsys, monkeypatch, tmp_path):
    code, _, err = _main(["run", "--methods", "bicubic", "--profile", "smoke", "--set",
                          "eval.bordr_crop=1", "--out", tmp_path / "res"], capsys, monkeypatch)
    assert code == 2 and "did you mean 'eval.border_crop'" in err, err


@pytest.mark.parametrize("command", ["run", "reproduce", "infer", "evaluate"])
def test_help_shows_no_type_noise_and_says_the_defaults(command):
    from typer.testing import CliRunner
    from benchsr.cli import app
    res = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "<bool>" not in res.output                   # flags were shown as '<bool>'
    if command == "run":
        text = " ".join(res.output.split())              # the help wraps at 80 columns
        for default in ("[default: all]", "[default: lung-ct]", "[default: quick]"):
            assert default in text, res.output


def test_an_alias_bomb_in_set_is_refused_in_a_second(tmp_path, capsys, monkeypatch):
    import time
    start = time.monotonic()
    code, _, err = _main(["run", "--methods", "nearest", "--profile", "smoke", "--set",
                          f"data.window={BOMB}", "--out", tmp_path / "res"], capsys, monkeypatch)
    assert code == 2 and "aliases expand to more than 100,000 values" in err, err
    assert time.monotonic() - start < 1.0 and not (tmp_path / "res").exists()


def test_aliases_that_stay_small_are_a_config():
    from benchsr.config import load_yaml
    assert load_yaml("a: &w [-1000, 500]\nb: *w\n", "x") == {"a": [-1000, 500], "b": [-1000, 500]}
