"""Weights in and out of a method: `init.from` loads a benchsr checkpoint or export, a
safetensors file or a BasicSR-style .pth into the method's networks before training (zero epochs
evaluate them as they are); `export` writes the networks super_resolve runs as safetensors, with
the run's config in the metadata. Everything is read weights-only."""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import torch

from benchsr.contracts import BenchError, Method

EXPORT_FORMAT = "benchsr-weights-1"


def export(method: Method, cfg: dict, out: Path) -> list[str]:
    """The inference networks' tensors as `<net>.<name>`, config and scale in the metadata."""
    from safetensors.torch import save_file
    if not out.name.endswith(".safetensors"):
        raise BenchError(f"{out}: the output must end in .safetensors")
    modules = method.inference_modules()
    if not modules:
        raise BenchError(f"{cfg['method']} has no network: nothing to export")
    tensors = {f"{net}.{k}": v.detach().cpu().contiguous()
               for net, module in modules.items() for k, v in module.state_dict().items()}
    meta = {"format": EXPORT_FORMAT, "networks": json.dumps(list(modules)),
            "method": cfg["method"], "preset": cfg["preset"], "scale": str(method.ctx.scale),
            "config": json.dumps(cfg, default=str)}
    save_file(tensors, str(out), metadata=meta)
    return list(modules)


def _read(path: Path, key: str) -> tuple[dict, dict | None]:
    """(tensors, {net: state} when the file says which nets) from any supported file."""
    if not path.is_file():
        raise BenchError(f"init.from {path}: no such file")
    if path.name.endswith(".safetensors"):
        from safetensors import safe_open
        try:
            with safe_open(str(path), "pt") as fh:
                meta = fh.metadata() or {}
                tensors = {k: fh.get_tensor(k) for k in fh.keys()}
        except Exception as exc:  # noqa: BLE001 - any decoder failure is a bad file
            raise BenchError(f"init.from {path}: not a readable safetensors file ({exc})") from None
        if meta.get("format") == EXPORT_FORMAT:
            nets = json.loads(meta["networks"])
            return tensors, {n: {k[len(n) + 1:]: v for k, v in tensors.items() if k.startswith(n + ".")}
                             for n in nets}
        return tensors, None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as exc:
        raise BenchError(f"init.from {path}: not a weights-only torch file "
                         f"({str(exc).strip().splitlines()[0][:120]})") from None
    if isinstance(obj, dict) and isinstance(obj.get("method"), dict) and "nets" in obj["method"]:
        return {}, obj["method"]["nets"]                 # a benchsr checkpoint
    if isinstance(obj, dict) and key:
        if key not in obj:
            raise BenchError(f"init.from {path}: no entry '{key}' (it has: {', '.join(map(str, obj))})")
        obj = obj[key]
    elif isinstance(obj, dict) and not all(isinstance(v, torch.Tensor) for v in obj.values()):
        for guess in ("params_ema", "params", "state_dict"):   # BasicSR's, then common names
            if isinstance(obj.get(guess), dict):
                obj = obj[guess]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise BenchError(f"init.from {path}: no state dict of tensors found (set init.key)")
    return obj, None


def _fit_report(module: torch.nn.Module, state: dict, strict: bool) -> str:
    """'' when `state` fits `module`; otherwise what does not, named."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
              for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    parts = ([f"shape mismatch: {', '.join(shapes[:4])}"] if shapes else []) + \
        ([f"missing {len(missing)}: {', '.join(missing[:4])}"] if missing and strict else []) + \
        ([f"unexpected {len(unexpected)}: {', '.join(unexpected[:4])}"] if unexpected and strict else [])
    return "; ".join(parts)


def init_from(method: Method, init: dict) -> str:
    """Load init.from into the method's networks; returns the note the run records."""
    path = Path(init["from"])
    tensors, by_net = _read(path, init["key"])
    if by_net is None:   # one state dict: the named net, or the SR network
        target = init["network"] or method.inference_network
        if target not in method.nets:
            raise BenchError(f"init.network '{target}' is not a network of {method.cfg['method']} "
                             f"({', '.join(method.nets)})")
        by_net = {target: tensors}
    modules = {**method.nets, **method.inference_modules()}
    for net, state in by_net.items():
        if net not in modules:
            raise BenchError(f"init.from {path}: network '{net}' is not one of "
                             f"{method.cfg['method']}'s ({', '.join(method.nets)})")
        problem = _fit_report(modules[net], state, bool(init["strict"]))
        if problem:
            raise BenchError(f"init.from {path} does not fit {method.cfg['method']}'s {net}: {problem}")
        modules[net].load_state_dict(state, strict=bool(init["strict"]))
    return f"initialised from {path} (networks: {', '.join(by_net)})"
