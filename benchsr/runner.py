"""The run-folder lifecycle every method shares. `Runner.run` makes (or resumes) the folder, then
walks three rooms in order: training (training.py), evaluation (evaluate.py) and reporting
(reporting.py); a failure in any of them is recorded with the stage it happened in."""
from __future__ import annotations

import contextlib
import random
import shutil
import tempfile
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import best, clinical, cost, distributed, fastpaths, metrics, reporting, results, weights
from .contracts import BenchError, PreparedData, RunContext
from .devices import check_precision, pick_device, resolve_precision
from .evaluate import choose_images, evaluate, evaluate_run, validation_images
from .guards import time_limit
from .runlog import RunLog
from .training import Timing, fit, seed_epoch

class Stage:
    """Where a run is. `with stage("step 12"): ...` names the stage while the block runs; when
    the block raises, the name stays, so the failure's reason can say where it happened."""

    def __init__(self, name: str = "set-up"):
        self.name = name

    @contextlib.contextmanager
    def __call__(self, name: str):
        previous, self.name = self.name, name
        yield
        self.name = previous


@dataclass
class RunOutcome:
    label: str
    run_dir: Path
    status: str
    reason: str = ""


class Runner:
    def __init__(self, data: PreparedData, out_root: Path, progress=None,
                 packages: tuple[str, ...] = ()):
        self.data, self.out_root, self.progress = data, out_root, progress
        self.packages = packages          # the dataset's provenance packages
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
        asked, cfg = cfg, {**cfg, "precision": precision, "runtime": runtime}   # config.yaml: as asked
        if method_cls.data == "paired" and not self.data.protocol.get("degradation"):
            raise BenchError(f"{method_cls.name} trains on pairs, but {cfg['dataset']} declares "
                             f"no degradation to make them from its HR patches")
        label = results.run_label(cfg["method"], cfg["preset"], cfg["variant"])
        run_dir, lock = self._folder(asked, label, resume)
        main_dir = distributed.broadcast(str(run_dir))
        manifest = self._manifest(cfg, label, device)
        manifest["plugins"] = self._plugins(method_cls, cfg["dataset"])
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
            try:
                with time_limit(float(cfg["time_limit_s"])):
                    self._rooms(method_cls, cfg, device, run_dir, manifest, stage, log)
                manifest["status"] = "complete"
            except Exception as exc:  # noqa: BLE001 - recorded as a failed run, the others go on
                self._failed(manifest, exc, stage.name)
            manifest["finished"] = results.now()
            results.write_json(run_dir / "manifest.json", manifest)
            log.info(f"{manifest['status']}" + (f": {manifest['reason']}" if "reason" in manifest else ""))
        finally:
            if log is not None:
                log.close()
            if lock is not None:
                lock.release()
            if not distributed.world().is_main:
                shutil.rmtree(run_dir, ignore_errors=True)
        return RunOutcome(label, Path(main_dir), manifest["status"], manifest.get("reason", ""))

    def _folder(self, cfg: dict, label: str, resume: bool):
        """A new (or, with resume, the newest unfinished) run folder, locked. Ranks other than
        0 write into a scratch folder that is thrown away: rank 0 publishes."""
        if not distributed.world().is_main:
            return Path(tempfile.mkdtemp(prefix="benchsr-rank")), None
        found = results.find_resumable(self.out_root, cfg["dataset"], label, cfg) if resume else None
        return found or results.new_run_dir(self.out_root, cfg["dataset"], label, cfg["profile"])

    def _manifest(self, cfg: dict, label: str, device) -> dict:
        return {"label": label, "method": cfg["method"], "preset": cfg["preset"],
                "variant": cfg["variant"], "dataset": cfg["dataset"], "profile": cfg["profile"],
                "seed": cfg["seed"], "scale": self.data.scale, "precision": cfg["precision"],
                "status": "running", "started": results.now(),
                # the clinical measures' classes are part of what the numbers mean
                "protocol": {**self.data.protocol, **clinical.protocol_entries(self.data.protocol)},
                "simulated": self.data.simulated, "data_metadata": self.data.metadata,
                "notes": [], "provenance": results.provenance(device, self.packages),
                "resumed_from_epoch": None, "last_checkpoint": None,
                "world_size": distributed.world().size}

    @staticmethod
    def _plugins(method_cls, dataset: str) -> dict:
        """Name, origin and version of the method and dataset plugins the run used."""
        from . import registry
        ds = registry.discover("datasets").get(dataset)
        return {"method": registry.describe("methods", method_cls),
                "dataset": {"name": dataset, "origin": ds.origin if ds else "unregistered",
                            "version": ds.version if ds else ""}}

    @staticmethod
    def _failed(manifest: dict, exc: Exception, where: str) -> None:
        manifest["status"] = "failed"
        reason = f"{type(exc).__name__}: {exc}"
        if where not in reason:
            reason += f" (during {where})"
        manifest["reason"] = reason.replace("\n", " ")
        manifest["traceback"] = traceback.format_exc(limit=8)

    # ---- the three rooms ---------------------------------------------------------------------
    def _rooms(self, method_cls, cfg, device, run_dir: Path, manifest: dict, stage: Stage,
               log: RunLog) -> None:
        method = self._build(method_cls, cfg, device, manifest["notes"])
        manifest["recipe_changes"] = method.ctx.recipe_changes   # filled while it builds
        memory = cost.PeakMemory(device)
        timing = Timing()
        if method_cls.data != "none":
            with stage("training"), self._bar(f"train {manifest['label']}") as bar:
                timing = fit(method, self.data, cfg, method.ctx, run_dir, manifest, stage, bar, log,
                             self._validator(method, cfg, device))
        lp, lpips_note = self._lpips_for(cfg, device, manifest["notes"])
        images = choose_images(self.data, cfg)
        protocol = self.data.protocol
        measures = clinical.Context(lpips=lp, hr_window=protocol.get("hr_window"),
                                    hr_units=protocol.get("hr_units", "HU"))
        with stage("evaluation"), self._bar(f"eval  {manifest['label']}", len(images)) as bar:
            rows, kept, ms, volume_rows = evaluate_run(method, images, cfg, device, measures,
                                                       stage, bar)
        with stage("reporting"):
            reporting.write_results(run_dir, rows, kept, cfg, manifest, self.data.scale, lpips_note,
                                    volume_rows)
            log.samples(kept, self._steps(cfg))
            log.info("evaluated " + ", ".join(
                f"{m} {np.nanmean([r[m] for r in rows if r.get(m) is not None]):.4g}"
                for m in ("psnr", "ssim") if any(r.get(m) is not None for r in rows)))
            reporting.write_cost(run_dir, method, cfg, device, timing, ms, kept,
                                 (1, 1, *self.data.eval_images[0].lr.shape), memory)
        with stage("scoring the best-on-validation checkpoint"):
            self._score_best(method, cfg, device, run_dir, manifest, images, measures, lpips_note,
                             (rows, kept, volume_rows), stage)

    def _score_best(self, method, cfg, device, run_dir: Path, manifest: dict, images, measures,
                    lpips_note, last: tuple, stage) -> None:
        """best/ (best.py): the best-on-validation weights scored on the same images; the last
        checkpoint's scores again when it is the best."""
        world = distributed.world()
        state = distributed.broadcast(best.load(run_dir, device) if world.is_main else None)
        if state is None:
            return
        out = best.manifest_for(manifest, state, self._steps(cfg), *validation_images(self.data, cfg))
        if int(state["step"]) != self._steps(cfg):
            method.load_state_dict(state["method"])
            with self._bar(f"eval  {manifest['label']} [{results.BEST_TAG}]", len(images)) as bar:
                rows, kept, _, volumes = evaluate_run(method, images, cfg, device, measures, stage, bar)
            last = rows, kept, volumes
        rows, kept, volumes = last
        if world.is_main:
            best.write_folder(run_dir, out, lambda folder: reporting.write_results(
                folder, rows, kept, cfg, out, self.data.scale, lpips_note, volumes))

    def _build(self, method_cls, cfg: dict, device, notes: list) -> object:
        """The method with its networks on the device: seeded, fast paths, SyncBatchNorm."""
        tr, k = cfg["train"], self.data.scale
        if k not in method_cls.scales:
            raise BenchError(f"{method_cls.name} does not support scale {k}")
        ctx = RunContext(device=device, precision=cfg["precision"], scale=k, channels=1,
                         epochs=int(tr["epochs"]), notes=notes, total_steps=self._steps(cfg),
                         degradation=self.data.protocol.get("degradation", "bicubic"))
        if cfg["precision"] == "fp16":
            ctx.scaler = torch.amp.GradScaler("cuda")
        seed_epoch(cfg["seed"], -1)     # network init is seeded too
        method = method_cls(cfg, ctx)
        method.build()
        if cfg["init"]["from"]:
            notes.append(weights.init_from(method, cfg["init"]))
        fastpaths.apply(method, cfg["runtime"], ctx)
        if distributed.world().active:
            for name, net in method.nets.items():
                method.nets[name] = distributed.wrap(distributed.sync_batchnorm(net, device), device)
            if device.type != "cuda" and any(map(distributed.has_batchnorm, method.nets.values())):
                ctx.notes.append("data-parallel on CPU: BatchNorm statistics are per rank "
                                 "(SyncBatchNorm needs CUDA)")
        return method

    def _validator(self, method, cfg: dict, device):
        """validate(step) -> curve rows: the mean PSNR / SSIM of the first eval.every_images
        primary images, on rank 0, leaving every random state as it found it."""
        images, overlap = validation_images(self.data, cfg)
        if overlap and cfg["eval"]["every"]:
            method.ctx.notes.append("validation curve on scored images: the dataset leaves no "
                                    "evaluation slice unscored (eval.max_images)")
        quiet = {**cfg, "eval": {**cfg["eval"], "samples": 0, "lpips": False}}

        def validate(step: int) -> list[dict]:
            if not distributed.world().is_main or not images:
                return []
            states = torch.get_rng_state(), random.getstate(), np.random.get_state()
            rows, _, _ = evaluate(method, images, quiet, device)
            torch.set_rng_state(states[0])
            random.setstate(states[1])
            np.random.set_state(states[2])
            return [{"step": step, "metric": m, "value": float(np.mean([r[m] for r in rows])),
                     "images": len(rows)} for m in ("psnr", "ssim", "ssim_global")]
        return validate

    @staticmethod
    def _steps(cfg: dict) -> int:
        return int(cfg["train"]["epochs"]) * int(cfg["train"]["steps_per_epoch"])

    def _lpips_for(self, cfg: dict, device, notes: list):
        """(LPIPS metric or None, the tables' note when it is None)."""
        if not cfg["eval"]["lpips"]:
            return None, "n/a: disabled (eval.lpips=false)"
        lp = self.lpips_metric(device)
        if not lp.available:
            notes.append(f"LPIPS {lp.reason}: {lp.detail}")
            return None, lp.reason
        return lp, None

    # ---- progress bars (rich.progress.Progress or None) ---------------------------------------
    @contextlib.contextmanager
    def _bar(self, label: str, total: int | None = None):
        bar = Bar(self.progress, label, total)
        yield bar
        bar.hide()


class Bar:
    """A progress bar that may be absent: bar() advances it (bar(loss=x) also shows the current
    total loss), bar.total(n) sets its length."""

    def __init__(self, progress, label: str, total: int | None):
        self.progress, self.label = progress, label
        self.task = progress.add_task(label, total=total) if progress is not None else None

    def __call__(self, loss: float | None = None) -> None:
        if self.task is not None:
            text = self.label if loss is None else f"{self.label}  loss {loss:.4g}"
            self.progress.update(self.task, advance=1, description=text)

    def total(self, n: int) -> None:
        if self.task is not None:
            self.progress.update(self.task, total=n)

    def hide(self) -> None:
        if self.task is not None:
            self.progress.update(self.task, visible=False)
