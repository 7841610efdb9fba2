"""A prepared scan is checked as any scan is: damaged files and arrays that cannot be a CT in HU
are one line naming the file, before any run folder. An all-zero `hu` ranked nearest #1 at
144 dB; NaN or zero spacing, a NaN voxel, a short mask and uint8 HU were accepted; a truncated
file, a bad CRC and a 2D `hu` were tracebacks."""
import io

import numpy as np
import pytest

from benchsr.data.prepared import PREPARED, read_scan
from benchsr.errors import BenchError
from conftest import _main


def _scan(**change) -> dict:
    """A small plausible CT: air around a water-like body with a bone."""
    hu = np.full((6, 32, 32), -1000, np.int16)
    hu[:, 8:24, 8:24] = 40
    hu[:, 14:18, 14:18] = 900
    body = hu > -500
    arrays = {"hu": hu, "body": np.packbits(body), "fov": np.packbits(np.ones_like(body)),
              "spacing": np.array([0.8, 0.8, 2.5]), "origin": np.zeros(3),
              "direction": np.eye(3).ravel(), "patient": np.array("p1")}
    arrays.update(change)
    return arrays


def _write(folder, arrays) -> bytes:
    folder.mkdir(exist_ok=True)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    (folder / PREPARED).write_bytes(buf.getvalue())
    return buf.getvalue()


def test_a_plausible_prepared_scan_reads_back(tmp_path):
    _write(tmp_path / "d", _scan())
    scan = read_scan(tmp_path / "d")
    assert scan["hu"].shape == (6, 32, 32) and scan["body"].sum() == 6 * 16 * 16


HU = _scan()["hu"]


@pytest.mark.parametrize("change, words", [
    ({"hu": np.zeros((6, 32, 32), np.int16)}, "hu spans 0..0: a CT in HU has air below -500"),
    ({"hu": (HU + 1024).astype(np.uint8)}, "hu is uint8, which cannot hold HU"),
    ({"hu": np.where(HU == 40, np.nan, HU).astype(np.float32)}, "1440 voxel(s) of hu are not finite"),
    ({"hu": HU[0]}, "hu has shape (32, 32), not (slices, rows, columns)"),
    ({"spacing": np.array([np.nan, 0.8, 5.0])}, "spacing is [nan, 0.8, 5.0], not 3 finite numbers"),
    ({"spacing": np.array([0.8, 0.0, 2.5])}, "every spacing must be > 0"),
    ({"direction": np.zeros(9)}, "is not a rotation"),
    ({"body": np.packbits(HU > -500)[:384]}, "its body mask has 384 bytes for 6144 voxels"),
    ({"body": np.packbits(np.zeros(HU.shape, bool))}, "its body mask is empty"),
])
def test_arrays_that_cannot_be_a_ct_in_hu_are_refused(tmp_path, change, words):
    _write(tmp_path / "d", _scan(**change))
    with pytest.raises(BenchError, match="not a usable prepared scan") as err:
        read_scan(tmp_path / "d")
    assert words in str(err.value) and "benchsr export-data" in str(err.value)


@pytest.mark.parametrize("damage, words", [
    (lambda b: b[: len(b) // 2], "BadZipFile"),                 # truncated
    (lambda b: b[:200] + bytes(x ^ 0xFF for x in b[200:260]) + b[260:], "Bad"),   # flipped bytes
    (lambda b: b"", "EOFError"),
])
def test_a_damaged_file_is_one_line(tmp_path, damage, words):
    good = _write(tmp_path / "d", _scan())
    (tmp_path / "d" / PREPARED).write_bytes(damage(good))
    with pytest.raises(BenchError, match="not a usable prepared scan") as err:
        read_scan(tmp_path / "d")
    assert words in str(err.value) and "\n" not in str(err.value)


def test_an_all_zero_scan_never_reaches_a_table(tmp_path, capsys, monkeypatch):
    _write(tmp_path / "d", _scan(hu=np.zeros((6, 32, 32), np.int16)))
    out = tmp_path / "res"
    code, _, err = _main(["run", "--methods", "nearest", "--profile", "smoke", "--data-dir",
                          tmp_path / "d", "--out", out], capsys, monkeypatch)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "hu spans 0..0" in err and not list(out.glob("runs/*/*/*"))


def test_export_data_onto_a_full_disk_names_the_folder_and_keeps_nothing(tmp_path, capsys,
                                                                        monkeypatch):
    """It said "No space left on device" with no path, and left an empty folder."""
    import errno
    from benchsr.data import prepared

    def full(path, data):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(prepared, "atomic_write_bytes", full)
    out = tmp_path / "dev"
    code, _, err = _main(["export-data", out, "--set", "data.patients=[totalsegmentator-cta]"],
                         capsys, monkeypatch)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert f"{out}: cannot write the prepared scans (No space left on device); nothing was kept" in err
    assert not out.exists()
