"""Image-quality metrics, and the one registry (`METRICS`, at the end) that evaluation, summaries
and tables iterate: each metric's function, direction, titles, digits and whether it needs a
reference. Adding a metric is one entry there.

All metrics take float arrays/tensors in the stated data range; nothing is quantised to uint8.
The windowed SSIM is the same function the SR-CycleGAN loss differentiates, and tests check it
against skimage.metrics and basicsr on the same arrays.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from benchsr.evaluation import clinical

@functools.lru_cache(maxsize=8)
def _gaussian_1d(size: int, sigma: float, device: str, dtype: torch.dtype) -> torch.Tensor:
    # built once per (size, sigma, device, dtype): SSIM is called every training step
    ax = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(ax ** 2) / (2 * sigma ** 2))
    return (g / g.sum()).to(device=device, dtype=dtype)


def ssim_map(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0, win: int = 11,
             sigma: float = 1.5, k1: float = 0.01, k2: float = 0.03,
             padding: str = "valid") -> torch.Tensor:
    """Windowed SSIM map, computed in the inputs' precision with autocast off: under bf16
    autocast the convolutions would run in bf16, and the variances (E[x²] - E[x]²) cancel to
    zero or below, giving inf (a training loss calls this inside autocast)."""
    with torch.autocast(device_type=a.device.type, enabled=False):
        return _ssim_map(a, b, data_range, win, sigma, k1, k2, padding)


def _ssim_map(a, b, data_range, win, sigma, k1, k2, padding) -> torch.Tensor:
    """Windowed SSIM map per channel, a, b: (B, C, H, W). padding 'valid': only where the window
    fits (the metric); 'zero': zero-padded to the input size (pytorch_ssim, a training loss).
    The Gaussian window is separable: a pass along x, then along y, is the 2D window's sum
    (with zeros outside the image for 'zero') at 2*win instead of win² products per pixel; the
    five local means go through it together."""
    c = a.shape[1]
    g = _gaussian_1d(win, sigma, str(a.device), a.dtype)
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    pad = {"valid": 0, "zero": win // 2}[padding]
    stack = torch.cat([a, b, a * a, b * b, a * b], dim=1)              # (B, 5C, H, W)
    along_x = F.conv2d(stack, g.view(1, 1, 1, win).expand(5 * c, 1, 1, win), padding=(0, pad),
                       groups=5 * c)
    means = F.conv2d(along_x, g.view(1, 1, win, 1).expand(5 * c, 1, win, 1), padding=(pad, 0),
                     groups=5 * c)
    mu_a, mu_b, e_aa, e_bb, e_ab = means.split(c, dim=1)
    var_a = e_aa - mu_a ** 2
    var_b = e_bb - mu_b ** 2
    cov = e_ab - mu_a * mu_b
    return ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))


def ssim(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0, **kw) -> torch.Tensor:
    """Mean windowed SSIM per image: (B,)."""
    return ssim_map(a, b, data_range, **kw).flatten(1).mean(1)


def _as_tensor(x) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x, dtype=np.float64))
    return t[None, None] if t.ndim == 2 else t


def crop_border(img: np.ndarray, border: int) -> np.ndarray:
    return img[border:-border, border:-border] if border > 0 else img


def psnr(ref: np.ndarray, test: np.ndarray, data_range: float = 1.0) -> float:
    mse = float(np.mean((np.asarray(ref, np.float64) - np.asarray(test, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(data_range ** 2 / mse)


def ssim_windowed(ref: np.ndarray, test: np.ndarray, data_range: float = 1.0) -> float:
    """Gaussian window 11, sigma 1.5, standard constants for `data_range` (Wang et al. 2004)."""
    return float(ssim(_as_tensor(ref), _as_tensor(test), data_range)[0])


def ssim_global(ref: np.ndarray, test: np.ndarray, c1: float = 1e-4, c2: float = 1e-4) -> float:
    """The SR-CycleGAN authors' SSIM: one window over the whole image (means, variances,
    covariance of all pixels), c1 = c2 = 1e-4. Not the windowed SSIM: kept so paper numbers
    can be compared like for like."""
    a, b = np.asarray(ref, np.float64).ravel(), np.asarray(test, np.float64).ravel()
    ma, mb = a.mean(), b.mean()
    va, vb = a.var(), b.var()
    cov = ((a - ma) * (b - mb)).mean()
    return float(((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma ** 2 + mb ** 2 + c1) * (va + vb + c2)))


class LPIPSMetric:
    """LPIPS from the `lpips` package, only when its backbone weights are already on disk.

    The backbone (AlexNet) comes from torchvision's ImageNet weights in the torch hub cache.
    We never download: when the file is absent, `available` is False and `reason` says why.
    """

    BACKBONE_FILE = "alexnet-owt-7be5be79.pth"

    def __init__(self, device: torch.device | str = "cpu"):
        self.model = None
        self.reason = self.detail = ""
        cached = Path(torch.hub.get_dir()) / "checkpoints" / self.BACKBONE_FILE
        if not cached.is_file():
            self.reason = "n/a: weights not found"
            self.detail = f"AlexNet backbone {cached} absent and never downloaded (offline)"
            return
        try:
            import lpips
            self.model = lpips.LPIPS(net="alex", verbose=False).to(device).eval()
        except Exception as exc:  # noqa: BLE001 - any failure means "not computed", with why
            self.reason = "n/a: LPIPS failed to load"
            self.detail = f"{type(exc).__name__}: {exc}"
        self.device = device

    @property
    def available(self) -> bool:
        return self.model is not None

    @torch.no_grad()
    def __call__(self, ref: np.ndarray, test: np.ndarray) -> float:
        # lpips wants 3 channels in [-1, 1]: repeat the grayscale slice
        to = lambda x: (_as_tensor(x).float() * 2 - 1).repeat(1, 3, 1, 1).to(self.device)  # noqa: E731
        return float(self.model(to(ref), to(test)).item())


def psnr_in_mask(ref, test, ctx: clinical.Context) -> float | None:
    """PSNR (data range 1) over the body mask's pixels only."""
    if ctx.mask is None or not ctx.mask.any():
        return None
    return psnr(np.asarray(ref)[ctx.mask], np.asarray(test)[ctx.mask], 1.0)


