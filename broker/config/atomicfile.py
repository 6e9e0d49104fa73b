"""Replace a file so that readers see the old text or the new, never half of either; one editor at a time.

Why one place: ``broker config`` rewrites the node config and the dev secrets
file, and a crash or a full disk in the middle of either must not leave a
truncated config (the node would not start) or lose secrets; two edits run at
once (two operators, a script) must both land, not the last writer's alone.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

#: The mode of a new file when the caller keeps the existing one (a config holds no secrets).
NEW_FILE_MODE = 0o644


def write_text(path: Path, text: str, mode: int | None = None) -> None:
    """Replace ``path`` with ``text``: a temporary file beside it, fsync, rename, fsync the directory.

    ``mode`` sets the permission bits; None keeps those of the existing file
    (:data:`NEW_FILE_MODE` for a new one). The temporary file is removed if
    anything fails, and ``path`` is then untouched.
    """
    if mode is None:
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except FileNotFoundError:
            mode = NEW_FILE_MODE
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


@contextlib.contextmanager
def edit_lock(directory: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``directory`` while its files are read, edited and replaced.

    The lock is ``flock`` on the directory itself, so no lock file is left
    behind; it is released when the block ends or the process dies.
    """
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock
