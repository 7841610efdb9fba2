"""Typed-enough configuration: harness defaults, profiles, plugin presets and --set overrides.

Resolution order (later wins): harness defaults -> harness profile -> dataset presets.yaml
(base, then its profile) -> method presets.yaml (base, its profile, the chosen preset) ->
`by_scale[k]` blocks for the dataset's scale -> `--set key=value`.
"""
from __future__ import annotations

import copy
import difflib
import functools
import inspect
import math
from pathlib import Path
from typing import Any

import yaml

from benchsr.errors import BenchError

PROFILES = ("smoke", "quick", "standard", "paper")
DEFAULT_DATASET = "lung-ct"   # the embedded real chest CTs: what runs with no --dataset
# a profile built on another: the base's harness and plugin layers come first (standard keeps
# quick's slim networks and trains them longer)
PROFILE_BASE = {"standard": "quick"}

HARNESS_DEFAULTS: dict[str, Any] = {
    "seed": 0,
    "variant": "",             # names a run made with --set overrides; shown in its label
    "time_limit_s": 0,         # a run still going after this many seconds is stopped (0 = none)
    "device": "auto",          # auto = cuda when available, else cpu
    "precision": "fp32",       # fp32 | bf16 | fp16 (fp16 on cuda only)
    "train": {"epochs": 1, "steps_per_epoch": 10, "batch_size": 4, "lr_patch": 24},
    "eval": {
        "max_images": 0,       # 0 = all evaluation images
        "crop": 0,             # HR centre crop (pixels, multiple of k); 0 = whole slice
        "tile": 0,             # LR tile size for tiled SR; 0 = whole image at once; auto (tiling.py)
        "tile_batch": 1,       # tiles per forward; auto = as many as fit (GPU), 1 on the CPU
        "blend": "mean",       # where tiles overlap: mean | gaussian | linear
        "overlap": 0.5,
        "border_crop": None,   # None = k pixels, as SR papers do
        "lpips": True,
        "samples": 3,          # images per evaluation set kept as samples/ (crops, figures.py)
        "every": 0,            # score eval.every_images primary images every N steps: curve.csv
        "every_images": 4,
        "min_input_r": 0.5,    # output check: below this median input_r the run fails (0 = off)
    },
    "runtime": {               # speed-ups (benchsr/run/fastpaths.py), measured in benchmarks/
        "fast": "auto",        # auto: add what measured fastest on this device kind | off
        "channels_last": False,
        "optimizer": "default",   # default | foreach | fused
        "compile": False,
    },
    "init": {                  # start from given weights (benchsr/nn/weights.py)
        "from": "",            # a benchsr checkpoint or export, safetensors, or a BasicSR .pth
        "key": "",             # which entry of a .pth holds the weights (params, params_ema)
        "network": "",         # the net a single state dict goes into ("" = the SR network)
        "strict": True,       # false: load the tensors whose name and shape match
        "sha256": "",          # the file's content, recorded by the runner (one config per file)
    },
    "log": {"tensorboard": False, "every_steps": 100},   # losses.csv also every N steps
    "model": {},
    "data": {},
}

HARNESS_PROFILES: dict[str, dict[str, Any]] = {
    "smoke": {"train": {"epochs": 2, "steps_per_epoch": 2, "batch_size": 2, "lr_patch": 24},
              # 4 steps train no GAN into a super-resolution: smoke checks plumbing, not outputs
              "eval": {"max_images": 2, "crop": 128, "samples": 1, "min_input_r": 0.0}},
    # quick: bf16 where the CPU or GPU computes it natively (measured 1.5-1.7x on avx512_bf16),
    # and a validation point per epoch for the learning curves
    "quick": {"precision": "auto",
              "train": {"epochs": 6, "steps_per_epoch": 75, "batch_size": 4, "lr_patch": 24},
              "eval": {"max_images": 12, "every": 75, "every_images": 4}},
    # standard: quick's networks for 1,200 steps (2.7x), a validation point every 150. At quick
    # every GAN's validation curve peaked by step 300 or was still rising (results/README.md);
    # 1,200 steps is what one seed of every method costs in about 2.5 h on 2 CPU cores
    "standard": {"train": {"epochs": 8, "steps_per_epoch": 150}, "eval": {"every": 150}},
    "paper": {"train": {"epochs": 200, "steps_per_epoch": 2500, "batch_size": 4}},
}


