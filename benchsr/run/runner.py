"""The run-folder lifecycle every method shares. `Runner.run` makes (or resumes) the folder and
its manifest, then hands each room what it needs, in order: build (build.py), training
(training.py, with validation.py and best.py), evaluation (evaluation/evaluate.py, or
evaluation/through_plane.py on the through-plane track), reporting (reporting.py), the best
checkpoint's scores (best.py) and the output check (a degenerate output fails the run, its
scores kept on disk but never ranked). A failure in any of them is
recorded with the stage it happened in; no room calls back into the runner."""
from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from benchsr import results
from benchsr.config import total_steps
from benchsr.contracts import BenchError, PreparedData
from benchsr.evaluation import clinical, cost, metrics
from benchsr.evaluation.evaluate import choose_images, degenerate_reason, evaluate_run
from benchsr.evaluation.through_plane import evaluate_volumes
from benchsr.run import best, fastpaths, reporting
from benchsr.run.build import build_method, check_fits, check_init
from benchsr.run.manifest import PluginExit, new_manifest, plugins_used, record_failure, record_stop
from benchsr.run.runlog import RunLog
from benchsr.run.stages import Stage, shown
from benchsr.run.training import Timing, fit
from benchsr.run.validation import validator
from benchsr.runtime import distributed
from benchsr.runtime.devices import check_precision, pick_device, resolve_precision
from benchsr.runtime.guards import by_signal, exit_on_signals, stop_reason, time_limit


@dataclass
class RunOutcome:
    label: str
    run_dir: Path
    status: str
    reason: str = ""


