"""`benchsr export-inputs`, `evaluate` (a model outside benchsr), `export-weights`, and the
sweep launcher behind `run --launcher` with `status`."""
from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import List, Optional

import typer

from benchsr import config, registry
from benchsr.config import DEFAULT_DATASET
from benchsr.cli.common import (app, check_data_dir, check_out_folder, console, exit_unless_complete,
                                show_leaderboard)
from benchsr.errors import BenchError


def _dataset_and_config(dataset: str, profile: str, data_dir, set_: list[str], method_cls=None):
    ds_cls = registry.get("datasets", dataset)
    check_data_dir(data_dir)
    method_cls = method_cls or registry.get("methods", "nearest")
    cfg = config.resolve(method_cls, "default", ds_cls, profile, list(set_) + ["eval.tile=0"])
    return ds_cls, cfg


@app.command("export-inputs")
def export_inputs(
    out: Path = typer.Argument(..., metavar="OUT", help="an empty or new folder"),
    dataset: str = typer.Option(DEFAULT_DATASET, help="dataset adapter (see `benchsr list`)"),
    profile: str = typer.Option("quick", help="smoke | quick | standard | paper (how many images)"),
    data_dir: Optional[Path] = typer.Option(None, help="the dataset's folder, where it needs one"),
    set_: List[str] = typer.Option([], "--set", help="override a config key: KEY=VALUE"),
) -> None:
    """Write exactly the LR inputs the dataset's evaluation feeds a method (.npy in [0, 1]) and
    a manifest.json naming each, with the output shape expected, for a model outside benchsr.
    On the through-plane track (--set data.plane=through): each slab's thick stack as a NIfTI
    with its true geometry, and the thin grid to predict."""
    from benchsr.evaluation import external_z
    from benchsr.evaluation.external import export_inputs as write
    ds_cls, cfg = _dataset_and_config(dataset, profile, data_dir, set_)
    with console.status(f"loading {ds_cls.name} ..."):
        data = ds_cls(cfg, data_dir).read()
    through = data.protocol.get("plane") == "through"     # thick stacks as NIfTI instead
    manifest = write(data, cfg, out, external_z.write_inputs if through else None)
    what = (f"thick stacks (z x{manifest['z_factor']}, NIfTI)" if through
            else f"inputs (x{manifest['scale']})")
    console.print(f"wrote {len(manifest['inputs'])} {what} and manifest.json to {out}")


@app.command("export-data")
def export_data(
    out: Path = typer.Argument(..., metavar="OUT",
                               help="a folder; --data-dir OUT then reads what is written"),
    dataset: str = typer.Option(DEFAULT_DATASET, help="dataset adapter (see `benchsr list`)"),
    data_dir: Optional[Path] = typer.Option(None, help="the dataset's folder, where it needs one"),
    set_: List[str] = typer.Option([], "--set", help="override a config key: KEY=VALUE"),
) -> None:
    """Write the dataset's scans in a compact form (HU, body mask, field of view, geometry; one
    .npz per patient) that `--data-dir OUT` reads without SimpleITK or the packages that ship
    the scans: what travels to a machine that has neither. `--set data.patients=[...]` takes
    fewer patients."""
    ds_cls, cfg = _dataset_and_config(dataset, "smoke", data_dir, set_)
    check_out_folder(out)
    created = not out.exists()
    try:
        path = ds_cls(cfg, data_dir).export(out)
    except OSError as exc:       # a full disk: name the folder, keep no half-made one
        if created:
            shutil.rmtree(out, ignore_errors=True)
        kept = "nothing was kept" if created else "each file already in it is whole"
        raise BenchError(f"{out}: cannot write the prepared scans ({exc.strerror or exc}); "
                         f"{kept}") from None
    files = sorted(path.glob("*.npz")) if path.is_dir() else [path]
    size = sum(f.stat().st_size for f in files) / 2**20
    console.print(f"wrote {len(files)} file(s) to {out} ({size:.1f} MiB): "
                  f"--dataset {ds_cls.name} --data-dir {out} reads them")


