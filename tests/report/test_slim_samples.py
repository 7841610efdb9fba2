"""scripts/slim_samples.py: a folder of whole samples becomes what a run publishes now, except
the samples an output check was read from."""
import importlib.util
import json
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def _script():
    spec = importlib.util.spec_from_file_location("slim_samples", ROOT / "scripts" / "slim_samples.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _old_folder(folder: Path, img, check: dict | None) -> None:
    (folder / "samples").mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps({"status": "complete", "label": "x"} |
                                                     ({"output_check": check} if check else {})))
    sr = np.kron(img.lr, np.ones((4, 4), np.float32))
    for name, group in (("a", ""), ("b", ""), ("c", "other set")):
        np.savez_compressed(folder / "samples" / f"{name}.npz", group=np.array(group),
                            lr=img.lr.astype(np.float16), sr=sr.astype(np.float16),
                            hr=img.hr.astype(np.float16))
        (folder / "samples" / f"{name}.png").write_bytes(b"png")


def test_slimming_keeps_one_crop_per_set_and_what_a_verdict_rests_on(tmp_path, lung_smoke):
    slim = _script()
    img = lung_smoke.eval_images[0]
    _old_folder(tmp_path / "plain", img, None)
    assert slim.slim(tmp_path / "plain") == "kept 2 of 3"
    left = sorted(p.name for p in (tmp_path / "plain" / "samples").iterdir())
    assert left == ["a.npz", "a.png", "c.npz", "c.png"]
    with np.load(tmp_path / "plain" / "samples" / "a.npz") as z:
        assert z["box"].tolist()[2:] == [192, 512, 512] and z["sr"].shape == (192, 192)
    manifest = json.loads((tmp_path / "plain" / "manifest.json").read_text())
    assert manifest["published_samples"]["kept"] == ["a", "c"] and manifest["published_samples"]["dropped"] == 1
    assert slim.slim(tmp_path / "plain") == "already crops"          # once only

    _old_folder(tmp_path / "checked", img, {"on": "3 published samples (no checkpoint)"})
    before = (tmp_path / "checked" / "samples" / "b.npz").read_bytes()
    assert slim.slim(tmp_path / "checked") == "kept 3 of 3, 2 whole"
    assert (tmp_path / "checked" / "samples" / "b.npz").read_bytes() == before   # as published
    with np.load(tmp_path / "checked" / "samples" / "c.npz") as z:
        assert "box" in z                                                # the other set: a crop
