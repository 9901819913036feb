"""Atomic file output: write to a temporary name beside the target, rename when complete.

A job killed half-way leaves only a ``*.tmp`` file, which neither Snakemake nor a
reader takes for a finished output; ``os.replace`` is atomic on POSIX file systems.
The finished file or folder gets the mode the umask gives a new one (0644 and 0755 under
umask 022), not the private 0600/0700 of a temporary, so a group on shared storage can
read results. A full disk (or quota) raises :class:`~xvertnet.errors.DiskFullError`
naming the target, after the temporary has been removed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from pathlib import Path

from xvertnet.errors import DiskFullError

_FULL = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded"}


def current_umask() -> int:
    """The process's umask, read without changing it where Linux shows it (``/proc/self/status``)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere: set and restore (not thread-safe, hence the fallback only)
    os.umask(mask)
    return mask


def disk_full_reason(error: BaseException) -> str | None:
    """ "no space left on device" or "disk quota exceeded" when ``error`` (or what caused it) says so, else None."""
    seen = 0
    while error is not None and seen < 5:
        if isinstance(error, OSError) and error.errno in _FULL:
            return _FULL[error.errno]
        text = str(error).lower()
        for reason in _FULL.values():
            if reason in text:  # libraries (h5py, PIL) that re-raise without errno
                return reason
        error, seen = error.__cause__ or error.__context__, seen + 1
    return None


@contextlib.contextmanager
def disk_full_as_error(target, detail: str = ""):
    """Turn an out-of-space ``OSError`` raised inside the block into a one-line :class:`DiskFullError` on ``target``."""
    try:
        yield
    except OSError as error:
        reason = disk_full_reason(error)
        if reason is None:
            raise
        raise DiskFullError(target, reason, detail) from error


@contextlib.contextmanager
def atomic_path(target, *, suffix: str | None = None, record_hash: bool = False):
    """Yield a temporary path in the target's folder; rename it to ``target`` on success.

    The temporary file keeps the target's extension (``suffix``) so libraries that
    choose a format by extension (PNG, HDF5) still work. On an exception the
    temporary file is removed and the target is left untouched; running out of space
    raises :class:`DiskFullError`. The target ends with mode ``0o666 & ~umask``.
    With ``record_hash`` the target's sha256 is written beside it (:mod:`xvertnet.io.content_hash`);
    the previous one is removed first, so a digest never describes another version of the file.
    """
    target = Path(target)
    suffix = target.suffix if suffix is None else suffix
    tmp = None
    try:
        with disk_full_as_error(target):
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=f".tmp{suffix}", dir=target.parent)
            os.close(fd)
            tmp = Path(name)
            yield tmp
            os.chmod(tmp, 0o666 & ~current_umask())
            if record_hash:
                from xvertnet.io.content_hash import content_hash_path

                content_hash_path(target).unlink(missing_ok=True)
            os.replace(tmp, target)
            if record_hash:
                from xvertnet.io.content_hash import write_content_hash

                write_content_hash(target)
    finally:
        if tmp is not None and tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_dir(target, *, detail: str = ""):
    """Yield an empty temporary folder beside ``target`` (which must not exist); rename it to ``target`` on success.

    On an exception the temporary folder and everything in it are removed. The folder ends
    with mode ``0o777 & ~umask``; running out of space raises :class:`DiskFullError`
    (``detail`` is appended to its message).
    """
    target = Path(target)
    staging = None
    try:
        with disk_full_as_error(target, detail):
            target.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
            yield staging
            os.chmod(staging, 0o777 & ~current_umask())
            os.rename(staging, target)
    finally:
        if staging is not None and staging.exists():
            shutil.rmtree(staging)
