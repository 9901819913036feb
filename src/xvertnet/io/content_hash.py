"""Every output's own sha256, recorded beside it when it is written: ``<file>.sha256``.

A file copied by halves, truncated, or changed on disk after it was written no longer matches the
digest recorded at write time; ``xvertnet verify`` and every stage that reads an HDF5 shard compare
them. The sidecar is in ``sha256sum`` format, so ``sha256sum -c`` reads it too. HDF5 shards carry
one always; the evaluation's tables (CSV, Markdown, HTML, LaTeX) are written with one
(:func:`xvertnet.io.atomic.atomic_path` with ``record_hash``); PNGs need none (every PNG chunk carries
its own CRC, which ``xvertnet verify`` checks).
"""

from __future__ import annotations

import os
from pathlib import Path

from xvertnet.provenance import sha256_file


def content_hash_path(path) -> Path:
    """Where a shard's own sha256 is recorded: ``<shard>.sha256``, in ``sha256sum`` format (``sha256sum -c`` reads it)."""
    return Path(f"{path}.sha256")


def write_content_hash(path) -> str:
    """Record ``path``'s sha256 beside it (atomically: a temporary name in the same folder, then a rename); return it.
    (:mod:`xvertnet.io.atomic` calls this when its output is complete, so it cannot use that module.)"""
    digest = sha256_file(path)
    target = content_hash_path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(f"{digest}  {Path(path).name}\n")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return digest


def recorded_content_hash(path) -> str | None:
    """The sha256 recorded beside ``path`` when it was written, or None (none recorded, or unreadable)."""
    try:
        return content_hash_path(path).read_text().split()[0]
    except (OSError, IndexError):
        return None


def checked_digest(path) -> str:
    """The sha256 of a file a stage is about to read (what its output records as an input), checked against the one
    recorded beside it when it was written (none recorded: not checked): a damaged or half-copied input is one line
    naming it and the command that rebuilds it, before any work."""
    from xvertnet.errors import InputFileError

    digest = sha256_file(path)
    recorded = recorded_content_hash(path)
    if recorded is not None and recorded != digest:
        raise InputFileError(
            path,
            f"its content differs from the sha256 recorded beside it when it was written ({content_hash_path(path).name}):"
            f" damaged or half-copied; rebuild it: snakemake --force {path}",
        )
    return digest
