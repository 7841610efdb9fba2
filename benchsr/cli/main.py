"""The `benchsr` command: list, run, reproduce, leaderboard, infer (and, from cli_models.py,
export-inputs, evaluate, export-weights)."""
from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path
from typing import List, Optional

import typer

try:                      # typer >= 0.20 carries its own click
    from typer._click.exceptions import UsageError
    from typer.exceptions import Abort
except ImportError:       # pragma: no cover - older typer
    from click.exceptions import Abort, UsageError
from rich.table import Table
from rich.text import Text

from benchsr import config, experiments, registry
from benchsr.cli.common import (app, beside_runs, check_data_dir, check_out_folder, console, err_console,
                                exit_unless_complete, progress_bars, show_leaderboard, show_reproduced)
from benchsr.cli.models import (evaluate_predictions, export_data, export_inputs, export_weights,
                                status)
from benchsr.errors import BenchError
from benchsr.runtime.guards import Interrupted, UserInterrupt, exit_on_signals, stop_reason

# every command of the app; those of cli_models register when it is imported above
__all__ = ["app", "main", "list_plugins", "run", "reproduce", "leaderboard", "infer",
           "export_inputs", "export_data", "evaluate_predictions", "export_weights", "status"]


def _plugin_table(kind: str) -> Table:
    t = Table(title=kind)
    cols = (["name", "presets", "data", "scales", "planes", "description", "origin"] if kind == "methods"
            else ["name", "scale", "description", "origin"])
    for col in cols:
        t.add_column(col, overflow="fold")
    for name, entry in sorted(registry.discover(kind).items()):
        for other in entry.shadowed:
            t.add_row(name, *[""] * (len(cols) - 3),
                      Text(f"SHADOWED by {entry.origin}: not used", style="yellow"), other.origin)
        if entry.broken:
            t.add_row(name, *[""] * (len(cols) - 3), Text(f"BROKEN: {entry.error}", style="red"),
                      entry.origin)
            continue
        c = entry.cls
        if kind == "methods":
            t.add_row(name, ", ".join(config.preset_names(c)), c.data,
                      ",".join(map(str, c.scales)), ",".join(c.planes), c.description, entry.origin)
        else:
            label = c.description + (" [SIMULATED]" if c.simulated else "")
            t.add_row(name, f"{c.scale}x", label, entry.origin)
    return t


@app.command("list")
def list_plugins() -> None:
    """Every method (with presets, data needs, scales) and every dataset."""
    console.print(_plugin_table("methods"))
    console.print(_plugin_table("datasets"))