def total_steps(cfg: dict) -> int:
    """A run's length: epochs x steps per epoch."""
    return int(cfg["train"]["epochs"]) * int(cfg["train"]["steps_per_epoch"])


def profile_chain(profile: str) -> list[str]:
    """The profile and the ones it builds on, base first."""
    return [*profile_chain(PROFILE_BASE[profile]), profile] if profile in PROFILE_BASE else [profile]


def deep_merge(base: dict, extra: dict | None) -> dict:
    out = copy.deepcopy(base)
    for key, value in (extra or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


class _UniqueKeys(yaml.SafeLoader):
    """safe_load that refuses a key given twice in one mapping (PyYAML keeps the last one,
    so a config file would silently run with a value its reader may not have seen)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice (line {key_node.start_mark.line + 1})",
                    key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


# a config is a few hundred values: more, once aliases are expanded, is an alias bomb (a few
# lines of anchors that expand to 1e8 values hang whatever walks or writes them)
MAX_YAML_VALUES = 100_000


def load_yaml(text: str, where: str, loader=yaml.SafeLoader):
    """YAML text to Python, refusing a document whose aliases expand past MAX_YAML_VALUES
    (counted on the composed node graph, where an alias is one shared node, in linear time)."""
    reader = loader(text)
    try:
        node = reader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node, {}) > MAX_YAML_VALUES:
            raise BenchError(f"{where}: its aliases expand to more than {MAX_YAML_VALUES:,} "
                             f"values (an alias bomb?): not a config")
        return reader.construct_document(node)
    finally:
        reader.dispose()


def _expanded_size(node, seen: dict) -> int:
    if id(node) in seen:
        return seen[id(node)]
    seen[id(node)] = MAX_YAML_VALUES + 1     # a node inside itself never ends
    if isinstance(node, yaml.MappingNode):
        children = [n for pair in node.value for n in pair]
    elif isinstance(node, yaml.SequenceNode):
        children = node.value
    else:
        children = []
    total = 1
    for child in children:
        total += _expanded_size(child, seen)
        if total > MAX_YAML_VALUES:
            break
    seen[id(node)] = total
    return total


def read_yaml(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:   # safe: no object construction
        data = load_yaml(path.read_text(encoding="utf-8"), str(path), _UniqueKeys)
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise BenchError(f"{path}: invalid YAML ({problem})") from None
    except UnicodeDecodeError as exc:
        raise BenchError(f"{path}: not UTF-8 text (byte {exc.start}): not a YAML file?") from None
    except RecursionError:
        raise BenchError(f"{path}: nested too deeply to be a config") from None
    if data is not None and not isinstance(data, dict):
        raise BenchError(f"{path}: expected a mapping at the top level")
    return data or {}


def plugin_presets(cls) -> dict:
    """The presets.yaml beside the module that defines a plugin class ({} when absent)."""
    path = Path(inspect.getfile(cls)).with_name("presets.yaml")
    try:
        stamp = path.stat()
    except OSError:
        return {}
    # parsed once per file version: every resolve reads two of them, several times
    return copy.deepcopy(_presets_at(str(path), stamp.st_mtime_ns, stamp.st_size))


@functools.lru_cache(maxsize=256)
def _presets_at(path: str, _mtime_ns: int, _size: int) -> dict:
    return read_yaml(Path(path))


def preset_names(cls) -> list[str]:
    return list(plugin_presets(cls).get("presets", {}) or {"default": {}})


def presets_in_all(cls) -> list[str]:
    """The presets `--methods all` runs: the default, and those marked `in_all: true` (a
    variant every leaderboard should show, e.g. ESRGAN trained on pairs as designed)."""
    presets = plugin_presets(cls).get("presets", {}) or {}
    return ["default", *[n for n, p in presets.items() if n != "default" and (p or {}).get("in_all")]]


# the sections of a plugin's presets.yaml that are not config keys
PLUGIN_SECTIONS = ("profiles", "presets", "upgrades", "limits", "read_only_when")


def _plugin_layers(cls, profile: str, preset: str | None = None) -> list[dict]:
    doc = plugin_presets(cls)
    base = {k: v for k, v in doc.items() if k not in PLUGIN_SECTIONS}
    layers = [base, *((doc.get("profiles") or {}).get(p) or {} for p in profile_chain(profile))]
    if preset is not None:
        presets = doc.get("presets") or {"default": {}}
        if preset not in presets:
            raise BenchError(f"unknown preset '{preset}' for method '{cls.name}' "
                             f"(available: {', '.join(presets)})")
        layers.append({k: v for k, v in (presets[preset] or {}).items()
                       if k not in ("description", "in_all")})
    return layers


def _scalar(raw: str):
    """A YAML scalar, except that '1e-3' is a float (YAML 1.1 wants '1.0e-3')."""
    try:
        value = load_yaml(raw, f"--set value {raw[:40]}...")
    except RecursionError:
        raise BenchError(f"--set value {raw[:40]}...: nested too deeply") from None
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    return value


def parse_set(items: list[str]) -> dict:
    """['train.epochs=3', 'model.recon_loss=l1'] -> nested dict; values parsed as YAML scalars."""
    out: dict = {}
    for item in items:
        if "=" not in item:
            raise BenchError(f"--set expects key=value, got '{item}'")
        key, raw = item.split("=", 1)
        node = out
        *parents, leaf = key.strip().split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = _scalar(raw)
    return out


def did_you_mean(key: str, known) -> str:
    """' (did you mean 'a', 'b'?)' for the known keys nearest to a misspelt one, or ''."""
    close = difflib.get_close_matches(key, list(known), n=3, cutoff=0.6)
    return f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""


def _check_known(overrides: dict, cfg: dict, prefix: str = "") -> None:
    for key, value in overrides.items():
        path = f"{prefix}{key}"
        if key not in cfg:
            known = [f"{prefix}{k}" for k in cfg]
            raise BenchError(f"unknown config key '{path}'{did_you_mean(path, known)}")
        if isinstance(value, dict) and isinstance(cfg[key], dict):
            _check_known(value, cfg[key], path + ".")


# Harness keys with a range: (minimum, maximum or None, whether the maximum is excluded).
# Plugin keys are checked by the type of their default; lambda_* >= 0 and *_fraction in [0, 1].
RANGES = {
    "seed": (0, 2 ** 32 - 1, False), "time_limit_s": (0, None, False),   # seeds numpy takes
    "train.epochs": (0, None, False), "train.steps_per_epoch": (1, None, False),
    "train.batch_size": (1, None, False), "train.lr_patch": (4, None, False),
    "eval.max_images": (0, None, False), "eval.crop": (0, None, False),
    "eval.tile": (0, None, False), "eval.overlap": (0, 1, True), "eval.tile_batch": (1, None, False),
    "eval.border_crop": (0, None, False), "eval.samples": (0, None, False),
    "log.every_steps": (0, None, False),
    "eval.every": (0, None, False), "eval.every_images": (1, None, False),
}


AUTO_KEYS = ("eval.tile", "eval.tile_batch")     # numbers, or auto (benchsr/evaluation/tiling.py)
CHOICES = {"eval.blend": ("mean", "gaussian", "linear"), "runtime.fast": ("auto", "off")}

# Keys added after runs were published, with the value that says what those runs did: a saved
# config.yaml without one is read with it (upgrade), so old and new runs of one setting compare
# equal. Before runtime.fast, a run applied only its explicit runtime keys, which is what `auto`
# does on the CPU (fastpaths.MEASURED["cpu"] adds nothing; tests/runtime/test_fastpaths.py holds the
# two together), and every run published before it ran on the CPU.
# min_input_r: runs made before the output check get it from scripts/recheck_outputs.py
UPGRADES = {"eval.tile_batch": 1, "eval.blend": "mean", "runtime.fast": "auto",
            "eval.min_input_r": 0.5, "init.sha256": ""}


def upgrade(cfg: dict) -> dict:
    """A saved config with the keys added since it was written: the harness's (UPGRADES) and
    its method plugin's (`upgrades:` in its presets.yaml)."""
    out = copy.deepcopy(cfg)
    for dotted, value in {**UPGRADES, **_plugin_upgrades(cfg.get("method"))}.items():
        *parents, leaf = dotted.split(".")
        node = out
        for key in parents:
            node = node.get(key) if isinstance(node.get(key), dict) else None
            if node is None:
                break
        if node is not None and leaf not in node:
            node[leaf] = value
    return out


@functools.lru_cache(maxsize=None)      # read_run calls it for every run folder
def _plugin_upgrades(method: str | None) -> dict:
    if not method:
        return {}
    from benchsr import registry   # lazy: the registry imports plugins, which import this module
    entry = registry.discover("methods").get(method)
    if entry is None or entry.broken:
        return {}
    return plugin_presets(entry.cls).get("upgrades") or {}


def _kind(value) -> str:
    if isinstance(value, bool):
        return "a boolean (true/false)"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def _typed(path: str, value, default):
    """`value` (a --set override) cast to the type of the key's default; BenchError when it
    cannot be, or when it is out of the key's range."""
    bad = BenchError(f"--set {path}={value!r}: expected {_kind(default)} (default {default!r})"
                     + (" or auto" if path in AUTO_KEYS else ""))
    if path in AUTO_KEYS and value == "auto":
        return value
    if path in CHOICES and value not in CHOICES[path]:
        raise BenchError(f"--set {path}={value!r}: expected one of {', '.join(CHOICES[path])}")
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise bad
    elif isinstance(default, int) and default is not None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
    elif isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad
        value = float(value)
    elif isinstance(default, str):
        if isinstance(value, (list, dict)) or value is None:
            raise bad
        value = str(value)   # '--set variant=2' is the string '2'
    elif isinstance(default, list) and not isinstance(value, list):
        raise bad
    _check_range(path, value)
    return value


# the narrowest intensity window (HU, or the scanner's units) a table may be scored through
MIN_WINDOW = 50.0


def _is_interval(leaf: str) -> bool:
    return leaf in ("window", "clip") or leaf.endswith(("_window", "_clip"))


def _check_range(path: str, value) -> None:
    leaf = path.rsplit(".", 1)[-1]
    if _is_interval(leaf):   # an intensity window: two numbers, low < high
        ok = (isinstance(value, list) and len(value) == 2 and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value))
        if not ok or not value[0] < value[1]:
            raise BenchError(f"--set {path}={value!r}: must be [low, high] with low < high")
        if value[1] - value[0] < MIN_WINDOW:
            raise BenchError(f"--set {path}={value!r}: a window {value[1] - value[0]:g} wide "
                             f"leaves almost nothing to score (at least {MIN_WINDOW:g}, in HU or "
                             f"scanner units)")
        return
    lo, hi, open_hi = RANGES.get(path, (None, None, False))
    if leaf.startswith("lambda_"):
        lo = 0
    if leaf.endswith("_fraction"):
        lo, hi = 0, 1
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return
    if not math.isfinite(value) or (lo is not None and value < lo) or \
            (hi is not None and (value >= hi if open_hi else value > hi)):
        span = (f"[{lo}, {hi}{')' if open_hi else ']'}" if hi is not None else
                f">= {lo}" if lo is not None else "a finite number")
        raise BenchError(f"--set {path}={value!r}: out of range (must be {span})")


