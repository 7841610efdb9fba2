"""A row of several seeds: its cost is every complete seed's, not its newest run's alone (the
smore row at standard showed seed 2's 2.4 s/epoch; its seeds took 2.8, 2.5 and 2.4)."""
from benchsr.report.tables import cost_table


def _run(tmp_path, name, seed, s_per_epoch, status="complete"):
    folder = tmp_path / name
    folder.mkdir()
    return {"dir": folder, "manifest": {"label": "m", "profile": "quick", "precision": "fp32",
                                        "seed": seed, "status": status},
            "cost": {"s_per_epoch": s_per_epoch, "samples_per_s": 300 / s_per_epoch,
                     "ms_per_slice": 10.0 * (seed + 1), "peak_memory_mib": 1000 + seed,
                     "params_total": 5, "params": {"G": 5}, "epoch_excludes_validation": True}}


def test_a_seeded_rows_cost_is_the_median_of_its_complete_seeds(tmp_path):
    runs = [_run(tmp_path, "a", 0, 3.8), _run(tmp_path, "b", 1, 1.5), _run(tmp_path, "c", 2, 1.6),
            _run(tmp_path, "d", 3, 0.1, status="failed")]
    row = dict(runs[2], seed_runs=runs)                  # the row speaks for the newest run
    table = cost_table([row])
    cells = table.cells.iloc[0]
    assert cells["s / epoch"] == "1.6 (median of 3)"
    assert cells["ms / slice"] == "20.0 (median of 3)"
    assert table.numbers.iloc[0]["s_per_epoch"] == 1.6
    single = cost_table([runs[0]]).cells.iloc[0]
    assert single["s / epoch"] == "3.8"                 # one run: its own number, unmarked
