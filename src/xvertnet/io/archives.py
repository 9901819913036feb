"""Unpacking downloaded archives safely: members that would escape the target (absolute paths, ``..``, links),
device files and damaged or truncated archives are refused with a one-line reason; unpacked into a staging
folder and renamed into place."""

from __future__ import annotations

import gzip
import json
import lzma
import os
import re
import tarfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from xvertnet.errors import DiskFullError, XvertnetError
from xvertnet.io.atomic import atomic_dir, disk_full_reason
from xvertnet.io.http_download import CHUNK, DownloadError

SKIPPED_NAMES = {".DS_Store", "Thumbs.db"}

SKIPPED_FOLDERS = {"__MACOSX"}

SOURCE_RECORD = ".xvertnet-source.json"  # in an unpacked folder: the archive it came from (path, size, mtime)

READ_ERRORS = (EOFError, zlib.error, zipfile.BadZipFile, tarfile.TarError, gzip.BadGzipFile, lzma.LZMAError)

FILTER_REASONS = {
    tarfile.LinkOutsideDestinationError: "a link that leads outside the destination (through other links)",
    tarfile.OutsideDestinationError: "a path that leads outside the destination (through a link)",
    tarfile.AbsoluteLinkError: "link to an absolute path",
    tarfile.AbsolutePathError: "absolute path",
    tarfile.SpecialFileError: "device or FIFO",
}


class ArchiveDamagedError(DownloadError):
    """An archive cannot be read to its end: truncated, a bad CRC, or not an archive at all."""


def _damage(error: Exception) -> str:
    """A damaged archive's reason in a few words."""
    if isinstance(error, EOFError) or "unexpected end of data" in str(error):
        return "its data ends early (truncated)"
    return " ".join(str(error).split()) or type(error).__name__


def archive_problem(path) -> str | None:
    """Why ``path`` is not a complete zip or tar archive (read to its end, CRCs checked), or None."""
    path = Path(path)
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zipped:
                bad = zipped.testzip()
            return f"a damaged zip (member '{bad}' fails its CRC check)" if bad else None
        if not tarfile.is_tarfile(path):
            return "not a complete zip or tar archive (truncated, or another kind of file)"
        with tarfile.open(path) as tarred:
            for member in tarred:
                if member.isfile():
                    with tarred.extractfile(member) as data:
                        while data.read(CHUNK):
                            pass
            while tarred.fileobj.read(CHUNK):  # the rest of a compressed stream: its length and CRC
                pass
    except READ_ERRORS as error:
        return f"a damaged archive ({_damage(error)})"
    return None


def _member_problem(name: str, link_target: str | None = None) -> str | None:
    """Why an archive member may not be extracted, or None."""
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or re.match(r"^[A-Za-z]:", name):
        return "absolute path"
    if ".." in path.parts:
        return "path with '..'"
    if link_target is not None:
        target = PurePosixPath(link_target.replace("\\", "/"))
        if target.is_absolute() or os.path.normpath(str(path.parent / target)).startswith(".."):
            return f"link pointing outside ({link_target})"
    return None


def _layout_problem(entries) -> tuple[str, str] | None:
    """``(member, reason)`` for the first of ``(name, kind, link)`` entries that clashes with an earlier one.

    A name that is a file (or link) and also a folder, and a hard link to a member that is
    not a file before it, cannot be unpacked into a clean tree.
    """
    kinds: dict[str, str] = {}
    for name, kind, link in entries:
        parts = PurePosixPath(name.replace("\\", "/")).parts
        for depth in range(1, len(parts)):
            prefix = "/".join(parts[:depth])
            if kinds.setdefault(prefix, "folder") != "folder":
                return name, f"'{prefix}' is a {kinds[prefix]} and also a folder in the archive"
        path = "/".join(parts)
        previous = kinds.get(path)
        if previous not in (None, kind) and {previous, kind} != {"file", "hard link"}:
            return name, f"'{path}' is both a {previous} and a {kind} in the archive"
        if kind == "hard link" and kinds.get("/".join(PurePosixPath(link).parts)) not in ("file", "hard link"):
            return name, f"hard link to '{link}', which is not a file earlier in the archive"
        kinds[path] = kind
    return None


def _skipped(name: str) -> bool:
    parts = PurePosixPath(name).parts
    return bool(parts) and (parts[-1] in SKIPPED_NAMES or any(p in SKIPPED_FOLDERS for p in parts))


