"""A run folder's manifest.json: what the run is (label, config keys, protocol, provenance), the
plugins it used, and, when it fails, why and where."""
from __future__ import annotations

import traceback

from benchsr import results
from benchsr.contracts import PreparedData
from benchsr.evaluation import clinical
from benchsr.runtime import distributed


def new_manifest(cfg: dict, label: str, device, data: PreparedData, packages: tuple) -> dict:
    return {"label": label, "method": cfg["method"], "preset": cfg["preset"],
            "variant": cfg["variant"], "dataset": cfg["dataset"], "profile": cfg["profile"],
            "seed": cfg["seed"], "scale": data.scale, "precision": cfg["precision"],
            "status": "running", "started": results.now(),
            # the clinical measures' classes are part of what the numbers mean
            "protocol": {**data.protocol, **clinical.protocol_entries(data.protocol)},
            "simulated": data.simulated, "data_metadata": data.metadata,
            "notes": [], "provenance": results.provenance(device, packages),
            "resumed_from_epoch": None, "last_checkpoint": None,
            "world_size": distributed.world().size}


def plugins_used(method_cls, dataset: str) -> dict:
    """Name, origin and version of the method and dataset plugins the run used."""
    from benchsr import registry
    ds = registry.discover("datasets").get(dataset)
    return {"method": registry.describe("methods", method_cls),
            "dataset": {"name": dataset, "origin": ds.origin if ds else "unregistered",
                        "version": ds.version if ds else ""}}


def record_failure(manifest: dict, exc: Exception, where: str) -> None:
    manifest["status"] = "failed"
    reason = f"{type(exc).__name__}: {exc}"
    if where not in reason:
        reason += f" (during {where})"
    manifest["reason"] = reason.replace("\n", " ")
    manifest["traceback"] = traceback.format_exc(limit=8)


class PluginExit(RuntimeError):
    """A method that called sys.exit() or raised SystemExit / KeyboardInterrupt itself."""

    def __init__(self, exc: BaseException):
        code = getattr(exc, "code", None)
        super().__init__(f"the method raised {type(exc).__name__}"
                         + (f"({code!r})" if code is not None else "") + " instead of returning")


def record_stop(manifest: dict, how: str, where: str, run_dir) -> None:
    """A run a signal stopped: resumable, never a result (the tables skip it)."""
    manifest["status"] = "stopped"
    manifest["reason"] = f"stopped by {how} during {where}: --resume continues it"
    manifest["finished"] = results.now()
    results.write_json(run_dir / "manifest.json", manifest)