class Runner:
    def __init__(self, data: PreparedData, out_root: Path, progress=None,
                 packages: tuple[str, ...] = (), job: dict | None = None):
        self.data, self.out_root, self.progress = data, out_root, progress
        self.packages = packages          # the dataset's provenance packages
        self.job = job                    # the launcher's job ({"launcher", "id"}), if any
        self._lpips = None

    def lpips_metric(self, device):
        if self._lpips is None:
            self._lpips = metrics.LPIPSMetric(device)
        return self._lpips

    # ---- the lifecycle -----------------------------------------------------------------------
    def run(self, method_cls, cfg: dict, resume: bool = False) -> RunOutcome:
        device = pick_device(cfg["device"])
        check_precision(cfg["precision"], device)
        precision, why = resolve_precision(cfg["precision"], device)
        runtime, fast_why = fastpaths.resolve(cfg["runtime"], device)
        check_fits(cfg, self.data, method_cls)   # track and sizes: one line, no run folder
        if cfg["init"]["from"]:      # a file that does not fit: one line, no run folder
            check_init(method_cls, cfg, self.data)
            # its content is part of the config: two files at one path are never seeds of one row
            sha = results.file_sha256(cfg["init"]["from"])
            cfg = {**cfg, "init": {**cfg["init"], "sha256": sha}}
        asked, cfg = cfg, {**cfg, "precision": precision, "runtime": runtime}   # config.yaml: as asked
        if method_cls.data == "paired" and not self.data.protocol.get("degradation"):
            raise BenchError(f"{method_cls.name} trains on pairs, but {cfg['dataset']} declares "
                             f"no degradation to make them from its HR patches")
        label = results.run_label(cfg["method"], cfg["preset"], cfg["variant"])
        done = resume and results.complete_run(self.out_root, cfg["dataset"], label, asked)
        if done:        # a sweep resumed after its end starts nothing new
            return RunOutcome(label, done, "complete", "already complete (--resume)")
        run_dir, lock = self._folder(asked, label, resume)
        main_dir = distributed.broadcast(str(run_dir))
        manifest = new_manifest(cfg, label, device, self.data, self.packages)
        manifest["plugins"] = plugins_used(method_cls, cfg["dataset"])
        manifest["job"] = self.job           # a launcher's: `benchsr status` asks its scheduler
        manifest["deterministic"] = bool(method_cls.deterministic)   # seeds are no replication
        if distributed.world().active:
            manifest["grad_sync"] = distributed.grad_sync()
        manifest["precision_reason"] = why
        manifest["fast_path"] = {"applied": {k: v for k, v in runtime.items() if k != "fast"},
                                 "why": fast_why}
        stage, log = Stage(), None
        try:
            results.write_yaml(run_dir / "config.yaml", asked)
            results.write_json(run_dir / "manifest.json", manifest)
            log = RunLog(run_dir, cfg, label)
            log.info(f"{label} on {cfg['dataset']} ({cfg['profile']}), seed {cfg['seed']}, "
                     f"{device} {cfg['precision']}: {run_dir}")
            self._attempt(method_cls, cfg, device, run_dir, manifest, stage, log)
            manifest["finished"] = results.now()
            results.write_json(run_dir / "manifest.json", manifest)
            log.info(f"{manifest['status']}" + (f": {manifest['reason']}" if "reason" in manifest else ""))
        finally:
            if log is not None:
                log.close()
            if lock is not None:
                lock.release(remove=manifest["status"] == "complete")
            if not distributed.world().is_main:
                shutil.rmtree(run_dir, ignore_errors=True)
        return RunOutcome(label, Path(main_dir), manifest["status"], manifest.get("reason", ""))

    def _attempt(self, method_cls, cfg, device, run_dir: Path, manifest: dict, stage: Stage,
                 log: RunLog) -> None:
        """The rooms, within the run's time limit. A failure is recorded and the others go on;
        a signal's stop is recorded (resumable) and goes on up."""
        try:
            with time_limit(float(cfg["time_limit_s"])), exit_on_signals():
                self._rooms(method_cls, cfg, device, run_dir, manifest, stage, log)
            manifest["status"] = "complete"
        except Exception as exc:  # noqa: BLE001 - recorded as a failed run, the others go on
            record_failure(manifest, exc, stage.name)
        except (SystemExit, KeyboardInterrupt) as exc:
            if not by_signal(exc):    # a plugin that exits fails its run
                record_failure(manifest, PluginExit(exc), stage.name)
            else:
                record_stop(manifest, stop_reason(exc), stage.name, run_dir)
                raise

    def _folder(self, cfg: dict, label: str, resume: bool):
        """A new (or, with resume, the newest unfinished) run folder, locked. Ranks other than
        0 write into a scratch folder that is thrown away: rank 0 publishes."""
        if not distributed.world().is_main:
            return Path(tempfile.mkdtemp(prefix="benchsr-rank")), None
        found = results.find_resumable(self.out_root, cfg["dataset"], label, cfg) if resume else None
        return found or results.new_run_dir(self.out_root, cfg["dataset"], label, cfg["profile"])

    # ---- the three rooms ---------------------------------------------------------------------
    def _rooms(self, method_cls, cfg, device, run_dir: Path, manifest: dict, stage: Stage,
               log: RunLog) -> None:
        method = build_method(method_cls, cfg, device, self.data, manifest["notes"])
        manifest["recipe_changes"] = method.ctx.recipe_changes   # filled while it builds
        memory = cost.PeakMemory(device)
        timing = Timing()
        if method_cls.data != "none":
            with stage("training"), shown(self.progress, f"train {manifest['label']}") as bar:
                timing = fit(method, self.data, cfg, method.ctx, run_dir, manifest, stage, bar, log,
                             validator(method, self.data, cfg, device))
        lp, lpips_note = self._lpips_for(cfg, device, manifest["notes"])
        protocol, through = self.data.protocol, self.data.protocol.get("plane") == "through"
        images = [] if through else choose_images(self.data, cfg)
        measures = clinical.Context(lpips=lp, hr_window=protocol.get("hr_window"),
                                    hr_units=protocol.get("hr_units", "HU"))
        evaluate_all = partial(evaluate_volumes, method, self.data.eval_volumes) if through else \
            partial(evaluate_run, method, images)
        units = len(self.data.eval_volumes if through else images)
        with stage("evaluation"), shown(self.progress, f"eval  {manifest['label']}", units) as bar:
            rows, kept, ms, volume_rows = evaluate_all(cfg, device, measures, stage, bar)
        with stage("reporting"):
            reporting.write_results(run_dir, rows, kept, cfg, manifest, self.data.scale, lpips_note,
                                    volume_rows)
            log.samples(kept, total_steps(cfg))
            log.info("evaluated " + ", ".join(
                f"{m} {np.nanmean([r[m] for r in rows if r.get(m) is not None]):.4g}"
                for m in ("psnr", "ssim") if any(r.get(m) is not None for r in rows)))
            one_input = (tuple(self.data.eval_volumes[0].thick.shape) if through   # thick slices
                         else (1, 1, *self.data.eval_images[0].lr.shape))
            reporting.write_cost(run_dir, method, cfg, device, timing, ms, kept, one_input, memory)
        with stage("scoring the best-on-validation checkpoint"):
            best.score(method, cfg, device, run_dir, manifest, self.data, evaluate_all, units,
                       measures, lpips_note, (rows, kept, volume_rows), stage, self.progress)
        with stage("the output check"):     # after both are written: the numbers stay on disk
            floor = float(cfg["eval"]["min_input_r"])
            if floor <= 0:
                manifest["notes"].append("output check off (eval.min_input_r = 0)")
            reason = degenerate_reason(rows, floor)
            if reason:
                raise BenchError(reason)

    def _lpips_for(self, cfg: dict, device, notes: list):
        """(LPIPS metric or None, the tables' note when it is None)."""
        if not cfg["eval"]["lpips"]:
            return None, "n/a: disabled (eval.lpips=false)"
        lp = self.lpips_metric(device)
        if not lp.available:
            notes.append(f"LPIPS {lp.reason}: {lp.detail}")
            return None, lp.reason
        return lp, None
