"""The plugin contract (benchsr/contracts.py) checked on one discovered plugin, built-in or from an
entry point, at smoke size on the CPU: `benchsr check NAME` and tests/methods/test_contract.py
run this same code. Each check is one Finding; a check that raises fails with the reason and the
checks after it that need what it built are skipped."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from benchsr import config, registry
from benchsr.contracts import BenchError, Method, RunContext, TrainBatch
from benchsr.run.manifest import PluginExit
from benchsr.runtime.guards import by_signal, exit_on_signals


@dataclass
class Finding:
    check: str
    ok: bool
    detail: str = ""


class _Checks:
    """Findings in order: `run(what, fn, *args)` records a pass (fn's return value is its
    detail), or a failure with the exception's text, and says which it was."""

    def __init__(self):
        self.findings: list[Finding] = []

    def run(self, what: str, fn, *args):
        try:
            with exit_on_signals():
                detail = fn(*args)
        except Exception as exc:  # noqa: BLE001 - a plugin's failure is the finding
            self.findings.append(Finding(what, False, f"{type(exc).__name__}: {exc}"))
            return False
        except (SystemExit, KeyboardInterrupt) as exc:
            if by_signal(exc):
                raise
            self.findings.append(Finding(what, False, str(PluginExit(exc))))   # sys.exit(0) passed
            return False
        self.findings.append(Finding(what, True, detail or ""))
        return True


# ---- methods --------------------------------------------------------------------------------
def _scale_for(cls) -> int:
    if "axial" not in cls.planes:             # the through-plane track's z_factor
        return 2 if 2 in cls.scales else cls.scales[0]
    return 4 if 4 in cls.scales else cls.scales[0]


def build_method(name: str, preset: str = "default", scale: int | None = None) -> Method:
    """The method at smoke size on the CPU, configured against the embedded default dataset
    (its through-plane track for a through-plane-only method)."""
    cls = registry.get("methods", name)
    through = "axial" not in cls.planes
    lung = registry.get("datasets", "lung-ct")
    cfg = config.resolve(cls, preset, lung, "smoke", ["data.plane=through"] if through else [])
    _, _, degradation = config.track(cfg, lung)
    ctx = RunContext(torch.device("cpu"), scale=scale or _scale_for(cls),
                     epochs=int(cfg["train"]["epochs"]), total_steps=config.total_steps(cfg),
                     degradation=degradation)
    method = cls(cfg, ctx)
    torch.manual_seed(0)
    method.build()
    return method


def _declares(cls) -> str:
    assert cls.data in ("paired", "unpaired", "none"), f"data = {cls.data!r}"
    assert isinstance(cls.deterministic, bool), "deterministic must be a bool"
    assert cls.scales and all(isinstance(k, int) and k >= 1 for k in cls.scales), cls.scales
    return f"data={cls.data}, scales={tuple(cls.scales)}, deterministic={cls.deterministic}"


def training_batch(method: Method) -> TrainBatch:
    """A batch as the runner makes it for the method's data kind: paired, LR = ctx.degrade(HR);
    unpaired, LR and HR from different images."""
    p, k = int(method.cfg["train"]["lr_patch"]), method.ctx.scale
    g = torch.Generator().manual_seed(0)
    hr = torch.rand(2, method.ctx.channels, p * k, p * k, generator=g)
    if method.data == "paired":
        return TrainBatch(method.ctx.degrade(hr), hr, paired=True)
    if "axial" not in method.planes:         # the through-plane track's LR stream: thick
        # slices, with a spacing: 1 mm pixels, thin slices 2 mm apart
        return TrainBatch(torch.rand(2, method.ctx.channels, p, p, generator=g), hr,
                          hr_spacing=torch.tensor([[1.0, 1.0, 2.0]] * 2))
    other = torch.rand(2, method.ctx.channels, p * k, p * k, generator=g)
    return TrainBatch(method.ctx.degrade(other), hr, paired=False)


def _one_step(method: Method) -> str:
    calls, real = [], method.ctx.optimize

    def counted(loss, optimizer, step, what="loss"):
        calls.append(what)
        return real(loss, optimizer, step, what)
    method.ctx.optimize = counted
    try:
        batch = training_batch(method)
        losses = method.train_step(batch, 0)
    finally:
        del method.ctx.optimize                      # back to the class's own
    assert calls, "train_step must step its optimisers through ctx.optimize"
    assert losses, "train_step returned no losses"
    bad = {k: v for k, v in losses.items() if not isinstance(v, float) or not math.isfinite(v)}
    assert not bad, f"losses must be finite floats: {bad}"
    kind = "paired (LR = ctx.degrade(HR))" if batch.paired else "unpaired"
    steps = f"{len(calls)} optimiser step" + ("s" if len(calls) > 1 else "")
    return f"{kind} batch; {steps}; losses {', '.join(sorted(losses))}"


