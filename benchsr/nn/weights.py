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
from benchsr.results import atomic_write_bytes

EXPORT_FORMAT = "benchsr-weights-1"


def load_weights_only(path: Path, device="cpu", what: str = ""):
    """torch.load(weights_only=True), or a one-line BenchError naming the file and the cause in
    our words: pickled code refused, or a damaged file (never torch's advice to load it with
    weights_only=False)."""
    name = f"{what} {path}".strip()
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        # torch says "Weights only load failed" for both: only an unsupported global (a class
        # or function the pickle names) means code; anything else is a damaged file
        if "Unsupported global" in text or "GLOBAL" in text:
            raise BenchError(f"{name}: refused: it carries pickled objects beyond tensors "
                             f"(possibly code); only weights are loaded") from None
        detail = text.split("WeightsUnpickler error:", 1)[-1].strip().splitlines()
        cause = detail[0].strip() if len(detail) and "WeightsUnpickler" in text else "bad pickle"
        raise BenchError(f"{name}: corrupt, not a readable torch file ({cause})") from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, IndexError, TypeError) as exc:
        # a text file read as a pickle ends in any of these, depending on its first bytes
        said = str(exc).strip().split(". ")[0].splitlines()[0] if str(exc).strip() else ""
        raise BenchError(f"{name}: corrupt or truncated, not a torch file "
                         f"({type(exc).__name__}{': ' + said[:100] if said else ''})") from None


def export(method: Method, cfg: dict, out: Path) -> list[str]:
    """The inference networks' tensors as `<net>.<name>`, config and scale in the metadata."""
    from safetensors.torch import save
    if not out.name.endswith(".safetensors"):
        raise BenchError(f"{out}: the output must end in .safetensors")
    if out.is_dir():
        raise BenchError(f"{out}: is a folder; give a file name ending in .safetensors")
    modules = method.inference_modules()
    if not modules:
        raise BenchError(f"{cfg['method']} has no network: nothing to export")
    tensors = {f"{net}.{k}": v.detach().cpu().contiguous()
               for net, module in modules.items() for k, v in module.state_dict().items()}
    meta = {"format": EXPORT_FORMAT, "networks": json.dumps(list(modules)),
            "method": cfg["method"], "preset": cfg["preset"], "scale": str(method.ctx.scale),
            "config": json.dumps(cfg, default=str)}
    try:   # written beside and renamed: a full disk or a killed export leaves no half file
        atomic_write_bytes(out, save(tensors, metadata=meta))
    except OSError as exc:
        raise BenchError(f"{out}: cannot write the weights ({exc.strerror or exc})") from None
    return list(modules)


def _read(path: Path, key: str) -> tuple[dict, dict | None, str]:
    """(tensors, {net: state} when the file says which nets, which entry was read) from any
    supported file."""
    if not path.is_file():
        raise BenchError(f"init.from {path}: " + ("not a regular file (a folder, pipe or device)"
                                                 if path.exists() else "no such file"))
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
                             for n in nets}, "a benchsr export"
        return tensors, None, "safetensors"
    obj = load_weights_only(path, "cpu", "init.from")
    if isinstance(obj, dict) and isinstance(obj.get("method"), dict) and "nets" in obj["method"]:
        return {}, obj["method"]["nets"], "a benchsr checkpoint"
    entry = "the whole file"
    if isinstance(obj, dict) and key:
        if key not in obj:
            raise BenchError(f"init.from {path}: no entry '{key}' (it has: {', '.join(map(str, obj))})")
        obj, entry = obj[key], f"entry '{key}' (init.key)"
    elif isinstance(obj, dict) and not all(isinstance(v, torch.Tensor) for v in obj.values()):
        for guess in ("params_ema", "params", "state_dict"):   # BasicSR's, then common names
            if isinstance(obj.get(guess), dict):
                obj, entry = obj[guess], f"entry '{guess}'"
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise BenchError(f"init.from {path}: no state dict of tensors found (set init.key)")
    return obj, None, entry


def _mismatches(own: dict, state: dict) -> list[str]:
    return [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]


def _fit_report(module: torch.nn.Module, state: dict, cfg: dict) -> str:
    """'' when `state` fits `module` exactly; otherwise what does not, named, with the model.*
    keys whose values would give the file's shapes."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    bad = _mismatches(own, state)
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in bad]
    parts = ([f"shape mismatch: {', '.join(shapes[:4])}"] if shapes else []) + \
        ([f"missing {len(missing)}: {', '.join(missing[:4])}"] if missing else []) + \
        ([f"unexpected {len(unexpected)}: {', '.join(unexpected[:4])}"] if unexpected else [])
    hint = _key_hint(own, state, bad, cfg.get("model") or {})
    return "; ".join(parts) + (f" (the file fits {hint}?)" if parts and hint else "")


def _key_hint(own: dict, state: dict, bad: list[str], model: dict) -> str:
    """model.* integer keys whose value is the size that differs most often, with the file's
    size for it, e.g. model.ngf=64 (a width; depth shows as missing and unexpected names)."""
    from collections import Counter
    pairs = Counter((b, a) for k in bad for a, b in zip(state[k].shape, own[k].shape)
                    if a != b and b > 1)
    if not pairs:
        return ""
    (ours, theirs), _ = pairs.most_common(1)[0]
    return ", ".join(f"model.{key}={theirs}" for key, value in model.items()
                     if isinstance(value, int) and not isinstance(value, bool) and value == ours)


def init_from(method: Method, init: dict) -> str:
    """Load init.from into the method's networks; returns the note the run records: the entry
    read, how many tensors each net got and, with init.strict=false, what was skipped. strict
    (the default) needs an exact fit; false loads every tensor whose name and shape match, and
    loading none at all is an error."""
    path = Path(init["from"])
    tensors, by_net, entry = _read(path, init["key"])
    if by_net is None:   # one state dict: the named net, or the SR network
        target = init["network"] or method.inference_network
        if target not in method.nets:
            raise BenchError(f"init.network '{target}' is not a network of {method.cfg['method']} "
                             f"({', '.join(method.nets)})")
        by_net = {target: tensors}
    modules = {**method.nets, **method.inference_modules()}
    loaded, skipped, total = [], [], 0
    for net, state in by_net.items():
        if net not in modules:
            raise BenchError(f"init.from {path}: network '{net}' is not one of "
                             f"{method.cfg['method']}'s ({', '.join(method.nets)})")
        own = modules[net].state_dict()
        if init["strict"]:
            problem = _fit_report(modules[net], state, method.cfg)
            if problem:
                raise BenchError(f"init.from {path} does not fit {method.cfg['method']}'s {net}: "
                                 f"{problem}; init.strict=false loads what matches")
        bad = set(_mismatches(own, state))
        fits = {k: v for k, v in state.items() if k in own and k not in bad}
        modules[net].load_state_dict(fits, strict=bool(init["strict"]))
        loaded.append(f"{net} {len(fits)} of {len(own)} tensors")
        total += len(fits)
        skipped += [f"{net}.{k} (shape)" for k in sorted(bad)] + \
            [f"{net}.{k} (not in the file)" for k in own if k not in state]
    if total == 0:                      # names all differ: 'initialised' would be a lie
        net, state = next(iter(by_net.items()))
        raise BenchError(f"init.from {path}: no tensor of it fits {method.cfg['method']} "
                         f"(name and shape): {_fit_report(modules[net], state, method.cfg)}")
    note = f"initialised from {path}, {entry}: {', '.join(loaded)}"
    if skipped:
        note += f"; skipped {len(skipped)}: {', '.join(skipped[:6])}" + (" ..." if len(skipped) > 6 else "")
    return note
