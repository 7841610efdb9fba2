"""`benchsr export-weights` under hostile input: an output it cannot write is one line, and
nothing half-written is left."""
from conftest import _main, _one_line_exit_2


def test_export_weights_to_a_folder_or_an_unwritable_place_is_one_line(trained, tmp_path, capsys,
                                                                       monkeypatch):
    """These gave safetensors' or the OS's traceback; nothing is left half-written."""
    (tmp_path / "w.safetensors").mkdir()
    code, _, err = _main(["export-weights", trained["srcyclegan"], tmp_path / "w.safetensors",
                          "--overwrite"], capsys, monkeypatch)
    _one_line_exit_2(code, err, "is a folder")
    (tmp_path / "file").write_text("x")
    code, _, err = _main(["export-weights", trained["srcyclegan"], tmp_path / "file" / "w.safetensors"],
                         capsys, monkeypatch)
    _one_line_exit_2(code, err, "cannot write the weights")


def test_a_pipe_as_the_checkpoint_is_one_line(trained, tmp_path, capsys, monkeypatch):
    import os
    pipe = tmp_path / "pipe.pt"
    os.mkfifo(pipe)
    code, _, err = _main(["export-weights", trained["srcyclegan"], tmp_path / "w.safetensors",
                          "--checkpoint", pipe], capsys, monkeypatch)
    _one_line_exit_2(code, err, "not a regular file")
