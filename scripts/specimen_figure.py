"""Writes docs/simulated_specimen.png: a real lung-ct slice beside one slice of the SIMULATED
lung specimen, as µCT and as the same specimen rendered by a clinical scanner.

    .venv/bin/python scripts/specimen_figure.py
"""
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from PIL import Image, ImageDraw

from benchsr.datasets.ct_uct import specimen as sim
from benchsr.data.embedded import chest_ct_folder as series_folder
from benchsr.data.volumes import read_volume, window

SIZE = 256


def panel(img: np.ndarray, title: str) -> Image.Image:
    im = Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8)).resize((SIZE, SIZE),
                                                                              Image.NEAREST)
    canvas = Image.new("L", (SIZE, SIZE + 22), 255)
    canvas.paste(im, (0, 22))
    ImageDraw.Draw(canvas).text((4, 5), title, fill=0)
    return canvas


def main() -> None:
    hu = sitk.GetArrayFromImage(read_volume(series_folder())).astype(np.float32)
    real = window(hu[32, 128:384, 96:352], -1000, 500)
    t0 = time.perf_counter()
    spec = sim.simulate(256, seed=0)
    t_sim = time.perf_counter() - t0
    clinical = window(sim.render_clinical(spec, 8, seed=0), -1000, 500)
    uct = window(spec.uct, 0, 15000)
    panels = [panel(real, "REAL lung-ct (TCIA), 0.84 mm"),
              panel(uct[150], "SIMULATED specimen, uCT 50 um"),
              panel(clinical[18], "SIMULATED same, clinical CT 0.4 mm")]
    out = Image.new("L", (3 * SIZE + 16, SIZE + 22), 255)
    for i, p in enumerate(panels):
        out.paste(p, (i * (SIZE + 8), 0))
    path = Path(__file__).resolve().parent.parent / "docs" / "simulated_specimen.png"
    out.save(path)
    print(f"{path} (256^3 specimen simulated in {t_sim:.1f} s)")


if __name__ == "__main__":
    main()
