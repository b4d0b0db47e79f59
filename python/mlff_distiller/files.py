"""The one way the project writes a file: whole or not at all.

Model files, checkpoints, exports, data sets written in one go, settings and metrics all go
through ``atomic_path``: the content is written to a temporary file beside the target, flushed to
disk, and renamed over the target only once it is complete. A reader (LAMMPS opening an export, a
committee that takes "member file exists" for "member done", a resumed run) therefore sees the old
file or the new one, never part of one; a killed writer leaves the old file as it was.

Standard library only, so that importing it costs the command line's start nothing.
"""

from __future__ import annotations

import os
import secrets
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def temporary_beside(path: Path) -> Path:
    """A fresh hidden name in ``path``'s folder, ``.NAME.tmp-XXXXXXXX.SUFFIX``: the same file
    system (so the rename is atomic), and the same suffix, for writers that pick their format by
    it (matplotlib, ASE). Not created here, so the file gets the usual permissions (mkstemp's are
    owner-only)."""
    return path.with_name(f".{path.name}.tmp-{secrets.token_hex(4)}{path.suffix}")


def flush_to_disk(path: Path) -> None:
    """fsync ``path``: without it a crash of the machine (not only of the writer) can leave the
    renamed file empty."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path`` for the block to write; when the block ends normally it
    becomes ``path`` (replacing an old file in one step), when it raises it is removed and
    ``path`` stays as it was. Creates ``path``'s folder.

        with atomic_path("model.pt") as temporary:
            torch.save(payload, temporary)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_beside(path)
    try:
        yield temporary
        flush_to_disk(temporary)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    with atomic_path(path) as temporary:
        temporary.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | Path, text: str) -> Path:
    with atomic_path(path) as temporary:
        temporary.write_text(text)
    return Path(path)
