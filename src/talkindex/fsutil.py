"""Durable file writes: write a temp file, fsync it, rename, fsync the directory.

The README promises that a power loss leaves the old file or the new one, never half of one; that
needs the data and the rename both on disk before the next commit point relies on them.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path


def disk_full(e: BaseException) -> bool:
    """ENOSPC, as an OSError or inside a DuckDB error's text."""
    if isinstance(e, OSError):
        return e.errno in (errno.ENOSPC, errno.EDQUOT)
    text = str(e)
    return "No space left on device" in text or "Disk quota exceeded" in text


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def replace_durably(tmp: Path, dst: Path) -> None:
    """Rename a finished temp file over `dst` with the data and the rename on disk."""
    fsync_file(tmp)
    os.replace(tmp, dst)
    fsync_dir(Path(dst).parent)


def open_new(path: Path, mode: str = "wb"):
    """`path` opened for writing as a new regular file: whatever was there (a symlink planted in the
    home, a leftover temp file) is unlinked first, and O_EXCL|O_NOFOLLOW makes sure no link is followed."""
    path = Path(path)
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    return os.fdopen(fd, mode)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open_new(tmp) as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:  # a full disk must not leave half a temp file behind
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_write_text(path: Path, text: str) -> None:
    """Write-then-rename: a crash leaves the old file or the new one, never half of one."""
    atomic_write_bytes(path, text.encode("utf-8"))
