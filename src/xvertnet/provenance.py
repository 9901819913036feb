"""Provenance: what every output records about where it came from."""

from __future__ import annotations

import hashlib
import json
import platform
from pathlib import Path

from . import __version__


def sha256_file(path, *, chunk_size: int = 1 << 20) -> str:
    """Return the hex SHA-256 of a file, read in chunks (constant memory)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk_size), b""):
            digest.update(block)
    return digest.hexdigest()


def software_record() -> dict:
    """Package and interpreter versions, stored with every output."""
    import h5py
    import numpy
    import scipy

    return {
        "xvertnet": __version__,
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "h5py": h5py.__version__,
    }


def to_json(record: dict) -> str:
    """Serialise a provenance record (paths and numpy scalars included) to JSON."""

    def default(value):
        if isinstance(value, Path):
            return str(value)
        if hasattr(value, "item"):
            return value.item()
        if hasattr(value, "tolist"):
            return value.tolist()
        raise TypeError(f"cannot serialise {type(value).__name__} in a provenance record")

    return json.dumps(record, sort_keys=True, default=default)


def code_fingerprint(*modules: str) -> str:
    """sha256 (16 hex) of the source of the named modules or packages of this project, without importing them.

    Rules pass it as a parameter, so that editing a stage's code in the package reruns that
    stage (Snakemake's own code trigger sees only the rule's shell command).
    """
    import importlib.util

    digest = hashlib.sha256()
    for name in modules:
        spec = importlib.util.find_spec(name if name.startswith("xvertnet") else f"xvertnet.{name}")
        if spec is None or spec.origin is None:
            raise ValueError(f"no module named {name}")
        origin = Path(spec.origin)
        files = sorted(origin.parent.rglob("*.py")) if origin.name == "__init__.py" and spec.submodule_search_locations else [origin]
        for path in files:
            digest.update(path.relative_to(origin.parent).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]
