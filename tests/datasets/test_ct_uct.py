"""ct-uct: the simulated specimen, container removal, the lung mask, the embedded default and the
user-folder mode."""
import json

import numpy as np
import pytest
import SimpleITK as sitk
from typer.testing import CliRunner

from benchsr import registry
from benchsr.cli.main import app
from benchsr.contracts import BenchError
from benchsr.datasets.ct_uct import LR_ONLY, TRUE_PAIR, lung_mask, remove_container
from benchsr.datasets.ct_uct import specimen as sim

from conftest import smoke_config


@pytest.fixture(scope="module")
def spec():
    return sim.simulate(96, seed=3)


def test_specimen_is_deterministic_and_in_uct_units(spec):
    again = sim.simulate(96, seed=3)
    assert np.array_equal(spec.uct, again.uct)
    assert not np.array_equal(spec.uct, sim.simulate(96, seed=4).uct)
    air = spec.uct[(spec.tissue == 0) & ~spec.container]
    solid = spec.uct[spec.tissue == 1]
    assert 0 <= np.median(air) <= 1000
    assert 11000 <= np.median(solid) <= 15000
    assert np.median(spec.uct[spec.container]) == pytest.approx(sim.UCT_PLASTIC, abs=300)
    inside = spec.tissue[40:56, 40:56, 40:56]
    assert 0.1 < float((inside > 0.5).mean()) < 0.7            # foam: walls and air cells


def test_same_specimen_as_clinical_ct(spec):
    hu = sim.render_clinical(spec, 8, seed=3)
    assert hu.shape == (12, 12, 12)
    assert -1100 < hu.min() and hu.max() < 200                   # HU: air to soft tissue
    # the clinical slab follows the specimen's tissue fraction (same anatomy, coarser)
    frac = spec.tissue.reshape(12, 8, 12, 8, 12, 8).mean((1, 3, 5))
    assert np.corrcoef(frac.ravel(), hu.ravel())[0, 1] > 0.8


def test_container_is_removed_automatically(spec):
    clean, outline = remove_container(spec.uct, 2000)
    assert not (outline & spec.container).any()
    assert np.median(clean[spec.container]) < 1000                # the tube became air
    assert np.array_equal(clean[spec.tissue == 1], spec.uct[spec.tissue == 1])


def test_lung_mask_by_region_growing_on_real_ct(lung_smoke):
    from benchsr.data.embedded import chest_ct_folder as series_folder
    from benchsr.data.volumes import body_mask, read_volume
    image = read_volume(series_folder())[:, :, 20:30]
    body = body_mask(image)
    lung = lung_mask(image, body)
    hu = sitk.GetArrayFromImage(image)
    assert lung.any() and not (lung & ~body).any()
    assert 0.1 < lung.sum() / body.sum() < 0.6                    # a chest: lungs are a big part
    assert np.median(hu[lung]) < -600                            # lung is mostly air


@pytest.mark.slow
def test_embedded_default_is_labelled_simulated_and_scores_the_true_pair(tmp_path):
    res = CliRunner().invoke(app, ["run", "--methods", "bicubic,srcyclegan", "--dataset",
                                   "ct-uct", "--profile", "smoke", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    run = next((tmp_path / "runs" / "ct-uct" / "bicubic").iterdir())
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["simulated"] is True and manifest["protocol"]["scale"] == 8
    # two modalities: the streams' distance is recorded, large, and says why
    assert manifest["protocol"]["stream_distance_w1"] > 0.02
    assert "two modalities" in manifest["protocol"]["stream_distance_note"]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["psnr"]["n"] == 2                              # the paper's bicubic proxy
    assert summary["groups"][TRUE_PAIR]["psnr"]["n"] == 2         # true cross-modality pairs
    assert summary["groups"][LR_ONLY]["lr_consistency_rmse"]["mean"] < 0.1   # > 20 dB
    board = " ".join((tmp_path / "leaderboard.md").read_text().split())   # prose is wrapped
    assert "SIMULATED" in board and TRUE_PAIR in board


def _user_tree(tmp_path, spec, manifest=None):
    from benchsr.data.embedded import chest_ct_folder as series_folder
    from benchsr.data.volumes import read_volume
    root = tmp_path / "data"
    (root / "clinical").mkdir(parents=True)
    (root / "uct").mkdir()
    clinical = sitk.Cast(read_volume(series_folder())[:, :, 20:36], sitk.sitkInt16)
    sitk.WriteImage(clinical, str(root / "clinical" / "patient1.nii.gz"), useCompression=True)
    uct = sitk.GetImageFromArray(spec.uct)
    uct.SetSpacing((0.05, 0.05, 0.05))
    sitk.WriteImage(uct, str(root / "uct" / "specimen1.mha"))
    if manifest is not None:
        (root / "uct" / "manifest.yaml").write_text(manifest)
    return root


def _load(root, extra=()):
    cls = registry.get("datasets", "ct-uct")
    return cls(smoke_config("bicubic", dataset_cls=cls, extra=["train.lr_patch=8", *extra]),
               root).load()


def test_user_folders_real_clinical_and_uct_file(tmp_path, spec):
    data = _load(_user_tree(tmp_path, spec))
    assert data.simulated is False and data.scale == 8
    assert data.train_lr.mask_rule == "all" and data.train_lr.mask.any()
    assert data.train_hr.images.shape[1:] == (96, 96)
    assert data.eval_images[0].lr.shape == (12, 12) and data.eval_images[0].hr.shape == (96, 96)
    assert {e.group for e in data.lr_only} == {LR_ONLY}
    assert data.metadata["clinical_spacing_mm"][0] == pytest.approx(0.842, abs=1e-3)


def test_manifest_box_crops_the_container(tmp_path, spec):
    data = _load(_user_tree(tmp_path, spec, "volumes:\n  specimen1.mha: {box: [0, 96, 8, 88, 8, 88]}\n"))
    assert data.train_hr.images.shape[1:] == (80, 80)


@pytest.mark.parametrize("manifest, message", [
    ("volumes:\n  ../../etc/passwd: {box: [0, 1, 0, 1, 0, 1]}\n", "not a plain file name"),
    ("volumes:\n  specimen1.mha: {box: [0, 999, 0, 96, 0, 96]}\n", "outside the volume"),
    ("volumes: [unclosed\n", "invalid YAML"),
])
def test_bad_manifest_is_refused(tmp_path, spec, manifest, message):
    with pytest.raises(BenchError, match=message):
        _load(_user_tree(tmp_path, spec, manifest))


def test_missing_uct_folder(tmp_path):
    (tmp_path / "clinical").mkdir()
    cls = registry.get("datasets", "ct-uct")
    with pytest.raises(BenchError, match="needs clinical/ and uct/ folders"):
        cls(smoke_config("bicubic", dataset_cls=cls), tmp_path).load()
