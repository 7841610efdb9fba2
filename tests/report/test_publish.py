"""The published leaderboard: statistics, LaTeX, pictures and the HTML page in a real browser."""
import json
import os
import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from benchsr.report import front, publish, tables
from benchsr.results import finished_runs

TRAINED = ["srcyclegan", "cincgan", "esrgan", "pseudosr"]


def _browser():
    return shutil.which("chromium") or shutil.which("chromium-browser")


def test_html_page_in_headless_chromium(smoke_out):
    browser = _browser()
    if browser is None:
        msg = "Debian's chromium is not installed (bash scripts/setup.sh --test installs it)"
        pytest.fail(msg) if os.environ.get("CI") else pytest.skip(msg)
    page = smoke_out / "leaderboard.html"
    window = ["--headless", "--no-sandbox", "--disable-gpu", "--window-size=1400,900",
              "--hide-scrollbars", "--virtual-time-budget=5000"]
    dom = subprocess.run([browser, *window, "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    loaded = re.search(r'data-images-loaded="(\d+)/(\d+)"', dom)
    assert loaded, "the page's load handler did not run"
    # read at 1400 px: no cell wraps, no grid is shrunk, and the first screen shows the
    # default dataset's ranking (the page's own measurements, taken in the browser)
    seen = dict(re.findall(r'data-([a-z-]+)="([^"]*)"', dom))
    width, height = map(int, seen["viewport"].split("x"))
    assert width == 1400 and seen["wrapped-cells"] == "0" and seen["shrunk-grids"] == "0", seen
    assert seen["first-section"].startswith("lung-ct") and 0 < int(seen["first-table-top"]) < height - 150
    shot = smoke_out.parent / f"{smoke_out.name}-first-screen.png"
    subprocess.run([browser, *window, f"--screenshot={shot}", page.as_uri()],
                   capture_output=True, timeout=120)
    assert shot.read_bytes()[16:24] == (1400).to_bytes(4, "big") + (900).to_bytes(4, "big")
    ok, total = map(int, loaded.groups())
    assert ok == total >= 1 + len(TRAINED)     # the grid and one loss plot per trained method
    # quality, its tests against the best, clinical measures, cost, provenance
    assert dom.count("dataframe board") == 5
    from benchsr.nn.losses import vgg19_weights_path
    for label in TRAINED + ["bicubic", "nearest"]:
        # without the VGG19 weights, the recipes that use them say so in their label
        off = label in ("esrgan", "pseudosr") and not vgg19_weights_path().is_file()
        assert f"<td>{label}{' [perceptual=off]' if off else ''}</td>" in dom, label


def test_quality_statistics_ranks_and_best(smoke_out):
    (stats_csv,) = [p for p in (smoke_out / "leaderboard").glob("*-stats.csv")
                    if not p.name.endswith("-clinical-stats.csv")]
    stats = pd.read_csv(stats_csv)
    psnr = stats[stats["metric"] == "psnr"].set_index("label")
    best = psnr["mean"].idxmax()
    assert psnr.loc[best, "rank"] == 1 and psnr.loc[best, "best"]
    assert psnr["rank"].max() == len(psnr)
    # one seed per trained method and one patient: no comparison with the best can be tested
    assert psnr["verdict_vs_best"].drop(best).eq("untestable").all()
    assert psnr["p_vs_best"].drop(best).isna().all()
    # mean and n agree with the run's own per-image values
    from benchsr.results import display_label, finished_runs
    (run,) = [r["dir"] for r in finished_runs([smoke_out]) if display_label(r["manifest"]) == best]
    per_image = pd.read_csv(run / "metrics.csv")["psnr"]
    assert psnr.loc[best, "mean"] == pytest.approx(per_image.mean())
    assert psnr.loc[best, "n"] == len(per_image)
    board = (smoke_out / "leaderboard.md").read_text()
    assert re.search(rf"\| {re.escape(best)} +\| \*\*\d+\.\d\d ± ", board)   # best in bold


def test_markdown_reads_in_any_viewer(smoke_out):
    """No line over 300 characters (wide tables split, long notes under them), the ranking
    near the top, a table of contents, and the legend at the end."""
    from benchsr.report import layout
    board = (smoke_out / "leaderboard.md").read_text()
    assert layout.longest_line(board) <= layout.MAX_LINE
    lines = board.splitlines()
    assert lines.index("### Ranking") < 40 and "Contents:" in lines
    assert lines.index("## How to read the cells") > lines.index("### Ranking")
    assert "- [lung-ct, smoke](#lung-ct-smoke)" in board
    # a column no row could compute is one line (LPIPS without its weights), not a column
    ranking = board.split("### Ranking")[1].split("###")[0]
    if "LPIPS: n/a" in ranking:
        assert "| LPIPS" not in ranking
        # ... and a note under the table, never an empty row of it
        assert "- **every row**: LPIPS: n/a" in ranking and "| every row" not in ranking
        assert "<td>every row</td>" not in (smoke_out / "leaderboard.html").read_text()


def test_paper_latex_has_values_ranks_and_markers_only(smoke_out):
    (full,) = (smoke_out / "leaderboard").glob("*-quality.tex")
    (paper,) = (smoke_out / "leaderboard").glob("*-quality-paper.tex")
    text = paper.read_text()
    header = text.split(r"\midrule")[0].strip().splitlines()[-1]
    assert header.startswith("Method & PSNR (dB) & SSIM") and header.endswith(r"Seeds \\")
    assert "Notes" not in header and "CI covers" not in header and "LPIPS" not in header  # all n/a
    body = text.split(r"\midrule")[1]
    assert "[" not in body.replace("[perceptual=off]", "") and "/" not in body   # no CI, no path
    assert r"\#1" in body and r"\textbf{" in body
    assert len(body) < len(full.read_text().split(r"\midrule")[1]) / 2
    # the label whole: a recipe the environment changed stays in the row's name
    assert "esrgan [perceptual=off]" in text


def test_latex_is_booktabs_with_bold_best(smoke_out):
    (tex,) = (smoke_out / "leaderboard").glob("*-quality.tex")
    text = tex.read_text()
    assert r"\toprule" in text and r"\midrule" in text and r"\bottomrule" in text
    assert r"\textbf{" in text and r"$\pm$" in text
    assert "±" not in text and "_" not in text.replace(r"\_", "")


def test_comparison_grid_and_loss_plots(smoke_out):
    (grid,) = (smoke_out / "leaderboard").glob("*-grid.png")
    img = sitk.GetArrayFromImage(sitk.ReadImage(str(grid)))
    # not blank, and no wider than a 1400 px page: panels wrap into rows of GRID_COLUMNS
    assert img.shape[1] <= 1400 and img.std() > 10
    for label in TRAINED:
        assert (next((smoke_out / "runs" / "lung-ct" / label).iterdir()) / "losses.png").is_file()


def test_protocols_are_never_mixed_and_running_runs_are_not_shown(smoke_out, tmp_path):
    root = tmp_path / "r"
    shutil.copytree(smoke_out / "runs", root / "runs")
    runs = root / "runs" / "lung-ct"
    other = runs / "bicubic" / "zz-other-protocol"
    shutil.copytree(next((runs / "bicubic").iterdir()), other)
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["protocol"]["degradation"] = "zoom"
    (other / "manifest.json").write_text(json.dumps(manifest))
    live = runs / "nearest" / "zz-still-running"
    shutil.copytree(next((runs / "nearest").iterdir()), live)
    manifest = json.loads((live / "manifest.json").read_text())
    (live / "manifest.json").write_text(json.dumps(manifest | {"status": "running"}))

    found = publish.build([root / "runs"], root)
    assert len(found) == 2
    sizes = sorted(len(g.quality.cells) for g in found)
    assert sizes == [1, 8]          # all: 6 methods, esrgan:paired and esrgan:psnr
    assert all(r["dir"] != live for g in found for r in g.runs)
    # one task (dataset, track, profile): the newest protocol is shown, the other is history,
    # under what changed
    assert (root / "leaderboard.md").read_text().count("## lung-ct, smoke\n") == 1
    archive = (root / "leaderboard-archive.md").read_text()
    assert "(superseded)" in archive and "which changed: degradation " in archive
    assert len({tables.protocol_key(g.protocol) for g in found}) == 2


def test_a_rebuild_keeps_no_stale_group_files_and_groups_by_profile(smoke_out, tmp_path):
    stale = tmp_path / "leaderboard" / "lung-ct-00000000-quality.csv"   # a group that is gone
    stale.parent.mkdir()
    stale.write_text("Method\nold\n")
    found = publish.build([smoke_out], tmp_path)
    assert not stale.exists()
    assert [g.profile for g in found] == ["smoke"] and found[0].stem.endswith("-smoke")
    assert (tmp_path / "leaderboard" / f"{found[0].stem}-quality.csv").is_file()


def test_run_folders_behind_symlinks_are_found_once_and_a_loop_ends(smoke_out, tmp_path):
    """runs/lung-ct as a symlink to another disk used to give an empty leaderboard (glob('**')
    follows no link)."""
    root = tmp_path / "results"
    (root / "runs").mkdir(parents=True)
    (root / "runs" / "lung-ct").symlink_to(smoke_out / "runs" / "lung-ct", target_is_directory=True)
    (root / "runs" / "loop").symlink_to(root, target_is_directory=True)   # must not hang
    (root / "runs" / "again").symlink_to(smoke_out / "runs" / "lung-ct", target_is_directory=True)
    ours = sorted(str(r["manifest"]["label"]) for r in finished_runs([root]))
    theirs = sorted(str(r["manifest"]["label"]) for r in finished_runs([smoke_out]))
    assert ours == theirs and len(ours) >= 8


@pytest.mark.parametrize("edit, words", [
    (lambda s, m: s["psnr"].update(mean=float("inf")), "summary.json gives psnr mean inf"),
    (lambda s, m: s["psnr"].update(mean=99.0), "summary.json gives psnr mean 99"),
    (lambda s, m: m.__setitem__("psnr", ["abc", *m["psnr"].astype(str)[1:]]), "non-numeric psnr"),
])
def test_a_summary_that_disagrees_with_its_per_image_values_marks_the_run_damaged(
        edit, words, smoke_out, tmp_path):
    """A hand-edited mean of Infinity used to be accepted as a summary; the tables are built
    from metrics.csv, and a folder whose files disagree is a failed row with the reason."""
    from benchsr.report import rows
    src = next((smoke_out / "runs" / "lung-ct" / "bicubic").iterdir())
    run = tmp_path / "runs" / "lung-ct" / "bicubic" / src.name
    shutil.copytree(src, run)
    summary = json.loads((run / "summary.json").read_text())
    frame = pd.read_csv(run / "metrics.csv")
    edit(summary, frame)
    (run / "summary.json").write_text(json.dumps(summary))
    frame.to_csv(run / "metrics.csv", index=False)
    (row,) = rows.load_runs([tmp_path])
    assert row["manifest"]["status"] == "failed" and words in row["manifest"]["reason"]
    assert row.get("per_image") is None
    (group,) = tables.groups([row])
    assert group.quality.cells.iloc[0]["PSNR (dB)"] == "n/a"      # no number from it


def test_a_crash_mid_build_leaves_the_last_leaderboard_whole(smoke_out, tmp_path, monkeypatch):
    """A build used to write group files one by one into leaderboard/: a crash after some left
    a mix of new and old files."""
    publish.build([smoke_out], tmp_path)
    before = {p.name: p.read_bytes() for p in (tmp_path / "leaderboard").iterdir()}
    calls = []

    def crash_on_fourth(*args, **kw):
        calls.append(1)
        if len(calls) > 3:
            raise RuntimeError("disk full")
        return original(*args, **kw)
    original = publish.write_text
    monkeypatch.setattr(publish, "write_text", crash_on_fourth)
    with pytest.raises(RuntimeError):             # a build of other runs: other contents
        publish.build([smoke_out / "runs" / "lung-ct" / "bicubic"], tmp_path)
    after = {p.name: p.read_bytes() for p in (tmp_path / "leaderboard").iterdir()}
    assert after == before and len(before) > 5
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".leaderboard")] == []


