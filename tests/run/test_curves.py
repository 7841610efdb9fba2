"""Validation during training: curve.csv every eval.every steps, kept across a resume, drawn on
the leaderboard with seeds as bands; the training itself is unchanged by it."""
import pandas as pd

from benchsr.report import publish
from benchsr import registry
from benchsr.run.runner import Runner

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
    _check_best_folder(watched.run_dir, curve, lung_smoke)
    assert not (plain.run_dir / "best").exists()          # no validation, no best checkpoint


def _check_best_folder(run_dir, curve, data):
    """best/ scores the weights of the highest validation point, not the last ones, and its
    rows are a table of their own."""
    from benchsr import api
    from benchsr.evaluation import evaluate
    from benchsr.report import rows, tables
    psnr = curve[curve["metric"] == "psnr"]
    top = psnr.loc[psnr["value"].idxmax()]
    found = api.load_run(run_dir / "best")
    assert found.manifest["checkpoint"]["step"] == int(top["step"])
    assert found.manifest["checkpoint"]["validation_psnr"] == float(top["value"])
    # the best folder's numbers are those of best.pt's weights on the same images
    method = found.method()
    again, _, _ = evaluate.evaluate(method, evaluate.choose_images(data, found.config),
                                    found.config, method.ctx.device)
    assert [round(r["psnr"], 9) for r in again] == [round(v, 9) for v in found.metrics["psnr"]]
    recs = rows.load_runs([run_dir])
    assert sorted(r["manifest"]["label"] for r in recs) == ["srcyclegan", "srcyclegan [best-val]"]
    found_groups = tables.groups(recs)
    assert [g.checkpoint for g in found_groups] == ["last", "best"]
    assert all(len(g.runs) == 1 for g in found_groups)


def test_leaderboard_draws_the_curves_with_seed_bands(tmp_path, lung_smoke):
    for seed in (0, 1):
        _run(lung_smoke, tmp_path, ["eval.every=3", "eval.every_images=1", f"seed={seed}"])
    publish.build([tmp_path], tmp_path)
    assert list((tmp_path / "leaderboard").glob("*-curves.png"))
    assert "learning curves" in (tmp_path / "leaderboard.md").read_text()


def _curve_row(tmp_path, name, seeds_values):
    runs = []
    for i, values in enumerate(seeds_values):
        d = tmp_path / f"{name}{i}"
        d.mkdir()
        pd.DataFrame({"step": [75 * (k + 1) for k in range(len(values))], "metric": "psnr",
                      "value": values, "images": 4}).to_csv(d / "curve.csv", index=False)
        runs.append({"dir": d})
    return {"manifest": {"label": name}, "seed_runs": runs}


def test_where_each_method_stops_follows_the_stated_rule(tmp_path):
    from benchsr.report.curves import stops_frame, where_it_stops
    # two seeds whose mean is 10, 12, 14, 16, 15.6, 15.2: the best (16) is 0.8 dB above the last
    peaked = _curve_row(tmp_path, "peaked", [[9, 11, 13, 15, 14.6, 14.2], [11, 13, 15, 17, 16.6, 16.2]])
    found = where_it_stops(peaked)
    assert (found["best"], found["best_step"], found["last"]) == (16.0, 300, 15.2)
    # the line through (225, 14), (300, 16), (375, 15.6), (450, 15.2) over 225 steps
    assert abs(found["second_half_change"] - 0.96) < 1e-9
    assert found["trend"] == "rising, past its peak (step 300)"
    flat = _curve_row(tmp_path, "flat", [[10, 10.05, 10, 10.02, 10.01, 10.03]])
    assert where_it_stops(flat)["trend"] == "level"
    table = stops_frame([peaked, flat, {"manifest": {"label": "bicubic"}, "dir": tmp_path}])
    assert list(table["Method"]) == ["peaked", "flat"]            # no curve, no line
    assert list(table["Seeds"]) == [2, 1]