@app.command("check")
def check_plugin(
    name: str = typer.Argument(..., metavar="NAME", help="a method or dataset (see `benchsr list`)"),
    preset: str = typer.Option("default", help="the method's preset to check"),
    data_dir: Optional[Path] = typer.Option(None, help="the dataset's folder, where it needs one"),
) -> None:
    """Check one plugin, built-in or installed, against the plugin contract at smoke size on the
    CPU: a method's training step, output, state_dict and tiles; a dataset's protocol and
    pairs. Exit 0 when every check passes, 1 naming what failed."""
    from benchsr.run.check import check_plugin as run_checks
    check_data_dir(data_dir)
    kind, findings = run_checks(name, preset, data_dir)
    for f in findings:
        mark = ("ok  ", "green") if f.ok else ("FAIL", "red")
        console.print(Text.assemble(mark, f"  {f.check}", (f": {f.detail}" if f.detail else "")))
    failed = [f.check for f in findings if not f.ok]
    what = f"{kind} {name}" + (f":{preset}" if kind == "method" else "")
    if failed:
        err_console.print(f"{what}: {len(failed)} of {len(findings)} checks failed: "
                          + "; ".join(failed), highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    console.print(f"{what}: all {len(findings)} checks passed")


def _parse_methods(spec: str) -> list[tuple[type, str]]:
    """'all', 'name[:preset],...' or both ('all,esrgan:psnr') -> [(class, preset)], each once;
    validated before anything is written."""
    table = registry.discover("methods")
    names = []
    for item in (s.strip() for s in spec.split(",") if s.strip()):
        names += ([f"{n}:{p}" for n, e in sorted(table.items()) if not e.broken
                   for p in config.presets_in_all(e.cls)] if item == "all" else [item])
    if not names:
        raise BenchError("--methods is empty")
    out = []
    # "name", "name:" and "name:default" are one run
    for item in dict.fromkeys(f"{n.partition(':')[0]}:{n.partition(':')[2] or 'default'}"
                              for n in names):
        name, _, preset = item.partition(":")
        cls = registry.get("methods", name)
        if preset not in config.preset_names(cls):
            raise BenchError(f"unknown preset '{preset}' for method '{name}' "
                             f"(available: {', '.join(config.preset_names(cls))})")
        out.append((cls, preset))
    return out


@app.command()
def run(
    methods: Optional[str] = typer.Option(None, help="'all' and/or a comma list of "
                                                     "METHOD[:PRESET]  [default: all]"),
    dataset: Optional[str] = typer.Option(None, help="dataset adapter (see `benchsr list`)  "
                                                     "[default: lung-ct]"),
    profile: Optional[str] = typer.Option(None, help="smoke | quick | standard | paper  "
                                                     "[default: quick]"),
    data_dir: Optional[Path] = typer.Option(None, help="the dataset's folder, where it needs one"),
    series: Optional[str] = typer.Option(None, help="a DICOM folder with several series: the "
                                                    "SeriesInstanceUID to read (data.series)"),
    set_: List[str] = typer.Option([], "--set", help="override a config key: KEY=VALUE"),
    device: Optional[str] = typer.Option(None, help="auto | cpu | cuda | cuda:N"),
    precision: Optional[str] = typer.Option(None, help="fp32 | bf16 | fp16 (autocast) | auto "
                                                       "(bf16 where native)"),
    seed: Optional[int] = typer.Option(None),
    seeds: Optional[str] = typer.Option(None, help="run each method once per seed, e.g. 0,1,2"),
    config_file: Optional[Path] = typer.Option(
        None, "--config", help="a YAML experiment file: a run's config.yaml (a replay) or any part "
                               "of one, with _base_: to inherit (--set still wins)"),
    out: Path = typer.Option(Path("results"), help="results root (runs/ and leaderboard)"),
    resume: bool = typer.Option(False, help="continue the newest unfinished run of the same config"),
    launcher: Optional[str] = typer.Option(None, help="local | slurm: one submitit job per "
                                                      "(method, preset, seed)"),
    jobs_at_once: int = typer.Option(1, "--jobs", help="--launcher local: jobs at a time"),
    slurm_partition: Optional[str] = typer.Option(None, help="[default: the cluster's default]"),
    slurm_gpus_per_job: Optional[int] = typer.Option(
        None, min=0, help="[default: 1 where the partition has GPUs (sinfo), else 0]"),
    slurm_tasks_per_job: Optional[int] = typer.Option(
        None, min=1, help="> 1: each job is a data-parallel run  [default: GPUs per job, or 1]"),
    slurm_time: int = typer.Option(0, min=0, help="minutes per job (0: a day)"),
    slurm_option: List[str] = typer.Option(
        [], help="any sbatch option, KEY=VALUE, repeatable: account=lab, qos=short, mem=16G"),
    wait: bool = typer.Option(True, help="wait for launched jobs, then build the leaderboard"),
    debug: bool = typer.Option(False, help="show tracebacks"),
) -> None:
    """Train (where the method trains) and evaluate methods on a dataset; write run folders and
    the leaderboard."""
    if debug:
        os.environ["BENCHSR_DEBUG"] = "1"
    check_out_folder(out)
    doc = experiments.read(config_file) if config_file is not None else {}
    methods, dataset, profile = _named(methods, dataset, profile, doc, config_file)
    chosen = _parse_methods(methods)
    ds_cls = registry.get("datasets", dataset)
    check_data_dir(data_dir)
    if series is not None:
        set_ = [*set_, f"data.series={series}"]
    from_file = {(cls, preset): experiments.overrides(doc, cls, preset, ds_cls, profile, config_file)
                 for cls, preset in chosen}
    seed_list = _parse_seeds(seeds, seed)
    jobs = [(cls, config.resolve(cls, preset, ds_cls, profile,
                                 from_file[cls, preset] + _extra(set_, device, precision, s)))
            for cls, preset in chosen for s in seed_list]    # every config checked here, first
    jobs = _for_the_plane(jobs, methods, dataset)
    chosen = [pair for pair in chosen if any(cls is pair[0] for cls, _ in jobs)]
    slurm_set = (slurm_partition, slurm_gpus_per_job, slurm_tasks_per_job, slurm_time or None,
                 slurm_option or None)
    if launcher != "slurm" and any(v is not None for v in slurm_set):
        raise BenchError("--slurm-* options need --launcher slurm")
    if launcher is not None:
        from benchsr.cli.models import launch_sweep
        specs = [(f"{cls.name}:{preset}", from_file[cls, preset] + _extra(set_, device, precision, s))
                 for cls, preset in chosen for s in seed_list]
        slurm = {"partition": slurm_partition, "gpus_per_job": slurm_gpus_per_job,
                 "tasks_per_job": slurm_tasks_per_job, "time_min": slurm_time,
                 "options": slurm_option}
        launch_sweep(specs, dataset, profile, data_dir, out, resume, launcher, jobs_at_once,
                     wait, slurm)
        return
    from benchsr.runtime import distributed
    world = distributed.init()         # a world of one unless launched by torchrun
    outcomes = _execute(jobs, ds_cls, data_dir, out, resume, show=world.is_main)
    if world.is_main:
        show_leaderboard(out)
    exit_unless_complete([(o.label, o.status, o.reason) for o in outcomes])


def _named(methods, dataset, profile, doc: dict, path) -> tuple[str, str, str]:
    """--methods, --dataset and --profile, else the experiment file's, else the defaults; the
    two saying different things is an error, never a silent choice."""
    given = experiments.identity(doc, path) if path is not None else {}
    if "method" in given:
        in_file = given["method"] + (f":{given['preset']}" if "preset" in given else "")
        if methods is not None and _parse_methods(methods) != _parse_methods(in_file):
            raise BenchError(f"--methods {methods} and --config {path} (method: {in_file}) "
                             f"disagree: give the method once")
        methods = in_file
    for option, key, value in (("--dataset", "dataset", dataset), ("--profile", "profile", profile)):
        if key in given and value is not None and value != given[key]:
            raise BenchError(f"{option} {value} and --config {path} ({key}: {given[key]}) "
                             f"disagree: give it once")
    return ("all" if methods is None else methods, dataset or given.get("dataset", config.DEFAULT_DATASET),
            profile or given.get("profile", "quick"))


def _for_the_plane(jobs: list, spec: str, dataset: str) -> list:
    """The jobs whose method runs the dataset's track (data.plane): `all` means every method
    for it; a method named that cannot is refused before anything is written."""
    plane = jobs[0][1]["data"].get("plane", "axial")
    named = {item.strip().partition(":")[0] for item in spec.split(",")} - {"all"}
    kept = []
    for cls, cfg in jobs:
        why = config.wrong_track(cls, plane, dataset)
        if not why:
            kept.append((cls, cfg))
        elif cls.name in named:
            fits = sorted(n for n, e in registry.discover("methods").items()
                          if not e.broken and plane in e.cls.planes)
            raise BenchError(f"{why}; methods for it: {', '.join(fits) or 'none'}")
    if not kept:
        raise BenchError(f"no method of --methods {spec} runs the {plane} track")
    return kept


def _parse_seeds(seeds: str | None, seed: int | None) -> list[int | None]:
    """--seeds 0,1,2 -> [0, 1, 2]; without it, the one --seed (or the config's)."""
    if seeds is None:
        return [seed]
    if seed is not None:
        raise BenchError("give --seed or --seeds, not both")
    try:
        out = [int(s) for s in seeds.split(",") if s.strip()]
    except ValueError:
        raise BenchError(f"--seeds {seeds!r}: expected integers like 0,1,2") from None
    if not out or min(out) < 0 or len(set(out)) != len(out):
        raise BenchError(f"--seeds {seeds!r}: expected distinct integers >= 0")
    return out


def _extra(set_: list[str], device, precision, seed) -> list[str]:
    # --device and --precision are strings: quoted, so that YAML never reads 'cuda:-1:' as a map
    return list(set_) + [f"{k}={json.dumps(v) if isinstance(v, str) else v}" for k, v in (
        ("device", device), ("precision", precision), ("seed", seed)) if v is not None]


def _execute(jobs: list[tuple[type, dict]], ds_cls, data_dir: Path | None, out: Path,
             resume: bool = False, show: bool = True) -> list:
    """Load the dataset once, then run each (method class, config) job with progress bars."""
    check_data_dir(data_dir)
    from benchsr.run.fastpaths import check as check_runtime
    from benchsr.runtime.devices import check_precision, pick_device
    from benchsr.run.runner import Runner
    for _, cfg in jobs:
        check_precision(cfg["precision"], pick_device(cfg["device"]))
        check_runtime(cfg["runtime"])
    with console.status(f"loading {ds_cls.name} ...") if show else contextlib.nullcontext():
        data = ds_cls(jobs[0][1], data_dir).read()
    from benchsr.run.build import check_fits, check_init
    for cls, cfg in jobs:               # every job's sizes and init.from before the first folder
        check_fits(cfg, data, cls)
        check_init(cls, cfg, data)
    outcomes = []
    with progress_bars() if show else contextlib.nullcontext() as progress:
        runner = Runner(data, out, progress, ds_cls.provenance_packages)
        for cls, cfg in jobs:
            outcome = runner.run(cls, cfg, resume=resume)
            if show:
                colour = "green" if outcome.status == "complete" else "red"
                progress.console.print(Text.assemble((f"{outcome.label}: {outcome.status}", colour),
                                                     f" {outcome.reason} -> {outcome.run_dir}"))
            outcomes.append(outcome)
    return outcomes


@app.command()
def reproduce(
    table: str = typer.Argument(..., metavar="TABLE",
                                help="a paper table, e.g. table2, table3, table4, table6, "
                                     "table7 (see the plugins' paper_tables.yaml)"),
    profile: str = typer.Option("quick", help="smoke | quick | standard | paper (paper = the published "
                                              "configs; the others are smaller and not comparable)"),
    data_dir: Optional[Path] = typer.Option(None, help="the dataset's folder, where it needs one"),
    dataset: Optional[str] = typer.Option(None, help="run the rows on this dataset instead"),
    set_: List[str] = typer.Option([], "--set", help="override a config key in every row"),
    device: Optional[str] = typer.Option(None),
    precision: Optional[str] = typer.Option(None),
    seed: Optional[int] = typer.Option(None),
    seeds: Optional[str] = typer.Option(None, help="run every row once per seed, e.g. 0,1,2"),
    rows: Optional[str] = typer.Option(None, help="only these rows, by name or first word "
                                                  "(e.g. A,C,H,I,M), and the claims between them"),
    out: Path = typer.Option(Path("results"), help="results root (runs are reused from here)"),
    runs_of: Optional[Path] = typer.Option(None, help="rebuild from the run folders an earlier "
                                                      "report lists (under OUT/runs), running nothing"),
    debug: bool = typer.Option(False, help="show tracebacks"),
) -> None:
    """Run (reuse, or resume) the runs behind a paper table and print it beside the published
    numbers."""
    if debug:
        os.environ["BENCHSR_DEBUG"] = "1"
    from benchsr.report import claims as judge
    from benchsr.report import reproduce as rep
    spec = rep.select_rows(rep.check_known(table, rep.paper_tables()), rows)
    seed_list = [s for s in _parse_seeds(seeds, seed) if s is not None] or None
    rows = rep.row_configs(spec, profile, _extra(set_, device, precision, None), dataset, seed_list)
    same, here = rep.same_config_rows(rows), rep.settings_here(spec, rows)
    by_row = _table_runs(spec, [r for r in rows if r[0]["name"] not in same],
                         registry.get("datasets", dataset or spec["dataset"]), data_dir, out, runs_of)
    by_row.update({row: by_row.get(first, [None]) for row, first in same.items()})
    failed = rep.failed_runs([r for runs in by_row.values() for r in runs if r is not None])
    by_row = {name: [r for r in runs if r not in failed] or [None] for name, runs in by_row.items()}
    missing = [name for name, runs in by_row.items() if None in runs]
    done = [(row, by_row[row["name"]]) for row in spec["rows"] if row["name"] not in missing]
    frame = rep.compare(done, here)
    claims = judge.verdicts(spec, {name: runs for name, runs in by_row.items() if None not in runs}, same)
    note, md = rep.report(table, spec, frame, profile, set_, missing, dataset, seed_list, claims,
                          rep.caveats(done) + rep.same_config_lines(same, profile, here)
                          + rep.failure_lines(failed), rep.clinical_frame(done))
    from benchsr.results import write_text
    path = out / "reproduce" / f"{'-'.join([table, *([dataset] if dataset else []), profile])}.md"
    md += rep.curves_section(spec, done, path.with_name(path.stem + "-curves.png"))
    write_text(path, md)
    show_reproduced(note, frame, claims, path)
    if missing:
        err_console.print(f"error: {len(missing)} row(s) have no complete run: {', '.join(missing)}"
                          f" ({path} lists why)", highlight=False, soft_wrap=True)
        raise typer.Exit(1)


def _table_runs(spec: dict, rows: list, ds_cls, data_dir, out: Path, runs_of: Path | None) -> dict:
    """Row name -> its run folders (one per seed; None where none finished): those an earlier
    report lists (`runs_of`), else the finished runs of each config, after running the missing
    ones (a stopped run continues; rows sharing a config run once)."""
    from benchsr.report import reproduce as rep
    if runs_of is not None:     # the code's config may have moved on since those runs
        return rep.listed_runs(runs_of, out, spec)
    todo = [(cls, cfg) for _, cls, cfg in rows if rep.finished_run(out, cfg, True) is None]
    if todo:
        console.print(f"{len(rows) - len(todo)} of {len(rows)} runs are reused; running {len(todo)}")
        unique = {json.dumps(cfg, sort_keys=True): (cls, cfg) for cls, cfg in todo}
        stopped = [job for job in unique.values() if rep.stopped_run(out, job[1])]
        fresh = [job for job in unique.values() if job not in stopped]
        for jobs, resume in ((stopped, True), (fresh, False)):   # a stopped run continues
            if jobs:
                _execute(jobs, ds_cls, data_dir, out, resume=resume)
    by_row: dict[str, list] = {}
    for row, _, cfg in rows:
        by_row.setdefault(row["name"], []).append(rep.finished_run(out, cfg, True))
    return by_row


@app.command()
def leaderboard(
    runs: List[Path] = typer.Argument(None, metavar="RUNS",
                                      help="run folders, or folders holding them "
                                           "(default: OUT/runs)"),
    out: Optional[Path] = typer.Option(None, "--out", "--root",
                                       help="where leaderboard.md/.html and leaderboard/ are "
                                            "written (default: beside RUNS, else results)"),
) -> None:
    """Rebuild the leaderboard (Markdown, CSV, LaTeX, HTML, pictures) from run folders."""
    for path in runs or [(out or Path("results")) / "runs"]:
        if not path.is_dir():
            raise BenchError(f"{path}: not a folder (run `benchsr run` first)")
    show_leaderboard(out or beside_runs(runs), runs)


@app.command()
def infer(
    run_dir: Path = typer.Argument(..., metavar="RUN_DIR",
                                   help="a run folder (its config.yaml, manifest.json and "
                                        "checkpoints/last.pt)"),
    input_path: Path = typer.Argument(..., metavar="INPUT", help="a CT volume SimpleITK reads "
                                      "(.nii.gz, .nrrd, .mha, ...) or a DICOM folder"),
    output: Path = typer.Argument(..., metavar="OUTPUT",
                                  help="the super-resolved volume, .nii or .nii.gz"),
    checkpoint: Optional[Path] = typer.Option(None, help="weights other than the run's last.pt"),
    slices: Optional[str] = typer.Option(None, help="axial slice range START:STOP (0-based)"),
    roi: Optional[str] = typer.Option(None, help="in-plane region X0:X1,Y0:Y1 (input voxels)"),
    tile: str = typer.Option("auto", help="LR tile size; 0 = whole slices at once; auto = "
                                          "timed on the CPU, batched 128² tiles on a GPU"),
    tile_batch: str = typer.Option("auto", help="tiles per forward; auto = as many as fit (GPU)"),
    blend: str = typer.Option("mean", help="where tiles overlap: mean | gaussian | linear"),
    overlap: float = typer.Option(0.25, help="tile overlap fraction"),
    device: str = typer.Option("auto", help="auto | cpu | cuda | cuda:N"),
    precision: str = typer.Option("fp32", help="fp32 | bf16 | fp16 (autocast) | auto"),
    series: Optional[str] = typer.Option(None, help="the SeriesInstanceUID, in a DICOM folder "
                                                    "holding several series"),
    overwrite: bool = typer.Option(False, help="replace OUTPUT if it exists"),
    allow_unfinished: bool = typer.Option(False, help="use a failed or unfinished run's last "
                                                      "checkpoint"),
    debug: bool = typer.Option(False, help="show tracebacks"),
) -> None:
    """Super-resolve a whole CT volume with a trained run; writes NIfTI that overlays the input
    (spacing / k in-plane, or along z for a through-plane run; direction kept)."""
    if debug:
        os.environ["BENCHSR_DEBUG"] = "1"
    from benchsr.run.infer import check_request, load_trained, super_resolve_volume
    from benchsr.runtime.devices import check_precision, pick_device, resolve_precision
    tiling = check_request(input_path, output, overwrite,      # before any work
                           {"tile": tile, "tile_batch": tile_batch, "blend": blend, "overlap": overlap})
    dev = pick_device(device)
    check_precision(precision, dev)
    precision, _ = resolve_precision(precision, dev)
    trained = load_trained(run_dir, checkpoint, dev, precision, allow_unfinished)
    if trained.weights:
        console.print(f"weights: {trained.weights}")
    def warn(text: str) -> None:
        err_console.print(f"warning: {text}", highlight=False, soft_wrap=True)

    with progress_bars() as progress:
        if trained.plane == "through":     # thick slices to thin: tiles are not used
            from benchsr.run.infer_z import super_resolve_volume_z
            done = super_resolve_volume_z(trained, input_path, output, slices, roi, progress,
                                          overwrite, series, warn)
        else:
            done = super_resolve_volume(trained, input_path, output, slices, roi, tiling,
                                        progress, overwrite, series, warn)
    console.print(f"wrote {done['output']}: {' x '.join(map(str, done['shape_xyz']))} voxels, "
                  f"spacing {', '.join(f'{v:.4g}' for v in done['spacing'])} mm, values in "
                  f"{done['units']} ({done['value_range'][0]:g} to {done['value_range'][1]:g}); "
                  f"tiling: {done['tiling']['why']}")


def _console_logging() -> None:
    """Each run's messages (runlog.py) also go to the console, through rich."""
    import logging

    from rich.logging import RichHandler
    logger = logging.getLogger("benchsr")
    if not logger.handlers:
        logger.addHandler(RichHandler(console=console, show_path=False))
        logger.setLevel(logging.INFO)


def main() -> None:
    _console_logging()
    try:
        with exit_on_signals():      # SIGTERM and SIGHUP unwind like Ctrl-C, in every command
            code = app(standalone_mode=False)   # click's usage errors come here, told in one line
    except UsageError as exc:
        where = f"benchsr {exc.ctx.info_name} --help" if exc.ctx and exc.ctx.parent else "benchsr --help"
        _one_line("error:", f"{exc.format_message()} ({where})")
        sys.exit(2)
    except (Interrupted, UserInterrupt, Abort) as exc:
        how = stop_reason(exc) if isinstance(exc, (Interrupted, UserInterrupt)) else "Ctrl-C"
        _one_line("stopped:", f"{how}; what was being written was removed or left resumable")
        sys.exit(exc.code if isinstance(exc, Interrupted) else 130)
    except (BenchError, OSError) as exc:
        if os.environ.get("BENCHSR_DEBUG"):
            raise
        if isinstance(exc, OSError):   # a file benchsr reads or writes: name it, in one line
            exc = BenchError(f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": "))
        _one_line("error:", str(exc))
        sys.exit(2)
    if code == 130:                  # typer turns Ctrl-C into exit 130, silently
        _one_line("stopped:", "Ctrl-C; what was being written was removed or left resumable")
    if code:
        sys.exit(code)


def _one_line(tag: str, said: str) -> None:
    err_console.print(Text.assemble((tag, "red"), f" {said}"), highlight=False, soft_wrap=True)
