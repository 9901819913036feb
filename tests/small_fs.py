"""A small tmpfs mounted for a test (root only), to run stages out of disk space for real."""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path

import pytest


@contextlib.contextmanager
def small_filesystem(folder: Path, size: str = "1m"):
    """Mount a ``size`` tmpfs on ``folder`` (created) for the block; skip the test, saying why, where that is impossible."""
    if os.geteuid() != 0:
        pytest.skip("a disk-full test needs root to mount a small tmpfs")
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip() or mounted.returncode}")
    try:
        yield folder
    finally:
        if subprocess.run(["umount", str(folder)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def fill(folder: Path) -> Path:
    """Fill the file system of ``folder`` up to its last block with one file; its path."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as handle:
        with contextlib.suppress(OSError):
            while True:
                handle.write(b"\0" * 4096)
    return filler
