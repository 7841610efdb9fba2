"""Validation during training: curve.csv every eval.every steps, kept across a resume, drawn on
the leaderboard with seeds as bands; the training itself is unchanged by it."""
import pandas as pd

from benchsr import publish, registry
from benchsr.runner import Runner

from conftest import smoke_config


def _run(data, out, extra=()):
    return Runner(data, out).run(registry.get("methods", "srcyclegan"),
                                 smoke_config("srcyclegan", extra=["train.steps_per_epoch=3",
                                                                   *extra]))


def test_curve_every_n_steps_and_training_unchanged(tmp_path, lung_smoke):
    plain = _run(lung_smoke, tmp_path / "plain")
    watched = _run(lung_smoke, tmp_path / "watched", ["eval.every=2", "eval.every_images=1"])
    assert watched.status == "complete", watched.reason
    curve = pd.read_csv(watched.run_dir / "curve.csv")
    assert sorted(curve["step"].unique()) == [2, 4, 6]
    assert set(curve["metric"]) == {"psnr", "ssim", "ssim_global"}
    assert curve["value"].notna().all()
    # validating mid-run consumes no randomness and changes no weight: identical losses
    a, b = (pd.read_csv(r.run_dir / "losses.csv") for r in (plain, watched))
    assert a.equals(b)


def test_leaderboard_draws_the_curves_with_seed_bands(tmp_path, lung_smoke):
    for seed in (0, 1):
        _run(lung_smoke, tmp_path, ["eval.every=3", "eval.every_images=1", f"seed={seed}"])
    publish.build([tmp_path], tmp_path)
    assert list((tmp_path / "leaderboard").glob("*-curves.png"))
    assert "learning curves" in (tmp_path / "leaderboard.md").read_text()
