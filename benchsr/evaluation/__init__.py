"""Scoring: evaluation over images and tiles (evaluate, tiling), the metric registry (metrics),
the clinical measures (clinical), the statistics of seeds and volumes (uncertainty), costs
(cost), and outside models' predictions (external). Plugins import `ssim` from here."""
from benchsr.evaluation.metrics import ssim
