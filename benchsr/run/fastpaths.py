"""Opt-in speed-ups applied by the runner after a method builds its nets and optimisers, so no
plugin needs to know them (config block `runtime`; precision is its own key). Each one is
measured against plain fp32 eager by benchmarks/bench.py.

- channels_last: nets and batches in NHWC, the layout oneDNN (CPU) and cuDNN prefer for convs.
- optimizer: "foreach" (one kernel over all tensors) or "fused" (one fused kernel) for optimisers
  that offer them (Adam, AdamW, SGD); others are left as they are, with a note.
- compile: torch.compile each net in place (Module.compile keeps the state_dict keys, so
  checkpoints stay plain). Costs a compile on the first steps.
- fast: `auto` (the default) adds to the keys above what measured fastest on this kind of device
  (MEASURED, from results/benchmarks/); `off` applies only the keys as given. The run's
  manifest records what was applied and why (`fast_path`).
"""
from __future__ import annotations

import torch

from benchsr.contracts import BenchError, Method, RunContext

OPTIMIZER_IMPLS = ("default", "foreach", "fused")

# What `runtime.fast: auto` adds per device type (precision is its own key, `auto` too): the
# fastest path benchmarks/bench.py measured for SR-CycleGAN's step on that kind of device.
MEASURED = {
    # bench-vm-20261126-053711 (SR-CycleGAN, paper config, 2 cores): bf16 8.88 s per step,
    # + channels_last 10.50, + fused optimiser 10.95, + torch.compile 8.39 s after a 200 s compile
    "cpu": ({}, "on the CPU channels_last and the fused optimiser were slower than eager; "
                "torch.compile was 6 % faster per step but took 200 s to compile (worth it after "
                "about 400 paper-size steps: set runtime.compile=true for long runs)"),
    "cuda": ({}, "on CUDA, no fast path has been measured yet: nothing added"),
}


def resolve(runtime: dict, device: torch.device) -> tuple[dict, str]:
    """The runtime keys a run applies, and why: the keys as given, plus, with fast=auto, what
    MEASURED chose for this device type (a key set explicitly is kept)."""
    if runtime.get("fast", "auto") == "off":
        return dict(runtime), "runtime.fast off: the runtime keys as given"
    chosen, why = MEASURED.get(device.type, ({}, f"{device.type}: nothing measured, nothing added"))
    out = dict(runtime)
    for key, value in chosen.items():
        if out.get(key) in (False, "default", None):
            out[key] = value
    return out, f"runtime.fast auto: {why}"


def _contiguous_inputs(module, args):
    # clone, not .contiguous(): a 1-channel NHWC tensor counts as contiguous but still makes
    # the convs that follow pick channels_last
    return tuple(a.clone(memory_format=torch.contiguous_format) if torch.is_tensor(a) else a
                 for a in args)


def check(runtime: dict) -> None:
    impl = runtime.get("optimizer", "default")
    if impl not in OPTIMIZER_IMPLS:
        raise BenchError(f"runtime.optimizer '{impl}': expected one of {', '.join(OPTIMIZER_IMPLS)}")
    if runtime.get("fast", "auto") not in ("auto", "off"):
        raise BenchError(f"runtime.fast '{runtime['fast']}': expected auto or off")


def apply(method: Method, runtime: dict, ctx: RunContext) -> None:
    check(runtime)
    impl = runtime.get("optimizer", "default")
    if runtime.get("channels_last"):
        for name, net in method.nets.items():
            if name in method.contiguous_nets:   # the plugin says this net needs NCHW
                net.register_forward_pre_hook(_contiguous_inputs)
            else:
                net.to(memory_format=torch.channels_last)
    if impl != "default":
        for name, opt in method.optimizers.items():
            if impl not in opt.defaults:
                ctx.notes.append(f"optimizer {name} ({type(opt).__name__}) has no {impl} "
                                 "implementation: left as it is")
                continue
            # set before the first step: the implementation is read from the param groups then
            for group in opt.param_groups:
                group["foreach"] = impl == "foreach"
                if "fused" in group:
                    group["fused"] = impl == "fused"
            if impl == "fused":
                opt._step_supports_amp_scaling = True   # as the constructor sets for fused=True
    if runtime.get("compile"):
        for net in method.nets.values():
            # static shapes: a training step's shapes never change, and inductor's dynamic-shape
            # path fails on these nets (symbolic sizes in the conv layout choice, torch 2.14)
            net.compile(dynamic=False)