def _output(method: Method) -> str:
    k, c = method.ctx.scale, method.ctx.channels
    method.train(False)
    with torch.no_grad():
        out = method.super_resolve(torch.rand(1, c, 12, 16))
    assert tuple(out.shape) == (1, c, 12 * k, 16 * k), f"shape {tuple(out.shape)}"
    return f"(1, {c}, 12, 16) -> {tuple(out.shape)}, {_in_unit_range(out)}"


def _in_unit_range(out: torch.Tensor) -> str:
    """'values in [lo, hi]' for a finite output in [0, 1], else an AssertionError saying why."""
    assert bool(torch.isfinite(out).all()), "NaN or Inf in the output"
    lo, hi = float(out.min()), float(out.max())
    assert 0 <= lo and hi <= 1, f"values in [{lo:.3g}, {hi:.3g}], not [0, 1]"
    return f"values in [{lo:.3f}, {hi:.3f}]"


def _output_z(method: Method) -> str:
    k = method.ctx.scale
    method.train(False)
    with torch.no_grad():
        out = method.super_resolve_z(torch.rand(4, 16, 12))
    assert tuple(out.shape) == (4 * k, 16, 12), f"shape {tuple(out.shape)}"
    return f"(4, 16, 12) thick -> {tuple(out.shape)} thin, {_in_unit_range(out)}"


def _infer(method: Method):
    """The method's inference on a small input of its first plane."""
    if "axial" in method.planes:
        return method.super_resolve(torch.rand(1, method.ctx.channels, 12, 12,
                                               generator=torch.Generator().manual_seed(1)))
    return method.super_resolve_z(torch.rand(4, 16, 12, generator=torch.Generator().manual_seed(1)))


def _round_trip(method: Method, name: str, preset: str) -> str:
    twin = build_method(name, preset, method.ctx.scale)
    twin.load_state_dict(method.state_dict())
    twin.train(False)
    with torch.no_grad():
        assert torch.equal(_infer(twin), _infer(method)), \
            "a twin loaded from state_dict() gives another output"
    return f"{len(method.nets)} nets, {len(method.optimizers)} optimisers"


def _tiles(method: Method) -> str:
    tiles = torch.rand(3, method.ctx.channels, 12, 12)
    with torch.no_grad():
        together = method.super_resolve(tiles)
        alone = torch.cat([method.super_resolve(t[None]) for t in tiles])
    gap = float((together - alone).abs().max())
    assert gap < 1e-4, f"3 tiles at once differ from each alone by {gap:.3g}"
    return f"largest difference {gap:.1g}"


def _schedule(method: Method) -> str:
    total = method.ctx.total_steps
    points = [p for pts in method.schedule_points().values() for p in pts]
    assert all(0 <= p <= total for p in points), f"{points} past the run's {total} steps"
    early = [p for p in points if 0 < p < total / 10]
    assert len(early) <= 1, f"{early}: several changes in the run's first tenth"
    return f"{len(points)} points within {total} steps" if points else "no schedule"


def check_method(name: str, preset: str = "default") -> list[Finding]:
    checks = _Checks()
    cls = registry.get("methods", name)
    checks.run("declares data, scales, determinism", _declares, cls)
    built: list[Method] = []
    if not checks.run("builds at smoke size (CPU)", lambda: built.append(build_method(name, preset))):
        return checks.findings
    method = built[0]
    if method.data != "none":
        checks.run("one training step through ctx.optimize", _one_step, method)
        checks.run("schedules scale with the run's length", _schedule, method)
    checks.run("declares its planes", _planes, method)
    if "axial" in method.planes:
        checks.run("output shape and range", _output, method)
    if "through" in method.planes:
        checks.run("through-plane output shape and range", _output_z, method)
    checks.run("state_dict round trip", _round_trip, method, name, preset)
    if "axial" in method.planes:
        checks.run("tiles in one batch come out as alone", _tiles, method)
    return checks.findings


def _planes(method: Method) -> str:
    planes = tuple(method.planes)
    assert planes and set(planes) <= {"axial", "through"}, f"planes = {planes!r}"
    return ", ".join(planes)


# ---- datasets -------------------------------------------------------------------------------
def _dataset_data(cls, data_dir, extra=()):
    cfg = config.resolve(registry.get("methods", "nearest"), "default", cls, "smoke", list(extra))
    return cls(cfg, data_dir).load()


