"""Permissions of what tcwebhook writes: whole orders, so private unless configured otherwise.

Files are created 0600 and folders 0700 whatever the process umask; ``group_readable`` (a
files sink option, for an ERP import user in the service's group) makes them 0640 and 0750.
Modes are set with ``fchmod``/``chmod`` after creation, because ``open``'s mode is only an
upper bound that the umask narrows further but never widens.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from pathlib import Path

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700
GROUP_FILE = 0o640
GROUP_DIR = 0o750


def file_mode(group_readable: bool = False) -> int:
    return GROUP_FILE if group_readable else PRIVATE_FILE


def dir_mode(group_readable: bool = False) -> int:
    return GROUP_DIR if group_readable else PRIVATE_DIR


def make_dirs(path: Path, mode: int = PRIVATE_DIR) -> None:
    """``mkdir -p`` where every folder created here gets ``mode``; existing ones are left alone."""
    missing: list[Path] = []
    current = path
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=mode)
        except FileExistsError:
            continue  # created meanwhile by another writer
        os.chmod(folder, mode)
    if not path.is_dir():
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(path))


def restrict(path: Path, mode: int) -> None:
    """Narrow an existing file or folder of ours to ``mode`` (never widens; others' are skipped)."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return
    if info.st_uid != os.geteuid():
        return
    current = stat.S_IMODE(info.st_mode)
    if current & ~mode:
        os.chmod(path, current & mode)


def open_new(path: Path, mode: int = PRIVATE_FILE) -> int:
    """A new file (it must not exist) opened for writing with exactly ``mode``; returns the fd."""
    return _open_with_mode(path, os.O_EXCL, mode)


def open_replace(path: Path, mode: int = PRIVATE_FILE) -> int:
    """``path`` opened for writing, truncated, with exactly ``mode`` (also when it existed)."""
    return _open_with_mode(path, os.O_TRUNC, mode)


def _open_with_mode(path: Path, flag: int, mode: int) -> int:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | flag | getattr(os, "O_CLOEXEC", 0), mode)
    try:
        os.fchmod(fd, mode)
    except BaseException:
        os.close(fd)
        raise
    return fd


def write_atomic(path: Path, data: bytes, mode: int = PRIVATE_FILE, owner: tuple[int, int] | None = None) -> None:
    """Replace ``path`` atomically with ``data`` (fsynced); the file has ``mode`` from its first byte.

    A reader sees the old content or the new, never half a key. ``owner`` (uid, gid) is given to
    the new file before anything is written to it (mkstemp made it 0600, readable by us alone).
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        if owner is not None and owner != (os.geteuid(), os.getegid()):
            os.fchown(fd, *owner)
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
