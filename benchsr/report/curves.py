"""Where each row stops on its learning curve (curve.csv, written with `eval.every`).

Per leaderboard row (seeds pooled): the first, best and last validation PSNR of the mean curve
over seeds, and its trend over the second half of the steps: the least-squares line through those
points, as the change it predicts from the middle step to the last (one noisy point does not
decide it). The words are a fixed rule on those numbers, stated in TREND_RULE, so a reader can
check them: "rising" / "falling" when that change exceeds RISE_DB either way, else "level"; "past
its peak" when the best point lies more than PEAK_DB above the last one.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

RISE_DB = 0.1
PEAK_DB = 0.5
TREND_RULE = (f"rising / falling: a straight line fitted to the mean curve over the second half "
              f"of the steps changes by more than {RISE_DB} dB across that half, else level; past "
              f"its peak: the best point is more than {PEAK_DB} dB above the last one")


def seed_curves(row: dict, metric: str = "psnr") -> list[pd.Series]:
    """One series (step -> value) per seed run of a leaderboard row that wrote curve.csv."""
    out = []
    for run in row.get("seed_runs", [row]):
        path = run["dir"] / "curve.csv"
        if path.is_file():
            try:
                df = pd.read_csv(path)
            except (ValueError, UnicodeDecodeError, pd.errors.ParserError):   # empty or damaged
                continue
            if not {"metric", "step", "value"} <= set(df.columns):
                continue
            part = df[df["metric"] == metric]
            if not part.empty:
                out.append(part.set_index("step")["value"])
    return out


def second_half_change(curve: pd.Series) -> float:
    """Change across the second half of the steps predicted by a least-squares line through its
    points (0 with fewer than two)."""
    last = float(curve.index[-1])
    half = curve[curve.index >= last / 2]
    if len(half) < 2:
        return 0.0
    slope = np.polyfit(half.index.to_numpy(float), half.to_numpy(float), 1)[0]
    return float(slope * (last - float(half.index[0])))


def where_it_stops(row: dict, metric: str = "psnr") -> dict | None:
    """The numbers behind one row's line of the table, or None without curves."""
    curves = seed_curves(row, metric)
    if not curves:
        return None
    mean = pd.concat(curves, axis=1).mean(axis=1).sort_index()
    change = second_half_change(mean)
    best_step = int(mean.idxmax())
    words = "rising" if change > RISE_DB else "falling" if change < -RISE_DB else "level"
    if float(mean.max()) - float(mean.iloc[-1]) > PEAK_DB:
        words += f", past its peak (step {best_step})"
    return {"first": float(mean.iloc[0]), "best": float(mean.max()), "best_step": best_step,
            "last": float(mean.iloc[-1]), "last_step": int(mean.index[-1]),
            "second_half_change": change, "seeds": len(curves), "trend": words}


def stops_frame(rows: list[dict], metric: str = "psnr") -> pd.DataFrame:
    """One line per leaderboard row with curves: label, the numbers, and the trend words."""
    lines = []
    for row in rows:
        found = where_it_stops(row, metric)
        if found is None:
            continue
        lines.append({"Method": row["manifest"]["label"], "Seeds": found["seeds"],
                      f"first {metric}": f"{found['first']:.2f}",
                      f"best {metric} (step)": f"{found['best']:.2f} ({found['best_step']})",
                      f"last {metric} (step)": f"{found['last']:.2f} ({found['last_step']})",
                      "trend over the 2nd half": f"{found['second_half_change']:+.2f}",
                      "where it stops": found["trend"]})
    return pd.DataFrame(lines)
