"""files.py: a file is written whole or not at all."""

import os

import pytest

from mlff_distiller.files import atomic_path, atomic_write_bytes, atomic_write_text


def test_a_finished_write_replaces_the_file_and_leaves_nothing_beside_it(tmp_path):
    path = tmp_path / "folder" / "result.json"
    atomic_write_text(path, "old")
    assert atomic_write_bytes(path, b"new") == path
    assert path.read_bytes() == b"new"
    assert os.listdir(path.parent) == ["result.json"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "model.pt"
    path.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(path) as temporary:
        temporary.write_text("half of a ne")
        raise RuntimeError("killed mid-write")
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["model.pt"]


def test_the_temporary_lies_beside_the_target_with_its_suffix(tmp_path):
    """The same folder (an atomic rename) and the same suffix (writers that choose the format by it)."""
    with atomic_path(tmp_path / "parity.png") as temporary:
        assert temporary.parent == tmp_path and temporary.suffix == ".png" and temporary.name.startswith(".")
        temporary.write_bytes(b"png")
    assert (tmp_path / "parity.png").read_bytes() == b"png"


def test_the_file_gets_the_usual_permissions(tmp_path):
    """Readable by whoever may read the folder's other files (mkstemp's files are owner-only)."""
    umask = os.umask(0)
    os.umask(umask)
    path = atomic_write_text(tmp_path / "export.mliap", "x")
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