def test_a_failed_seed_is_a_note_and_a_failed_run_shows_no_number(smoke_out, tmp_path):
    """An output check fails a run after its summary.json is written: the table must neither
    average that seed in, nor rank the number of a run that failed alone."""
    from benchsr.report import rows
    src = next((smoke_out / "runs" / "lung-ct" / "nearest").iterdir())
    for seed, status in ((0, "complete"), (1, "failed"), (2, "complete")):
        run = tmp_path / "runs" / "lung-ct" / "nearest" / f"2026120{seed}-000000-smoke-00000{seed}"
        shutil.copytree(src, run)
        m = json.loads((run / "manifest.json").read_text())
        m.update(seed=seed, status=status, **({"reason": "degenerate output: r = -0.5"}
                                              if status == "failed" else {}))
        (run / "manifest.json").write_text(json.dumps(m))
    (group,) = tables.groups(rows.load_runs([tmp_path]))
    row = group.quality.cells.iloc[0]
    assert "seed 1 FAILED, not counted: degenerate output" in row["Notes"]
    assert not row["Notes"].startswith("FAILED")
    lone = tmp_path / "lone"
    shutil.copytree(tmp_path / "runs" / "lung-ct" / "nearest" / "20261201-000000-smoke-000001",
                    lone / "runs" / "lung-ct" / "nearest" / "20261201-000000-smoke-000001")
    (group,) = tables.groups(rows.load_runs([lone]))
    assert group.quality.cells.iloc[0]["PSNR (dB)"] == "n/a"