def has_through_plane(cls) -> bool:
    """The dataset offers the through-plane track: its limits list `through` for data.plane."""
    return "through" in ((config.plugin_presets(cls).get("limits") or {}).get("data.plane") or [])


def _through_slabs(cls, data_dir) -> str:
    """On the through-plane track: slabs of n*k thin and n thick slices, the thick ones made by
    the declared profile; validation and evaluation slabs share no slice with each other or
    with the training stream (compared by content)."""
    data = _dataset_data(cls, data_dir, ["data.plane=through"])
    p, k = data.protocol, data.scale
    assert p.get("plane") == "through" and p.get("z_factor") == k, \
        "the protocol lacks plane or z_factor"
    assert data.eval_volumes, "no evaluation slab"
    for vol in [*data.eval_volumes, *data.val_volumes]:
        assert vol.thin.shape == (vol.thick.shape[0] * k, *vol.thick.shape[1:]), vol.name
    seen = lambda vols: {s.tobytes() for v in vols for s in v.thin}  # noqa: E731
    evals, vals = seen(data.eval_volumes), seen(data.val_volumes)
    train = {s.tobytes() for s in data.train_hr.images}
    assert not evals & vals, "a validation slab holds an evaluation slice"
    assert not (evals | vals) & train, "the training stream holds a validation or evaluation slice"
    return (f"x{k} along z, {len(data.eval_volumes)} evaluation and {len(data.val_volumes)} "
            f"validation slabs, disjoint from training")


def _protocol(cls, data) -> str:
    k = data.scale
    assert k == cls.scale == data.protocol.get("scale"), "scale differs from the protocol's"
    assert data.protocol.get("degradation"), "the protocol declares no degradation"
    missing = [key for key in ("window_hu", "hr_window", "hr_units") if key not in data.protocol]
    assert not missing, f"the protocol lacks {missing} (benchsr infer reads them)"
    return f"x{k}, degradation {data.protocol['degradation']}"


def _eval_images(data) -> str:
    k = data.scale
    assert data.eval_images, "no evaluation images"
    for img in data.eval_images:
        if img.hr is not None:
            assert img.hr.shape == (img.lr.shape[0] * k, img.lr.shape[1] * k), img.name
    return f"{len(data.eval_images)} images, HR = k x LR"


def _fits_every_method(cls, data) -> str:
    from benchsr.run.build import check_fits
    plane = data.protocol.get("plane", "axial")
    names = sorted(n for n, e in registry.discover("methods").items()
                   if not e.broken and plane in e.cls.planes)
    for name in names:
        method_cls = registry.get("methods", name)
        for preset in config.plugin_presets(method_cls).get("presets") or {"default": {}}:
            try:
                check_fits(config.resolve(method_cls, preset, cls, "smoke", []), data)
            except BenchError as exc:
                raise AssertionError(f"{name}:{preset}: {exc}") from None
    return f"{len(names)} methods"


def check_dataset(name: str, data_dir=None) -> list[Finding]:
    checks = _Checks()
    cls = registry.get("datasets", name)
    loaded: list = []
    if cls.needs_data_dir and data_dir is None:
        raise BenchError(f"{name} needs --data-dir: its data is not embedded")
    if not checks.run("loads at smoke size", lambda: loaded.append(_dataset_data(cls, data_dir))):
        return checks.findings
    data = loaded[0]
    checks.run("protocol: scale, degradation, infer's windows", _protocol, cls, data)
    checks.run("evaluation pairs: HR = k x LR", _eval_images, data)
    checks.run("every method's smoke patch fits", _fits_every_method, cls, data)
    if has_through_plane(cls):
        checks.run("through-plane slabs: shapes, disjoint from training", _through_slabs, cls,
                   data_dir)
    return checks.findings


def check_plugin(name: str, preset: str = "default", data_dir=None) -> tuple[str, list[Finding]]:
    """('method' | 'dataset', findings) for a discovered plugin of either kind."""
    for kind, check in (("methods", check_method), ("datasets", check_dataset)):
        entry = registry.discover(kind).get(name)
        if entry is None:
            continue
        imported = Finding("imports and registers", not entry.broken,
                           entry.error if entry.broken else entry.origin)
        rest = [] if entry.broken else (check(name, preset) if kind == "methods"
                                        else check(name, data_dir))
        return kind[:-1], [imported, *rest]
    known = sorted([*registry.discover("methods"), *registry.discover("datasets")])
    raise BenchError(f"no method or dataset named '{name}'{config.did_you_mean(name, known)}")