def _check_types(overrides: dict, cfg: dict, prefix: str = "") -> dict:
    """The overrides, each cast to its default's type and range-checked (before any data is
    read or any run folder made)."""
    out = {}
    for key, value in overrides.items():
        path, default = f"{prefix}{key}", cfg[key]
        if isinstance(default, dict):
            if not isinstance(value, dict):
                raise BenchError(f"--set {path}: is a group of keys, not a value")
            out[key] = _check_types(value, default, path + ".")
        elif default is None:
            if value is not None:
                _check_range(path, value)
                if path in RANGES and (isinstance(value, bool) or not isinstance(value, int)):
                    raise BenchError(f"--set {path}={value!r}: expected an integer or null")
            out[key] = value
        else:
            out[key] = _typed(path, value, default)
    return out


def flatten(cfg: dict, prefix: str = "") -> dict:
    """{'train': {'epochs': 3}} -> {'train.epochs': 3}."""
    out = {}
    for key, value in cfg.items():
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


IDENTITY_KEYS = ("method", "preset", "dataset", "profile")


def resolve(method_cls, preset: str, dataset_cls, profile: str, overrides: list[str]) -> dict:
    if profile not in PROFILES:
        raise BenchError(f"unknown profile '{profile}' (available: {', '.join(PROFILES)})")
    cfg = HARNESS_DEFAULTS
    for name in profile_chain(profile):
        cfg = deep_merge(cfg, HARNESS_PROFILES[name])
    layers = _plugin_layers(dataset_cls, profile) + _plugin_layers(method_cls, profile, preset)
    for layer in layers:
        cfg = deep_merge(cfg, {k: v for k, v in layer.items() if k != "by_scale"})
    scale = int(cfg["data"].get("scale", dataset_cls.scale))
    for layer in layers:
        by_scale = layer.get("by_scale") or {}
        cfg = deep_merge(cfg, by_scale.get(scale) or by_scale.get(str(scale)))
    extra = parse_set(overrides)
    _check_known(extra, cfg)
    base, cfg = cfg, deep_merge(cfg, _check_types(extra, cfg))
    for cls in (dataset_cls, method_cls):
        doc = plugin_presets(cls)
        check_limits(cfg, doc.get("limits") or {}, cls.name)
        check_read(extra, base, cfg, doc.get("read_only_when") or {}, cls.name)
    cfg.update(method=method_cls.name, preset=preset, dataset=dataset_cls.name, profile=profile)
    return cfg