def test_the_grid_shows_bicubic_once_when_it_is_a_row(tmp_path, lung_smoke):
    from benchsr.report import figures
    img = lung_smoke.eval_images[0]
    ref = figures.bicubic_reference(img.lr, 4)
    widths = []
    for methods in ([("bicubic", ref.astype(np.float16).astype(np.float32))],
                    [("nearest", np.kron(img.lr, np.ones((4, 4), np.float32)))]):
        png = tmp_path / f"{methods[0][0]}.png"
        figures.comparison_grid(img.lr, img.hr, methods, 4, png, "t")
        widths.append(sitk.GetArrayFromImage(sitk.ReadImage(str(png))).shape[1])
    assert widths[0] / widths[1] == pytest.approx(3 / 4, abs=0.03)   # 3 panels against 4


def test_a_bicubic_row_on_a_published_crop_is_still_the_reference(tmp_path, lung_smoke):
    """The grid shows crops now: bicubic of the LR crop differs from the crop of the bicubic
    run's output near the edge, and the reference must still be recognised (3 panels)."""
    from benchsr.report import figures
    img = lung_smoke.eval_images[0]
    crop = figures.crop_sample(img.lr, figures.bicubic_reference(img.lr, 4), img.hr, 4)
    assert not np.allclose(crop["sr"], figures.bicubic_reference(crop["lr"], 4), atol=2e-3)
    png = tmp_path / "g.png"
    figures.comparison_grid(crop["lr"], crop["hr"], [("bicubic", crop["sr"])], 4, png, "t")
    three = sitk.GetArrayFromImage(sitk.ReadImage(str(png))).shape[1]
    figures.comparison_grid(crop["lr"], crop["hr"], [("x", crop["sr"][::-1].copy())], 4, png, "t")
    assert three / sitk.GetArrayFromImage(sitk.ReadImage(str(png))).shape[1] == pytest.approx(3 / 4, abs=0.03)