@app.command("evaluate")
def evaluate_predictions(
    pred: Path = typer.Argument(..., metavar="PRED",
                                help="a folder with one prediction per exported input"),
    name: str = typer.Option(..., help="the model's name: the run is external:NAME"),
    dataset: str = typer.Option(DEFAULT_DATASET, help="dataset adapter (see `benchsr list`)"),
    profile: str = typer.Option("quick", help="the profile the inputs were exported with"),
    data_dir: Optional[Path] = typer.Option(None, help="the dataset's folder, where it needs one"),
    units: str = typer.Option("unit", help="unit: predictions in [0, 1]; hu: in the dataset's "
                                           "HR units (HU, or µCT units for ct-uct)"),
    set_: List[str] = typer.Option([], "--set", help="override a config key: KEY=VALUE"),
    out: Path = typer.Option(Path("results"), help="results root (runs/ and leaderboard)"),
) -> None:
    """Score predictions made outside benchsr with the runner's own code, into an ordinary run
    folder beside the built-in methods (leaderboard, CIs, tests against the best, grids)."""
    from benchsr.evaluation.external import eval_inputs, external_method, read_predictions
    from benchsr.run.runner import Runner
    if units not in ("unit", "hu"):
        raise BenchError(f"--units {units}: expected unit or hu")
    if not re.fullmatch(r"[A-Za-z0-9._+-]+", name):
        raise BenchError(f"--name {name!r}: letters, digits and . _ + - only")
    check_out_folder(out)
    ds_cls, cfg = _dataset_and_config(dataset, profile, data_dir, set_)
    with console.status(f"loading {ds_cls.name} ..."):
        data = ds_cls(cfg, data_dir).read()
    hr_window = data.protocol.get("hr_window") or data.protocol.get("window_hu")
    if data.protocol.get("plane") == "through":    # thin volumes on the thin grid, or finer
        from benchsr.evaluation import external_z
        predictions, finer = external_z.read_predictions(pred, data.eval_volumes, units, hr_window,
                                                          profile)
        cls = external_z.external_method(name, data.eval_volumes, predictions, finer)
    else:
        images = eval_inputs(data, cfg)
        cls = external_method(name, images, read_predictions(pred, images, data.scale, units,
                                                             hr_window, profile))
    # the runner crops and feeds the same inputs that were exported: eval.tile 0, whole images
    cfg = config.resolve(cls, "default", ds_cls, profile, list(set_) + ["eval.tile=0"])
    outcome = Runner(data, out, None, ds_cls.provenance_packages).run(cls, cfg)
    console.print(f"{outcome.label}: {outcome.status} -> {outcome.run_dir}"
                  + (f" ({outcome.reason})" if outcome.reason else ""))
    show_leaderboard(out)
    exit_unless_complete([(outcome.label, outcome.status, outcome.reason)])


@app.command("export-weights")
def export_weights(
    run_dir: Path = typer.Argument(..., metavar="RUN_DIR", help="a finished run folder"),
    output: Path = typer.Argument(..., metavar="OUTPUT", help="OUT.safetensors"),
    checkpoint: Optional[Path] = typer.Option(None, help="weights other than the run's last.pt"),
    overwrite: bool = typer.Option(False, help="replace OUTPUT if it exists"),
) -> None:
    """Write the networks a run's super_resolve uses as safetensors, its config in the metadata
    (load them elsewhere, or into a run with --set init.from=OUT.safetensors)."""
    from benchsr.run.infer import load_trained
    from benchsr.nn.weights import export
    if output.exists() and not overwrite:
        raise BenchError(f"{output}: exists; --overwrite replaces it")
    import torch
    trained = load_trained(run_dir, checkpoint, torch.device("cpu"), "fp32")
    nets = export(trained.method, trained.method.cfg, output)
    console.print(f"wrote {output}: {', '.join(nets)} of {trained.label} (x{trained.scale})")


def launch_sweep(specs: list, dataset: str, profile: str, data_dir, out: Path, resume: bool,
                 kind: str, jobs: int, wait: bool, slurm_asked: dict) -> None:
    """One submitit job per (method:preset, overrides); outcomes and the leaderboard at the end.
    On Slurm, the partition and its GPUs are checked (sinfo) before anything is written."""
    from benchsr.run import slurm
    from benchsr.run.launch import JobSpec, launch
    plan = None
    if kind == "slurm":
        plan = slurm.plan(**slurm_asked)
        console.print(f"slurm: {plan.why}")
    todo = [JobSpec(method, dataset, profile, overrides, str(out),
                    str(data_dir) if data_dir else None, resume)
            for method, overrides in specs]
    console.print(f"launching {len(todo)} {kind} job(s) into {out}")
    outcomes = launch(todo, kind, out, jobs, wait, plan)
    if not wait:
        console.print(f"submitted; `benchsr status {out}` follows them, `benchsr leaderboard "
                      f"--root {out}` builds the tables")
        return
    for o in outcomes:
        console.print(f"{o['label']}: {o['status']}" + (f" ({o['reason']})" if o["reason"] else ""))
    show_leaderboard(out)
    exit_unless_complete([(o["label"], o["status"], o["reason"]) for o in outcomes])


@app.command()
def status(out: Path = typer.Argument(Path("results"), metavar="OUT",
                                      help="a results root")) -> None:
    """Queued, running, finished and failed runs under a results root (and launched jobs)."""
    from rich.table import Table

    from benchsr.run.launch import status as lines
    table = Table(title=f"runs in {out}")
    for col in ("run", "label", "seed", "status", "reason"):
        table.add_column(col, overflow="fold")
    for line in lines(out):
        table.add_row(*(str(line[c]) for c in ("run", "label", "seed", "status", "reason")))
    console.print(table)
