"""Leave-one-patient-out runs (data.split: patients): a fold per held-out patient, several seeds
each, are one leaderboard row whose statistics nest the runs in their patients."""
import numpy as np
import pandas as pd

from benchsr import api, registry
from benchsr.report import rows
from benchsr.run.runner import Runner

from conftest import smoke_config


def test_folds_and_seeds_are_one_row_scored_on_held_out_patients(tmp_path):
    for fold in range(3):
        extra = ["data.split=patients", f"data.fold={fold}"]
        data = api.load_dataset("lung-ct", "smoke", overrides=extra)
        for method, seeds in (("srcyclegan", (0, 1)), ("nearest", (0,))):
            for seed in seeds:
                cfg = smoke_config(method, extra=[*extra, f"seed={seed}"])
                assert Runner(data, tmp_path).run(registry.get("methods", method), cfg).status == "complete"
    found = {r["manifest"]["label"]: r for r in rows.load_runs([tmp_path / "runs"])}
    assert sorted(found) == ["nearest", "srcyclegan"]          # no [data.fold=...] rows
    row = found["srcyclegan"]
    assert len(row["seed_runs"]) == 6
    held = [pd.read_csv(r["dir"] / "metrics.csv")["volume"].unique().tolist() for r in row["seed_runs"]]
    assert all(len(v) == 1 for v in held) and len({v[0] for v in held}) == 3
    u = rows.row_units(row, "psnr")
    assert u.nested and u.n_volumes == 3
    cell = row["summary"]["psnr"]
    means = [r.mean() for r in u.volume_runs()]
    assert cell["mean"] == np.mean(means) and "held-out patients (3" in cell["ci_covers"]
    # the untrained row's three folds are one run over the three patients
    assert rows.row_units(found["nearest"], "psnr").collapsed().values.shape == (1, 3)