def track(cfg: dict, dataset_cls) -> tuple[str, int, str]:
    """(plane, scale, degradation) a resolved config runs: on the through-plane track the
    scale is data.z_factor and the degradation data.z_degradation (the slice profile)."""
    data = cfg["data"]
    if data.get("plane") == "through":
        return "through", int(data["z_factor"]), data["z_degradation"]
    return "axial", int(data.get("scale", dataset_cls.scale)), data.get("degradation", "bicubic")


def wrong_track(method_cls, plane: str, dataset: str) -> str:
    """'' when the method runs the plane's track, else why not (one line)."""
    if plane in method_cls.planes:
        return ""
    return (f"{method_cls.name} runs the {'/'.join(method_cls.planes)} track only, not "
            f"{dataset}'s {plane} track (data.plane={plane})")


def check_read(extra: dict, base: dict, cfg: dict, rules: dict, owner: str) -> None:
    """A plugin's `read_only_when:` (presets.yaml): a key it reads only under a setting. Given
    another value while that setting is off, it would change nothing yet be recorded as part of
    the run's config: refused."""
    if not extra or not rules:
        return
    given, before, now = flatten(extra), flatten(base), flatten(cfg)
    for key, condition in rules.items():
        if key not in given or given[key] == before.get(key):
            continue
        for setting, wanted in condition.items():
            wanted = wanted if isinstance(wanted, list) else [wanted]
            if now.get(setting) not in wanted:
                raise BenchError(f"--set {key}: {owner} reads it only under {setting}="
                                 f"{'|'.join(map(str, wanted))} (here {now.get(setting)}): it "
                                 f"would change nothing")


def check_limits(cfg: dict, limits: dict, owner: str) -> None:
    """A plugin's `limits:` (presets.yaml) on the resolved config, before any data is read:
    a list is the key's choices; {min, max} bound it, {above, below} bound it strictly."""
    flat = flatten(cfg)
    for key, rule in limits.items():
        if key not in flat:
            raise BenchError(f"{owner}'s presets.yaml limits '{key}', which it does not have")
        value = flat[key]
        if isinstance(rule, list):
            if value not in rule:
                raise BenchError(f"{key}={value!r}: expected one of {', '.join(map(str, rule))} "
                                 f"({owner})")
            continue
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            continue                                     # the type check has spoken
        for bound, fails, says in (("min", lambda v, b: v < b, ">="), ("max", lambda v, b: v > b, "<="),
                                   ("above", lambda v, b: v <= b, ">"),
                                   ("below", lambda v, b: v >= b, "<")):
            if bound in rule and fails(value, rule[bound]):
                raise BenchError(f"{key}={value!r}: out of range (must be {says} {rule[bound]}; "
                                 f"{owner})")
