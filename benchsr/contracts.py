"""The two plugin contracts: a Method and a Dataset. This is the one page a plugin author reads.

Conventions shared by every plugin (the harness relies on them):
- Images are float32 tensors shaped (batch, channels, height, width) with values in [0, 1]:
  the dataset's intensity window mapped to [0, 1]. A method that works in another range (e.g. tanh
  networks in [-1, 1]) converts inside itself and hands back [0, 1].
- The scale k is an integer; an LR image of h x w super-resolves to k*h x k*w.
- Numpy arrays of volumes are (z, y, x), as SimpleITK's GetArrayFromImage gives them; spacing is
  recorded (x, y, z) in mm, as SimpleITK's GetSpacing gives it.

A Method plugin subclasses `Method`, sets the class attributes, and implements `build`,
`train_step` and `super_resolve`. Its defaults, profiles, presets and key limits live in a `presets.yaml`
beside its module (see methods/srcyclegan/presets.yaml). The runner owns data, device, precision,
epochs, checkpoints, timing and evaluation; the method owns its networks, losses and optimisers.
What the harness relies on, and checks (`benchsr check NAME`; the tests run it on every plugin):
- `self.cfg` is the fully resolved config: seed, device, precision, `train` (epochs,
  steps_per_epoch, batch_size, lr_patch), `eval`, `runtime`, the method's `model` keys and the
  dataset's `data` keys, every --set already checked for type and range.
- Every optimiser step goes through `self.ctx.optimize(loss, optimizer, step)`: it stops the run
  on a NaN/Inf loss, applies the fp16 grad scaler, and averages gradients across torchrun ranks.
- `train_step` returns named losses as floats; `total_g` is plotted and summarised.
- `data = "paired"`: the runner makes every batch's LR from its HR patch with the dataset's own
  degradation (`batch.paired` is True); a dataset without one refuses the method. Methods that
  build pairs themselves use `self.ctx.degrade(hr)`, the same function.
- `super_resolve` runs under torch.no_grad() and handles its own autocast
  (`with self.ctx.autocast():`). It returns (B, C, k*h, k*w): a wrong shape or a NaN/Inf fails
  the run naming it; values outside [0, 1] are clamped, with a note in the run.
- `self.nets` (name -> module), `self.optimizers`, `self.schedulers` and `extra_state()` are the
  checkpoint; `state_dict()` / `load_state_dict()` round-trip them. Training forwards look a net
  up in `self.nets` when they run it: under torchrun the harness replaces each entry with its
  DistributedDataParallel wrapper after `build` (optimisers keep the same parameters).
- `super_resolve` may get several tiles at once (B > 1, `eval.tile_batch`), each on its own.
- `self.ctx.total_steps` is the run's length in steps: schedules that scale with the profile use it.
  `schedule_points()` lists the steps where they change; none may fall past the run's end, and
  at most one into its first tenth (tests/methods/test_reference_fixes.py checks every plugin).
- `tiles_change_output = True` for a method whose output depends on how an image is tiled
  (normalisation over the image, e.g. InstanceNorm): `benchsr infer --tile auto` then runs the
  plan the run was scored with (its `eval.tile`), never one chosen by timing.
- `deterministic = True` only for a method whose output no seed can change (interpolation): the
  statistics then give it no seed variance. Any trained method needs 2+ seeds to be compared.
- `planes` names the tracks a method runs on: "axial" (in-plane SR: `super_resolve`) and/or
  "through" (thick slices to thin: `super_resolve_z`, (n, H, W) thick slices in [0, 1] -> (n*k,
  H, W) thin ones, k = ctx.scale = the protocol's z_factor, at the positions
  `benchsr.data.thin_positions(n*k, k, ctx.degradation)` gives). A method asked for a plane it
  does not list is refused before any run folder.

A method that works in millimetres reads `batch.hr_spacing` (each HR patch's voxel size, from
the dataset's `SliceStack.spacing`; None where the dataset gives none, and the method then
refuses in one line or falls back, saying which).

A through-plane protocol (`protocol["plane"] == "through"`) gives `eval_volumes` (slabs of thin
slices and the thick ones made from them by `protocol["degradation"]`: mean or pick) instead of
`eval_images`, and its scale is the z_factor. Its `val_volumes`, if any, are slabs of the same
kind that no method trains on and the evaluation does not score: the learning curve's.

A Dataset plugin subclasses `Dataset` and implements `load`, returning a `PreparedData`. Its
protocol must hold `scale`, `degradation` (how LR is made from HR: evaluation and training pairs
use it), and, for `benchsr infer`, `window_hu` (the LR input's HU window mapped to [0, 1]) and
`hr_window` / `hr_units` (the SR output's domain, e.g. [0, 15000] µCT scanner units). A design
whose runs differ by more than the seed (leave one patient out: a fold per held-out patient)
names those config keys in `protocol["replicate_keys"]` (e.g. ["data.fold"]): such runs are one
leaderboard row, their protocol must not depend on the key, and each scores only its own
volumes (uncertainty.py then treats runs as nested in volumes).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from benchsr.errors import BenchError   # noqa: F401 - plugins import it from here
from benchsr.runtime import distributed




# --------------------------------------------------------------------------------------------
# Method
# --------------------------------------------------------------------------------------------
@dataclass
class TrainBatch:
    """One training batch. `lr` and `hr` are unpaired unless the dataset says `paired`."""
    lr: torch.Tensor            # (B, C, p, p) in [0, 1]
    hr: torch.Tensor            # (B, C, k*p, k*p) in [0, 1]
    paired: bool = False
    # (B, 3) mm of each HR patch's pixels, (x, y, z): columns, rows, and its scan's slice
    # spacing; None when the dataset's HR stream gives no spacing (SliceStack.spacing)
    hr_spacing: torch.Tensor | None = None


@dataclass
class RunContext:
    """What the runner gives a method: where to put tensors and how to run mixed precision."""
    device: torch.device
    precision: str = "fp32"     # fp32 | bf16 | fp16
    scale: int = 4
    channels: int = 1
    epochs: int = 1             # total epochs planned, for schedules
    notes: list[str] = field(default_factory=list)   # the method appends honest remarks here
    scaler: Any = None          # torch.amp.GradScaler for fp16, set by the runner
    total_steps: int = 0        # epochs x steps per epoch: step-based schedules scale with it
    degradation: str = "bicubic"  # the dataset's HR -> LR degradation (its protocol's)
    # what this machine changed in the method's recipe (e.g. {"perceptual": "off"} without the
    # VGG19 weights): it goes into the row's label, never only into a note
    recipe_changes: dict = field(default_factory=dict)

    def degrade(self, hr: torch.Tensor) -> torch.Tensor:
        """HR patches -> LR under the dataset's own degradation (the function evaluation uses),
        e.g. for a supervised pre-training phase on pairs made from the HR stream."""
        from benchsr.data.volumes import degrade_batch   # numpy, per image: the evaluation's own function
        lr = degrade_batch(hr.detach().float().cpu().numpy(), self.scale, self.degradation)
        return torch.from_numpy(lr).to(hr.device)

    def autocast(self):
        """Context manager for the forward pass: autocast in bf16/fp16, nothing in fp32."""
        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    def optimize(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer, step: int,
                 what: str = "loss") -> None:
        """zero_grad, backward, step (through the fp16 grad scaler when there is one).
        A NaN/Inf loss stops the run with the step number instead of poisoning the weights.
        In a torchrun run, gradients are averaged over ranks before the step (distributed.py)."""
        if not distributed.all_true(bool(torch.isfinite(loss.detach()).all())):
            raise FloatingPointError(f"{what} loss is {float(loss.detach())} at step {step}"
                                     + (" (on some rank)" if distributed.world().active else ""))
        optimizer.zero_grad(set_to_none=True)
        if self.scaler is None:
            loss.backward()
            distributed.average_gradients(optimizer)
            optimizer.step()
        else:
            self.scaler.scale(loss).backward()
            distributed.average_gradients(optimizer)
            self.scaler.step(optimizer)
            self.scaler.update()


class Method:
    """Base class of every SR method plugin."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    data: ClassVar[str] = "unpaired"             # unpaired | paired | none (no training)
    # True: no training and no randomness (interpolation), so runs under other seeds are the
    # same run and never count as replication; an outside model's predictions are one training
    # run of unknown seed variance, so not deterministic
    deterministic: ClassVar[bool] = False
    # True: the output depends on the tiling (normalisation over the image), so infer's auto
    # never picks a tiling by timing, which the machine's load would change
    tiles_change_output: ClassVar[bool] = False
    # False: super_resolve only looks its outputs up (an outside model's predictions), so its
    # time and memory are no method's cost; the cost table says n/a
    measured_cost: ClassVar[bool] = True
    scales: ClassVar[tuple[int, ...]] = (2, 4, 8)
    planes: ClassVar[tuple[str, ...]] = ("axial",)   # "axial" (super_resolve), "through" (super_resolve_z)
    inference_network: ClassVar[str | None] = None  # key in self.nets: the SR network (costs)
    inference_networks: ClassVar[tuple[str, ...]] = ()  # all nets super_resolve runs, if several
    contiguous_nets: ClassVar[tuple[str, ...]] = ()  # nets kept out of channels_last (.view inside)

    def __init__(self, config: dict[str, Any], ctx: RunContext):
        self.cfg = config
        self.ctx = ctx
        self.nets: dict[str, nn.Module] = {}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.schedulers: dict[str, Any] = {}

    # -- what a plugin implements ------------------------------------------------------------
    def build(self) -> None:
        """Create self.nets (name -> module, on ctx.device), self.optimizers, self.schedulers."""

    def train_step(self, batch: TrainBatch, step: int) -> dict[str, float]:
        """One optimisation step; returns named losses (floats). `total_g` is plotted and checked."""
        raise NotImplementedError

    def super_resolve(self, lr: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) in [0, 1] -> (B, C, k*h, k*w) in [0, 1]. Called under torch.no_grad()."""
        raise NotImplementedError

    def super_resolve_z(self, thick: torch.Tensor) -> torch.Tensor:
        """Through-plane methods (planes has "through"): (n, H, W) thick slices in [0, 1] ->
        (n*k, H, W) thin ones. Called under torch.no_grad()."""
        raise NotImplementedError(f"{self.name} has no through-plane super-resolution")

    # -- optional hooks ------------------------------------------------------------------------
    def schedule_points(self) -> dict[str, list[int]]:
        """Every step at which a schedule changes (milestones, warm-up and phase ends, lr
        halvings), after build: tests check that each scales with the run's length."""
        return {}

    def end_epoch(self, epoch: int) -> None:
        """Called after each epoch; the default steps every scheduler once."""
        for sched in self.schedulers.values():
            sched.step()

    def inference_modules(self) -> dict[str, nn.Module]:
        """The networks super_resolve runs, by name, as it runs them (an EMA, say): what
        export-weights writes and init.from fills."""
        names = self.inference_networks or ((self.inference_network,) if self.inference_network else ())
        return {name: self.nets[name] for name in names}

    def extra_state(self) -> dict[str, Any]:
        """Tensors beyond nets/optimisers/schedulers that a resume needs (e.g. a history pool)."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        pass

    # -- provided: checkpoints and defaults ----------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "nets": {k: distributed.unwrap(v).state_dict() for k, v in self.nets.items()},
            "optimizers": {k: v.state_dict() for k, v in self.optimizers.items()},
            "schedulers": {k: v.state_dict() for k, v in self.schedulers.items()},
            "extra": self.extra_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for group, target in (("nets", self.nets), ("optimizers", self.optimizers),
                              ("schedulers", self.schedulers)):
            for key, obj in target.items():
                if group == "schedulers" and key not in state.get(group, {}):
                    # a checkpoint from before this scheduler existed: it starts afresh
                    self.ctx.notes.append(f"checkpoint holds no state for scheduler {key!r}: "
                                          f"its lr restarts from the initial value")
                    continue
                distributed.unwrap(obj).load_state_dict(state[group][key])
        self.load_extra_state(state.get("extra", {}))

    def train(self, mode: bool = True) -> None:
        for net in self.nets.values():
            net.train(mode)


# --------------------------------------------------------------------------------------------
# Dataset
# --------------------------------------------------------------------------------------------
@dataclass
class SliceStack:
    """2D images a patch sampler draws from: (n, H, W) float32 in [0, 1].

    `mask` (same shape, bool) restricts where patches may be taken (`mask_rule` says how:
    `center` = patch centre inside, `all` = whole patch inside). `sources[i]` names slice i's
    origin (file and slice index), so every patch can be traced back. `spacing` (n, 3), if
    given, is each slice's voxel size in mm, (x, y, z) with z its scan's slice spacing: the
    batches then carry it (TrainBatch.hr_spacing) for methods that work in physical units.
    """
    images: np.ndarray
    sources: list[str]
    mask: np.ndarray | None = None
    mask_rule: str = "center"
    spacing: np.ndarray | None = None


@dataclass
class EvalImage:
    """One evaluation pair: LR input, HR reference (None when the modality has no HR: then the
    LR-consistency PSNR between the LR and the k x k average-pooled SR is what gets measured).
    `group` names a secondary evaluation set ("" = the primary one the leaderboard ranks);
    `volume` lets per-slice metrics be averaged per volume, then over volumes. `mask`, the body
    mask of the HR slice, gives the body-masked and lung measures (clinical.py)."""
    name: str
    lr: np.ndarray                # (h, w) in [0, 1]
    hr: np.ndarray | None         # (k*h, k*w) in [0, 1]
    source: str
    group: str = ""
    volume: str | None = None
    mask: np.ndarray | None = None   # (k*h, k*w) bool: the body, where the HR has one
    # (k*h, k*w) bool: inside the scanner's field of view. Padding outside it (a scan's -2048,
    # say) is never scored: whole-image metrics take the pixels inside; None = all inside
    fov: np.ndarray | None = None
    # its block of neighbouring evaluation slices within the volume (between two gaps of the
    # split): with one volume, the unit below the run. None: uncertainty.blocks infers it
    block: str | None = None


@dataclass
class EvalVolume:
    """One through-plane evaluation slab: `thin` (n*k, H, W) real slices in [0, 1], `thick`
    (n, H, W) made from them by the protocol's slice profile, the thin slices' body `mask`, and
    the patient it comes from (`volume`)."""
    name: str
    thick: np.ndarray
    thin: np.ndarray
    source: str
    volume: str | None = None
    mask: np.ndarray | None = None
    fov: np.ndarray | None = None    # (n*k, H, W) bool: inside the field of view (EvalImage.fov)
    # the thin slices' grid, LPS mm as SimpleITK gives it: {"spacing": (x, y, z), "origin": the
    # first thin slice's first voxel, "direction": 9 numbers}; what outside models are placed on
    geometry: dict | None = None


@dataclass
class PreparedData:
    """Everything a dataset adapter yields; the runner needs nothing else."""
    scale: int
    train_lr: SliceStack          # domain X, already at LR resolution
    train_hr: SliceStack          # domain Y, at HR resolution
    eval_images: list[EvalImage]
    protocol: dict[str, Any]      # window, units, degradation, patch sizes: recorded with every run
    metadata: dict[str, Any]      # spacing, source files, licence/credit
    lr_only: list[EvalImage] = field(default_factory=list)  # real LR modality, no reference
    paired: bool = False
    simulated: bool = False       # any simulated content: labels every table and picture
    eval_volumes: list[EvalVolume] = field(default_factory=list)   # the through-plane track
    val_volumes: list[EvalVolume] = field(default_factory=list)    # its curve's: never scored


class Dataset:
    """Base class of every dataset adapter."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    scale: ClassVar[int] = 4
    simulated: ClassVar[bool] = False
    needs_data_dir: ClassVar[bool] = False
    provenance_packages: ClassVar[tuple[str, ...]] = ()   # distributions whose versions runs record

    def __init__(self, config: dict[str, Any], data_dir: Path | None = None):
        self.cfg = config
        self.data_dir = data_dir

    def load(self) -> PreparedData:
        """Read, normalise and split the data. Raise BenchError with one line on bad input."""
        raise NotImplementedError

    def read(self) -> PreparedData:
        """load(), with the user's data folder in the metadata (None: the dataset's own data),
        so that tables of a user's scans never share a title with the embedded ones."""
        data = self.load()
        data.metadata.setdefault("data_dir", str(self.data_dir) if self.data_dir else None)
        return data

    def export(self, out: Path) -> Path:
        """Optional (`benchsr export-data`): write the data in a compact form that `--data-dir
        OUT` reads on a machine without SimpleITK or the data's own package; return the file."""
        raise BenchError(f"dataset {self.name} has no compact export (Dataset.export)")