def ssim_map_once(ref, test, ctx: clinical.Context | None) -> np.ndarray:
    """The windowed SSIM map (valid windows, data range 1) of one image pair, computed once per
    image and shared by the whole-slice and the body-masked SSIM (a 512² map costs ~0.6 s)."""
    cache = {} if ctx is None else ctx.cache
    if "ssim_map" not in cache:
        cache["ssim_map"] = ssim_map(_as_tensor(ref), _as_tensor(test), 1.0)[0, 0].numpy()
    return cache["ssim_map"]


def ssim_in_mask(ref, test, ctx: clinical.Context, mask=None) -> float | None:
    """The windowed SSIM map (valid windows) averaged over the windows centred in the mask
    (the body mask unless another is given)."""
    mask = ctx.mask if mask is None else mask
    if mask is None or not mask.any():
        return None
    smap = ssim_map_once(ref, test, ctx)
    r = (mask.shape[0] - smap.shape[0]) // 2
    inside = mask[r:r + smap.shape[0], r:r + smap.shape[1]]
    return float(smap[inside].mean()) if inside.any() else None


def _in_fov(ref, test, ctx: clinical.Context):
    """The pixels a whole-image metric scores: all of them, or those inside the field of view."""
    if ctx.fov is None:
        return ref, test
    return np.asarray(ref)[ctx.fov], np.asarray(test)[ctx.fov]


def _ssim_whole(ref, test, ctx: clinical.Context) -> float:
    if ctx.fov is None:
        return float(ssim_map_once(ref, test, ctx).mean())
    return ssim_in_mask(ref, test, ctx, ctx.fov)


def rmse(ref: np.ndarray, test: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(ref, np.float64) - np.asarray(test, np.float64)) ** 2)))


def bootstrap_summary(values, seed: int = 0, clusters=None, kind: str = "volumes") -> dict:
    """mean, std, n and a 95 % CI of one run's per-image values. Given each image's cluster (its
    volume, or with one volume its block of neighbouring slices: uncertainty.unit_keys), a
    t-interval over the cluster means, df clusters - 1, never slice by slice (one cluster: no
    interval); without clusters, scipy.stats.bootstrap (percentile) over images."""
    values = list(values)
    keep = [i for i, x in enumerate(values) if x is not None and np.isfinite(x)]
    v = np.asarray([values[i] for i in keep], dtype=np.float64)
    out = {"n": int(v.size), "mean": None, "std": None, "ci95": None}
    if v.size == 0:
        return out
    out["mean"], out["std"] = float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0
    if clusters is not None:
        _, idx = np.unique(np.asarray([clusters[i] for i in keep]).astype(str), return_inverse=True)
        means = np.bincount(idx, v) / np.bincount(idx)
        out["ci_resampled"] = f"t over {len(means)} {kind[:-1] if len(means) == 1 else kind}"
        if len(means) > 1 and means.std() > 0:
            # the cell's own t part (lazy: training imports this module, uncertainty pandas)
            from benchsr.evaluation.uncertainty import Part, half_width
            h = half_width([Part(kind, float(means.std(ddof=1) / np.sqrt(len(means))), len(means) - 1)])
            out["ci95"] = [float(means.mean() - h), float(means.mean() + h)]
        return out
    if v.size > 1 and v.std() > 0:
        from scipy.stats import bootstrap
        res = bootstrap((v,), np.mean, confidence_level=0.95, n_resamples=2000, method="percentile",
                        random_state=np.random.default_rng(seed))
        out["ci95"] = [float(res.confidence_interval.low), float(res.confidence_interval.high)]
    return out


