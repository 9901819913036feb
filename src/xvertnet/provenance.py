"""Provenance: what every output records about where it came from."""

from __future__ import annotations

import functools
import hashlib
import json
import platform
from pathlib import Path

from xvertnet import __version__


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


PACKAGE_DIR = Path(__file__).resolve().parent


def cpu_kernel_level() -> str:
    """The vector instruction set PyTorch's CPU kernels run with here, as `` (AVX512)``, `` (AVX2)`` or ``""``.

    Learned results move with it: the same seed trained with AVX-512 and with AVX2 kernels sums in another order
    and ends at other weights, so a table's machine line names it. Read from ``/proc/cpuinfo`` by PyTorch's own
    rule (AVX512 needs F, BW, VL and DQ; AVX2 needs FMA too) without importing torch, lowered by
    ``ATEN_CPU_CAPABILITY`` as PyTorch is (``default`` or ``avx2``; other values, upper case too, it ignores);
    empty on other systems and other architectures."""
    import os

    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""
    flags = set(next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), []))
    levels = ["DEFAULT", "AVX2", "AVX512"]
    asked = {"default": "DEFAULT", "avx2": "AVX2", "avx512": "AVX512"}  # PyTorch reads these, lower case only
    if {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= flags:
        level = "AVX512"
    elif {"avx2", "fma"} <= flags:
        level = "AVX2"
    else:
        return ""
    chosen = asked.get(os.environ.get("ATEN_CPU_CAPABILITY", ""))
    if chosen and levels.index(chosen) < levels.index(level):
        level = chosen
    return f" ({level})"


def produced_by(device: str | None = None) -> dict:
    """The commit (when run from a git checkout; ``+changes`` when tracked files differ from it) and the machine a
    result came from, and the torch ``device`` it ran on when the caller names one."""
    import os
    import subprocess

    def git(*arguments) -> str:
        try:
            found = subprocess.run(
                ["git", *arguments], capture_output=True, text=True, timeout=10, cwd=PACKAGE_DIR, check=False
            )
        except (OSError, subprocess.SubprocessError):
            return ""
        return found.stdout.strip() if found.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD")
    if commit and git("status", "--porcelain", "--untracked-files=no"):
        commit += "+changes"
    machine = f"{platform.machine()}{cpu_kernel_level()}, {os.cpu_count()} CPU cores"
    source = {"commit": commit or "unknown", "machine": machine}
    return source if device is None else {**source, "device": device}


def made_by(command: str, device: str | None = None) -> str:
    """The first line of a result table: the command, commit and machine that made it (docs copy it verbatim)."""
    return made_by_line(command, produced_by(device))


def made_by_line(command: str, source: dict) -> str:
    """:func:`made_by`'s line for a result made earlier, from its recorded :func:`produced_by` (``source``)."""
    where = source.get("machine", "?") + (f" ({source['device']})" if source.get("device") else "")
    return f"Made by `{command}` at commit {source.get('commit', 'unknown')} on {where}."


def _module_file(name: str) -> Path | None:
    """The source file of module ``xvertnet.a.b`` (a package's ``__init__.py``), or None outside the package."""
    parts = name.split(".")
    if parts[0] != "xvertnet":
        return None
    base = PACKAGE_DIR.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE_DIR).with_suffix("")
    parts = ["xvertnet", *relative.parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(module: str) -> list[Path]:
    """Source files of ``module`` and every project module it imports, directly or not, at any depth.

    Read from the source (``import`` statements anywhere, functions included), never by
    importing. A package whose ``__init__`` imports its modules by name at run time
    (``importlib.import_module``, the registry of :mod:`xvertnet.methods`) counts with every
    module in it. Each file is parsed once per process (planning asks for every stage's modules).
    """
    start = _module_file(module if module.startswith("xvertnet") else f"xvertnet.{module}")
    if start is None:
        raise ValueError(f"no module named {module}")
    seen: set[Path] = set()
    todo = [start]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        todo += [found for found in _direct_imports(path) if found not in seen]
    return sorted(seen)


@functools.cache
def _direct_imports(path: Path) -> tuple[Path, ...]:
    """The project modules one source file imports (module docstring of :func:`imported_modules`)."""
    import ast

    source = path.read_text()
    found = []
    if path.name == "__init__.py" and "importlib.import_module" in source:
        found += sorted(path.parent.rglob("*.py"))
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(source, filename=str(path))):
        targets = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            targets = [origin] + [f"{origin}.{alias.name}" for alias in node.names]
        found += [module for module in map(_module_file, targets) if module is not None]
    return tuple(found)


@functools.cache
def _source_digest(path: Path) -> bytes:
    return hashlib.sha256(path.read_bytes()).digest()


def code_fingerprint(stage: str) -> str:
    """sha256 (16 hex) of the source of a stage module and every project module it imports.

    Rules pass it as a parameter, so that editing any code a stage runs reruns that stage
    (Snakemake's own code trigger sees only the rule's shell command). ``stage`` is a rule
    name: :mod:`xvertnet.stages.<stage>`.
    """
    digest = hashlib.sha256()
    for path in imported_modules(f"xvertnet.stages.{stage}"):
        digest.update(path.relative_to(PACKAGE_DIR).as_posix().encode())
        digest.update(_source_digest(path))
    return digest.hexdigest()[:16]