def _refuse(archive: Path, entries, problems) -> None:
    """Raise for the first ``(name, problem)`` in ``problems``, then for a clash in the layout of ``entries``."""
    for name, problem in problems:
        if problem:
            raise DownloadError(f"{archive.name}: refused member '{name}': {problem}")
    clash = _layout_problem(entries)
    if clash:
        raise DownloadError(f"{archive.name}: refused member '{clash[0]}': {clash[1]}")


def _zip_member_problem(info: zipfile.ZipInfo) -> str | None:
    if ((info.external_attr >> 16) & 0o170000) == 0o120000:
        return "symbolic link in a zip"
    return _member_problem(info.filename)


def _tar_member_problem(member: tarfile.TarInfo) -> str | None:
    if member.ischr() or member.isblk() or member.isfifo() or member.isdev():
        return "device or FIFO"
    return _member_problem(member.name, member.linkname if (member.issym() or member.islnk()) else None)


def _unpack_zip(archive: Path, staging: Path) -> None:
    with zipfile.ZipFile(archive) as zipped:
        infos = zipped.infolist()
        kept = [info for info in infos if not _skipped(info.filename)]
        _refuse(
            archive,
            [(info.filename, "folder" if info.is_dir() else "file", None) for info in kept],
            ((info.filename, _zip_member_problem(info)) for info in infos),
        )
        for info in kept:
            zipped.extract(info, staging)


def _tar_kind(member: tarfile.TarInfo) -> str:
    return "folder" if member.isdir() else "link" if member.issym() else "hard link" if member.islnk() else "file"


def _unpack_tar(archive: Path, staging: Path) -> None:
    with tarfile.open(archive) as tarred:
        members = tarred.getmembers()
        kept = [member for member in members if not _skipped(member.name)]
        _refuse(
            archive,
            [(m.name, _tar_kind(m), m.linkname) for m in kept],
            ((m.name, _tar_member_problem(m)) for m in members),
        )
        tarred.extractall(staging, members=kept, filter="data")


def _unpack_error(archive: Path, dest: Path, staging: Path, error: Exception) -> Exception:
    """The one-line error for a failed unpacking (``error`` itself when it is not an expected one)."""
    if isinstance(error, XvertnetError):
        return error
    if isinstance(error, tarfile.FilterError):
        reason = FILTER_REASONS.get(type(error), "refused by tarfile's data filter")
        return DownloadError(f"{archive.name}: refused member '{error.tarinfo.name}': {reason}")
    reason = disk_full_reason(error)
    if reason:
        return DiskFullError(dest, reason, f"while unpacking {archive.name}; nothing was unpacked")
    if isinstance(error, READ_ERRORS):
        return ArchiveDamagedError(f"{archive.name}: damaged archive: {_damage(error)}")
    if isinstance(error, OSError):
        member = os.path.relpath(error.filename, staging) if error.filename else "a member"
        return DownloadError(f"{archive.name}: cannot unpack '{member}': {error.strerror or error}")
    return error


def safe_extract(archive, dest, *, record: dict | None = None) -> Path:
    """Unpack a zip or tar archive into ``dest`` (created; must not exist), refusing unsafe members.

    Everything is unpacked into a temporary folder renamed to ``dest`` when complete (mode
    from the umask); ``record`` is written into it as ``.xvertnet-source.json`` first.
    """
    archive, dest = Path(archive), Path(dest)
    if dest.exists():
        raise DownloadError(f"{dest}: already exists; remove it to unpack {archive.name} again")
    try:
        kind = "zip" if zipfile.is_zipfile(archive) else "tar" if tarfile.is_tarfile(archive) else None
    except READ_ERRORS as error:
        raise ArchiveDamagedError(f"{archive.name}: damaged archive: {_damage(error)}") from None
    except OSError as error:
        raise DownloadError(f"{archive}: cannot read it: {error.strerror or error}") from None
    if kind is None:
        raise ArchiveDamagedError(f"{archive.name}: not a zip or tar archive (or truncated)")
    with atomic_dir(dest, detail=f"while unpacking {archive.name}; nothing was unpacked") as staging:
        try:
            (_unpack_zip if kind == "zip" else _unpack_tar)(archive, staging)
            if record is not None:
                (staging / SOURCE_RECORD).write_text(json.dumps(record, indent=1) + "\n")
        except Exception as error:
            converted = _unpack_error(archive, dest, staging, error)
            if converted is error:
                raise
            raise converted from None
    return dest