def holm(p_values: list) -> list:
    """Holm-Bonferroni adjusted p-values by statsmodels' multipletests (None/NaN entries stay
    NaN and do not count as tests)."""
    from statsmodels.stats.multitest import multipletests   # lazy: 1 s to import
    p = np.array([np.nan if v is None else v for v in p_values], dtype=np.float64)
    ok = np.isfinite(p)
    out = np.full(p.shape, np.nan)
    if ok.any():
        out[ok] = multipletests(p[ok], method="holm")[1]
    return out.tolist()


# ---- the registry ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Metric:
    name: str
    title: str                  # a column of the leaderboard
    short: str                  # in the "other evaluation sets" column
    direction: str              # "higher" | "lower" is better
    digits: int
    fn: Callable                # (reference, test, clinical.Context) -> float | None
    needs_hr: bool = True       # False: measured on LR-only images (test = the pooled SR)
    ranked: bool = True         # a ranked quality column
    other_sets: bool = False    # shown for secondary evaluation sets
    table: str = "paper"        # "paper": the paper's table; "clinical": the second table
    unit: str = ""              # "" = unitless or dB in the title; "hr" = the HR domain's units
    per_volume: bool = False    # scored once per volume on its stacked slices (clinical.py)


def _tissue(kind: str, tissue: str) -> Metric:
    fn = clinical.mae_units if kind == "mae" else clinical.rmse_units
    return Metric(f"{kind}_hu_{tissue}", f"{kind.upper()} {tissue} (HU)", f"{kind.upper()} {tissue}",
                  "lower", 1, lambda r, t, c: fn(r, t, c, tissue), table="clinical", unit="hr")


METRICS: dict[str, Metric] = {m.name: m for m in (
    # whole-image metrics score the field of view (all of an image that has no padding)
    Metric("psnr", "PSNR (dB)", "PSNR", "higher", 2, lambda r, t, c: psnr(*_in_fov(r, t, c), 1.0),
           other_sets=True),
    Metric("ssim", "SSIM", "SSIM", "higher", 3, _ssim_whole, other_sets=True),
    Metric("ssim_global", "SSIM global (paper)", "global SSIM", "higher", 3,
           lambda r, t, c: ssim_global(*_in_fov(r, t, c))),
    # LPIPS has no mask: an image with padding gets none
    Metric("lpips", "LPIPS", "LPIPS", "lower", 3,
           lambda r, t, c: c.lpips(r, t) if c.lpips and c.fov is None else None),
    # SR-CycleGAN's own training term, so a check beside the table, never a ranked score
    Metric("lr_consistency_rmse", "LR-consistency RMSE", "LR-consistency RMSE (a check, not ranked)",
           "lower", 4, lambda lr, pooled, _: rmse(lr, pooled), needs_hr=False, ranked=False,
           other_sets=True),
    # the clinical table: the HR domain's units (HU, or µCT scanner units), inside the window
    Metric("mae_hu", "MAE (HU)", "MAE", "lower", 1, clinical.mae_units, table="clinical",
           unit="hr", other_sets=True),
    Metric("rmse_hu", "RMSE (HU)", "RMSE", "lower", 1, clinical.rmse_units, table="clinical",
           unit="hr"),
    *[_tissue(kind, tissue) for kind in ("mae", "rmse") for tissue in clinical.TISSUES_HU],
    Metric("psnr_body", "PSNR body (dB)", "PSNR body", "higher", 2, psnr_in_mask,
           table="clinical"),
    Metric("ssim_body", "SSIM body", "SSIM body", "higher", 3, ssim_in_mask,
           table="clinical"),
    Metric("lung_dice", "Lung Dice", "lung Dice", "higher", 3, clinical.lung_dice,
           table="clinical"),
    Metric("psnr_3d", "PSNR 3D per volume (dB)", "PSNR 3D", "higher", 2, None, table="clinical",
           per_volume=True),
    Metric("ssim_3d", "SSIM 3D per volume", "SSIM 3D", "higher", 3, None, table="clinical",
           per_volume=True),
)}
