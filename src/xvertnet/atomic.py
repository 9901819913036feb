"""Atomic file output: write to a temporary name beside the target, rename when complete.

A job killed half-way leaves only a ``*.tmp`` file, which neither Snakemake nor a
reader takes for a finished output; ``os.replace`` is atomic on POSIX file systems.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_path(target, *, suffix: str | None = None):
    """Yield a temporary path in the target's folder; rename it to ``target`` on success.

    The temporary file keeps the target's extension (``suffix``) so libraries that
    choose a format by extension (PNG, HDF5) still work. On an exception the
    temporary file is removed and the target is left untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    suffix = target.suffix if suffix is None else suffix
    fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=f".tmp{suffix}", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()