def test_a_run_publishes_one_aligned_crop_that_every_run_of_the_image_shares(tmp_path, lung_smoke):
    """Samples are crops of 192 HR pixels on whole LR pixels, at the same place for every run
    of one image, in a fraction of the whole image's bytes; a folder made before (whole
    samples) is cropped the same way by the grid."""
    from conftest import smoke_config
    from benchsr import registry
    from benchsr.report import figures
    from benchsr.run.runner import Runner
    from benchsr.evaluation.evaluate import input_r
    boxes = {}
    for m in ("bicubic", "nearest"):
        run = Runner(lung_smoke, tmp_path).run(registry.get("methods", m), smoke_config(
            m, extra=["eval.crop=0", "eval.max_images=1"])).run_dir
        (npz,) = (run / "samples").glob("*.npz")
        assert npz.stat().st_size < 150_000          # the whole image's arrays were ~740 kB
        with np.load(npz) as z:
            y, x, size, h, w = boxes[m] = z["box"].tolist()
            assert (size, h, w) == (192, 512, 512) and y % 4 == 0 and x % 4 == 0
            img = next(i for i in lung_smoke.eval_images if i.name == npz.stem)
            assert z["sr"].shape == z["hr"].shape == (192, 192) and z["lr"].shape == (48, 48)
            assert np.array_equal(z["hr"], img.hr[y:y + 192, x:x + 192].astype(np.float16))
            assert np.array_equal(z["lr"], img.lr[y // 4:y // 4 + 48, x // 4:x // 4 + 48].astype(np.float16))
            assert input_r(z["sr"].astype(np.float64), z["lr"].astype(np.float64)) > 0.95
    assert boxes["bicubic"] == boxes["nearest"]
    whole = tmp_path / "old.npz"                   # as runs wrote samples before
    np.savez_compressed(whole, group=np.array(""), lr=img.lr.astype(np.float16),
                        sr=np.kron(img.lr, np.ones((4, 4))).astype(np.float16),
                        hr=img.hr.astype(np.float16))
    assert figures.published_sample(whole)["box"] == boxes["nearest"]


def test_the_newest_complete_run_of_a_seed_wins_and_failed_seeds_are_counted(smoke_out, tmp_path):
    """A failed rerun of a seed that has a complete run does not replace it (the newest run
    used to win, failed or not); the row's Seeds counts the seeds that failed."""
    from benchsr.report import rows
    src = next((smoke_out / "runs" / "lung-ct" / "srcyclegan").iterdir())
    for stamp, seed, status in (("20261201", 0, "complete"), ("20261202", 1, "failed"),
                                ("20261203", 2, "complete"), ("20261204", 0, "failed")):
        run = tmp_path / "runs" / "lung-ct" / "srcyclegan" / f"{stamp}-000000-smoke-{stamp[-2:]}{seed}"
        shutil.copytree(src, run)
        m = json.loads((run / "manifest.json").read_text())
        m.update(seed=seed, status=status, **({"reason": "degenerate output"} if status == "failed" else {}))
        (run / "manifest.json").write_text(json.dumps(m))
    (row,) = rows.load_runs([tmp_path])
    chosen = {r["manifest"]["seed"]: r["manifest"]["status"] for r in row["seed_runs"]}
    assert chosen == {0: "complete", 1: "failed", 2: "complete"}
    (group,) = tables.groups([row])
    cells = group.quality.cells.iloc[0]
    assert cells["Seeds"] == "2 of 3 (1 failed)"
    prov = group.provenance.cells.set_index("Run")
    assert prov.loc["20261204-000000-smoke-040", "Status"] == "superseded by 20261201-000000-smoke-010"


def _with_a_copy(smoke_out, root, method: str, folder: str, changes: dict):
    """The smoke runs under root/runs, and a copy of `method`'s run in runs/lung-ct/`folder`
    with its manifest changed by `changes`: the copy's folder."""
    shutil.copytree(smoke_out / "runs", root / "runs")
    runs = root / "runs" / "lung-ct"
    copy = runs / folder / "zz-copy"
    shutil.copytree(next((runs / method).iterdir()), copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    (copy / "manifest.json").write_text(json.dumps(manifest | changes))
    return copy


def test_config_variants_are_ranked_apart_after_the_methods_as_shipped(smoke_out, tmp_path):
    """Table 3 and 7's 16 SR-CycleGAN variants sat among the 9 methods a reader chooses from."""
    root = tmp_path / "r"
    _with_a_copy(smoke_out, root, "nearest", "nearest-mode=other",
                 {"variant": "mode=other", "label": "nearest [mode=other]"})
    found = publish.build([root / "runs"], root)
    assert [(g.title, len(g.quality.cells)) for g in found] == [
        ("lung-ct, smoke", 8), ("lung-ct, smoke, config variants", 1)]
    assert tables.VARIANTS_NOTE in found[1].caveats and found[1].stem.endswith("-variants")
    board = (root / "leaderboard.md").read_text()
    assert board.index("## lung-ct, smoke\n") < board.index("## lung-ct, smoke, config variants\n")


def test_the_front_page_ranks_each_task_and_never_overwrites_a_readme_of_yours(smoke_out, tmp_path):
    root = tmp_path / "r"
    longer = _with_a_copy(smoke_out, root, "bicubic", "bicubic", {"profile": "quick"})
    found = publish.build([root / "runs"], root)
    page = (root / "README.md").read_text()
    assert page.startswith(front.MARK) and len(page.splitlines()) < 150
    # the longer profile is the answer; the smoke runs are a link under it
    assert page.index("## lung-ct, quick\n") < page.index("- [lung-ct, smoke](leaderboard.md#lung-ct-smoke)")
    assert "## lung-ct, smoke\n" not in page
    psnr = json.loads((longer / "summary.json").read_text())["psnr"]
    (line,) = [line for line in page.splitlines() if line.startswith("| 1 ")]
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[:3] == ["1", "bicubic", f"{psnr['mean']:.2f} ± {psnr['std']:.2f}"]
    assert cells[4] == "best" and cells[5] == "no training"
    flat = " ".join(page.split())                  # prose is wrapped
    assert "Evidence: 3 volumes (" in flat and "no method here trains; profile quick." in flat
    assert "[leaderboard.md#lung-ct-quick](leaderboard.md#lung-ct-quick)" in page
    # a front page that benchsr did not write stays as it is
    (root / "README.md").write_text("# my notes\n")
    publish.build([root / "runs"], root)
    assert (root / "README.md").read_text() == "# my notes\n"
    assert len(found) == 2


def test_a_wide_table_of_narrow_columns_is_split_within_the_line_limit():
    """pandas pads a column to at least 3 characters: the clinical table of the published
    leaderboard (short counts beside long cells) came out at 302 characters a line."""
    from benchsr.report import layout
    cells = pd.DataFrame({"Method": ["esrgan:psnr"],
                          **{f"{k}": ["1"] for k in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"},
                          **{f"measure {k}": ["160.2 ± 65.0 [-423.5, 744.0] #5"] for k in range(5)}})
    text = layout.table(cells)
    assert layout.longest_line(text) <= layout.MAX_LINE and text.count("| esrgan:psnr") >= 2


def test_a_long_label_wraps_within_its_panel():
    """Table 3's variant labels ran into their neighbours' titles on the grid (one long word
    of key=value pairs, 56 characters over a 250 px panel)."""
    from benchsr.report.figures import TITLE_CHARS, panel_title
    for label in ("srcyclegan [lambda_down=0,lambda_ssim_x=0,lambda_ssim_y=0]",
                  "srcyclegan [lambda_up=0,lambda_down=0,lambda_ssim_x=0]",
                  "esrgan:paired [perceptual=off]", "bicubic"):
        title = panel_title(label)
        assert all(len(line) <= TITLE_CHARS for line in title.splitlines()), title
        assert title.replace("\n", "") == label, title     # broken after commas only
    assert panel_title("srcyclegan [lambda_down=0,lambda_ssim_x=0,lambda_ssim_y=0]") == (
        "srcyclegan [lambda_down=0,\nlambda_ssim_x=0,\nlambda_ssim_y=0]")
