"""The through-plane views: where they are cut, and that a grid never mixes views cut in
different places."""
import numpy as np

from benchsr.report import planes


def _slab(z=8, h=300, w=260):
    """A body (a disc) whose inside is flat in z except a structure that moves along z at rows
    200-209, columns 40-79; the air outside the body flickers along z more than anything."""
    rng = np.random.default_rng(0)
    yy, xx = np.indices((h, w))
    body = (yy - h / 2) ** 2 + (xx - w / 2) ** 2 < 120 ** 2
    thin = np.where(body, 0.5, 0.0)[None].repeat(z, 0).astype(np.float32)
    thin[:, ~body] = rng.random((z, int((~body).sum()))) * 0.9          # noisy air
    for k in range(z):
        thin[k, 200:210, 40 + 5 * k:50 + 5 * k] = 1.0
    return thin, np.repeat(body[None], z, 0)


def test_views_are_cut_where_the_real_slab_changes_along_z_inside_the_body():
    thin, body = _slab()
    boxes = planes.view_boxes(thin, body)
    row, start = boxes["coronal"]
    assert 200 <= row <= 209 and start <= 40 and start + planes.WIDTH >= 90
    col, start = boxes["sagittal"]
    assert 40 <= col <= 89 and start <= 200 and start + planes.WIDTH >= 210
    # without the body mask the flickering air wins: the mask is what keeps the view inside
    assert not 200 <= planes.view_boxes(thin)["coronal"][0] <= 209
    views = planes.slab_views(thin[::2], thin, thin, body)
    assert views["coronal_thin"].shape == (8, 192) and views["sagittal_thick"].shape == (4, 192)
    assert views["coronal_box"].tolist() == list(boxes["coronal"])
    assert np.array_equal(views["coronal_thin"], thin[:, row, boxes["coronal"][1]:][:, :192])


def test_a_grid_never_mixes_views_cut_in_different_places(tmp_path):
    thin, body = _slab()
    runs = []
    for name, mask in (("a", body), ("b", None)):           # b's views lie elsewhere
        run = tmp_path / name
        (run / "samples").mkdir(parents=True)
        views = planes.slab_views(thin[::2], thin, thin, mask)
        np.savez(run / "samples" / "slab.npz", plane=np.array("through"), k=np.array(2), **views)
        runs.append({"dir": run, "manifest": {"status": "complete", "label": name}})
    assert not planes.leaderboard_grid(runs, tmp_path / "grid.png", "t")
    assert planes.leaderboard_grid(runs[:1], tmp_path / "grid.png", "t")
    assert (tmp_path / "grid.png").stat().st_size > 1000


def test_the_head_is_drawn_up_when_the_scan_says_where_it_is():
    eye = [1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0]
    flipped = [1.0, 0, 0, 0, 1.0, 0, 0, 0, -1.0]
    assert planes.superior_up({"data_metadata": {"direction": eye}}) is True
    assert planes.superior_up({"data_metadata": {"direction": flipped}}) is False
    assert planes.superior_up({"data_metadata": {"eval_geometry_lps": {
        "case": {"direction": flipped}}}}) is False
    assert planes.superior_up({"data_metadata": {}}) is None      # unknown: the slice index rises
    assert planes.superior_up({}) is None


def test_every_patient_is_drawn_at_its_own_spacing(tmp_path):
    """Issue 40: thin_mm is per patient; each patient's views keep its z over in-plane ratio,
    and the grid shows the first slab of every patient."""
    manifest = {"protocol": {"thin_mm": {"a": 5.0, "b": 1.5}},
                "data_metadata": {"eval_geometry_lps": {"a": {"spacing": [0.84, 0.84, 5.0]},
                                                        "b": {"spacing": [1.5, 1.5, 1.5]}}}}
    assert planes.aspect_of(manifest, "a") == 5.0 / 0.84
    assert planes.aspect_of(manifest, "b") == 1.0
    from benchsr.contracts import EvalVolume
    from benchsr.evaluation.through_plane import keep_views
    thin, body = _slab()
    kept = []
    for name, patient in (("a_slab000", "a"), ("a_slab020", "a"), ("b_slab000", "b")):
        vol = EvalVolume(name, thin[::2], thin, "src", patient, body)
        if keep_views(kept, vol, 1):
            kept.append((vol, thin))
    assert [v.name for v, _ in kept] == ["a_slab000", "b_slab000"]   # every patient, then 1
    run = tmp_path / "run"
    run.mkdir()
    planes.save_samples(run, kept, 2, {**manifest, "label": "m", "status": "complete"})
    with np.load(run / "samples" / "b_slab000.npz") as z:
        assert str(z["volume"]) == "b" and float(z["aspect"]) == 1.0
    assert planes.leaderboard_grid([{"dir": run, "manifest": {**manifest, "label": "m",
                                                               "status": "complete"}}],
                                   tmp_path / "grid.png", "t")
    from PIL import Image
    assert Image.open(tmp_path / "grid.png").size[1] > Image.open(run / "samples" / "a_slab000.png").size[1]
