"""The download stage: fetch, verify, safely unpack a public data set and write its manifest.

* :func:`download_file`: HTTP(S) to ``<name>.part``, redirects followed, resumed with an
  HTTP Range request after an interruption (a ``.part`` that is already complete, answered
  with HTTP 416, is verified as it is), retried with exponential back-off and one log line
  per retry; permanent failures (4xx, a redirect loop, a server that does not speak HTTP)
  fail at once. A body shorter than its ``Content-Length`` is never accepted. The size and
  checksum are verified before anything is unpacked; a file without a published checksum
  is read to its end as an archive instead (:func:`archive_problem`), which catches a
  close-delimited body cut early. A rejected file is deleted, so a rerun downloads it again.
* :func:`safe_extract`: zip and tar archives; absolute paths, ``..``, links pointing outside
  (also through other links), device files, names that are both a file and a folder and
  hard links to missing members are refused; ``.DS_Store``, ``Thumbs.db`` and ``__MACOSX``
  are skipped; everything is unpacked into a temporary folder renamed when complete, which
  records the archive it came from (another archive is unpacked again in its place).
* :func:`build_manifest`: the images of the layout, ids and patient ids from file names, and
  a split deterministic from a seed and by patient (fractions or counts, from the registry).
* Data sets that need registration take a user-supplied archive or folder
  (``datasets[].archive``); without it they fail at once saying where to register.

Every expected failure is a :class:`DownloadError` (or ``DiskFullError``) with a one-line
message naming the file and the reason. ``XVERTNET_DOWNLOAD_BACKOFF`` sets the first
retry wait in seconds (default 1, doubled at each retry).
Only this stage uses the network; everything else runs offline.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import http.client
import json
import logging
import lzma
import os
import re
import shutil
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path, PurePosixPath

import pandas as pd
import yaml

from xvertnet.errors import DiskFullError, XvertnetError
from xvertnet.io.atomic import atomic_dir, disk_full_as_error, disk_full_reason
from xvertnet.io.datasets import write_manifest

log = logging.getLogger(__name__)

REGISTRY_PATH = Path(__file__).with_name("datasets_registry.yaml")
SKIPPED_NAMES = {".DS_Store", "Thumbs.db"}
SKIPPED_FOLDERS = {"__MACOSX"}
CHUNK = 1 << 20
SOURCE_RECORD = ".xvertnet-source.json"  # in an unpacked folder: the archive it came from (path, size, mtime)
REDIRECT_CODES = {301, 302, 303, 307, 308}
READ_ERRORS = (EOFError, zlib.error, zipfile.BadZipFile, tarfile.TarError, gzip.BadGzipFile, lzma.LZMAError)
FILTER_REASONS = {
    tarfile.LinkOutsideDestinationError: "a link that leads outside the destination (through other links)",
    tarfile.OutsideDestinationError: "a path that leads outside the destination (through a link)",
    tarfile.AbsoluteLinkError: "link to an absolute path",
    tarfile.AbsolutePathError: "absolute path",
    tarfile.SpecialFileError: "device or FIFO",
}


class DownloadError(XvertnetError):
    """A download, verification or extraction failed; the message names the file and the reason, on one line."""

    def __init__(self, message):
        super().__init__(" ".join(str(message).split()))


class ArchiveDamagedError(DownloadError):
    """An archive cannot be read to its end: truncated, a bad CRC, or not an archive at all."""


class _LocalWriteError(Exception):
    """Writing the ``.part`` file failed (disk full, permissions): never retried."""

    def __init__(self, error: OSError):
        super().__init__(str(error))
        self.error = error


def _default_backoff() -> float:
    text = os.environ.get("XVERTNET_DOWNLOAD_BACKOFF", "1.0")
    try:
        return float(text)
    except ValueError:
        raise DownloadError(f"XVERTNET_DOWNLOAD_BACKOFF={text!r}: not a number of seconds") from None


def load_registry(path=REGISTRY_PATH) -> dict:
    return yaml.safe_load(Path(path).read_text())


def file_url(spec: dict, dataset: str, base_url: str | None = None) -> str:
    """The file's URL; a base URL (argument, else XVERTNET_BASE_URL_<DATASET>) replaces all before the name."""
    base = base_url or os.environ.get(f"XVERTNET_BASE_URL_{dataset.upper()}")
    return f"{base.rstrip('/')}/{spec['name']}" if base else spec["url"]


def _checksum(spec: dict) -> tuple[str, str] | None:
    for algorithm in ("sha256", "md5"):
        if spec.get(algorithm):
            return algorithm, spec[algorithm].lower()
    return None


def file_digest(path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _failure(error: Exception) -> tuple[str, bool]:
    """What went wrong in one attempt, in a few words, and whether another attempt may succeed."""
    if isinstance(error, urllib.error.HTTPError):
        if error.code in REDIRECT_CODES:  # urllib gives up on a loop or after 10 redirects
            return f"redirect loop, or more than 10 redirects (the last one HTTP {error.code})", False
        permanent = 400 <= error.code < 500 and error.code not in (408, 429)
        return f"HTTP {error.code} {error.reason}", not permanent
    if isinstance(error, urllib.error.URLError):  # connecting failed: refused, unknown host, TLS, timeout
        cause = error.reason
        text = (cause.strerror or str(cause)) if isinstance(cause, OSError) else str(cause)
        return text[:1].lower() + text[1:], isinstance(cause, OSError)
    if isinstance(error, http.client.IncompleteRead):
        return "transfer cut mid-stream (chunked body incomplete)", True
    if isinstance(error, http.client.RemoteDisconnected):
        return "the server closed the connection without answering", True
    if isinstance(error, http.client.BadStatusLine):
        line = str(error.line).strip()
        return f"not an HTTP server (its status line is {line[:60]!r})", False
    if isinstance(error, http.client.HTTPException):
        return f"malformed HTTP answer ({type(error).__name__})", False
    if isinstance(error, TimeoutError):
        return "no data before the timeout", True
    return (error.strerror if isinstance(error, OSError) and error.strerror else str(error)), True


def _range_total(content_range: str | None) -> int | None:
    """The full size in a ``Content-Range`` header (``bytes 0-9/10`` or ``bytes */10``)."""
    found = re.match(r"bytes\s+(?:\*|\d+-\d+)/(\d+)", content_range or "")
    return int(found.group(1)) if found else None


def _fetch_once(url: str, part: Path, *, timeout: float, progress: bool, label: str) -> None:
    """Append the rest of ``url`` to ``part`` (resuming from its size with a Range request)."""
    from tqdm import tqdm

    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(
        url, headers={"User-Agent": "xvertnet-download", **({"Range": f"bytes={have}-"} if have else {})}
    )
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code != 416 or not have:
            raise
        total = _range_total(error.headers.get("Content-Range"))
        error.close()
        if total == have:  # complete already (a run killed while verifying): verify it
            log.info("%s: %s already holds all %d bytes", label, part.name, have)
            return
        log.warning(
            "%s: %s holds %d bytes, the server has %s: downloading from the start",
            label,
            part.name,
            have,
            total if total is not None else "no range past it",
        )
        part.unlink()
        _fetch_once(url, part, timeout=timeout, progress=progress, label=label)
        return
    with response:
        if have and response.status != 206:  # the server ignored the range: start again
            have = 0
        elif have and not response.headers.get("Content-Range", "").startswith(f"bytes {have}-"):
            part.unlink()
            raise ConnectionError(
                f"the server resumed elsewhere than byte {have} ({response.headers.get('Content-Range')})"
            )
        length = response.headers.get("Content-Length", "")
        total = int(length) + have if length.isdigit() else None
        received = have
        try:
            handle = open(part, "ab" if have else "wb")
        except OSError as error:
            raise _LocalWriteError(error) from None
        with (
            handle,
            tqdm(
                total=total,
                initial=have,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=label,
                disable=not progress,
                mininterval=0.5,
            ) as bar,
        ):
            while True:
                try:
                    block, cut = response.read(CHUNK), None
                except http.client.IncompleteRead as error:  # keep what did arrive: the resume starts after it
                    block, cut = error.partial, error
                try:
                    handle.write(block)
                    handle.flush()
                except OSError as error:
                    raise _LocalWriteError(error) from None
                received += len(block)
                bar.update(len(block))
                if cut is not None:
                    raise cut
                if not block:
                    break
    if total is not None and received < total:
        raise ConnectionError(f"connection closed after {received} of the {total} bytes announced")


def download_file(
    url: str,
    dest,
    *,
    size: int | None = None,
    checksum: tuple[str, str] | None = None,
    retries: int = 5,
    backoff: float = 1.0,
    timeout: float = 60.0,
    progress: bool = True,
    validate: Callable[[Path], str | None] | None = None,
) -> Path:
    """Download ``url`` to ``dest`` through ``dest.part``, resuming and retrying; verify, then rename.

    Transient failures (refused or cut connections, 5xx, timeouts) are retried ``retries``
    times, waiting ``backoff`` seconds, then twice as long each time; each retry logs one
    line. Permanent ones (4xx, redirect loops, a server that does not speak HTTP) fail at
    once. ``validate(part)`` returns why the file is unusable, or None (for archives
    without a published checksum: see :func:`archive_problem`).

    Raises
    ------
    DownloadError
        After the last failed attempt (the partial ``.part`` is kept: a rerun resumes), on
        a permanent failure, or when the size, checksum or ``validate`` rejects the file
        (then it is deleted).
    DiskFullError
        The file system is full; the partial file is deleted.
    """
    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    with disk_full_as_error(dest):
        dest.parent.mkdir(parents=True, exist_ok=True)
    attempts, started = retries + 1, time.monotonic()
    for attempt in range(1, attempts + 1):
        try:
            _fetch_once(url, part, timeout=timeout, progress=progress, label=dest.name)
            break
        except _LocalWriteError as failure:
            part.unlink(missing_ok=True)
            reason = disk_full_reason(failure.error)
            if reason:
                raise DiskFullError(
                    dest, reason, f"while downloading {url}; the partial download was deleted"
                ) from None
            raise DownloadError(f"{part}: cannot write it: {failure.error.strerror or failure.error}") from None
        except ValueError as error:  # a malformed URL
            raise DownloadError(f"{dest.name}: cannot download {url!r}: {error}") from None
        except (OSError, http.client.HTTPException) as error:  # URLError, HTTPError, ConnectionError, TimeoutError
            reason, transient = _failure(error)
            if not transient:
                raise DownloadError(f"{dest.name}: {url}: {reason}") from None
            kept = part.stat().st_size if part.exists() else 0
            if attempt == attempts:
                resume = (
                    f"; the {kept} bytes received are kept in {part.name} and a rerun resumes there" if kept else ""
                )
                raise DownloadError(
                    f"{dest.name}: {url}: {reason}; gave up after {attempts} attempts in "
                    f"{time.monotonic() - started:.1f} s{resume}"
                ) from None
            wait = backoff * 2 ** (attempt - 1)
            log.warning(
                "%s: attempt %d of %d failed: %s; retrying in %.3g s%s",
                dest.name,
                attempt,
                attempts,
                reason,
                wait,
                f" (resuming at byte {kept})" if kept else "",
            )
            time.sleep(wait)
    _verify(part, dest, url, size, checksum, validate)
    os.replace(part, dest)
    return dest


def _verify(part: Path, dest: Path, url: str, size, checksum, validate) -> None:
    """Delete ``part`` and fail when its size, checksum or ``validate`` rejects it."""
    actual_size = part.stat().st_size
    problem = None
    if size is not None and actual_size != size:
        problem = f"expected {size} bytes, got {actual_size}"
    elif checksum is not None:
        algorithm, expected = checksum
        actual = file_digest(part, algorithm)
        if actual != expected:
            problem = f"{algorithm} mismatch, expected {expected}, got {actual}"
    elif validate is not None and (reason := validate(part)):
        problem = f"the download from {url} is {reason} and no checksum is published to catch this"
    if problem:
        part.unlink()
        raise DownloadError(f"{dest.name}: {problem}; partial file deleted, a rerun downloads it again")


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


def _split_key(seed: int, patient: str) -> str:
    return hashlib.sha256(f"{seed}:{patient}".encode()).hexdigest()


def assign_splits(patients: pd.Series, split: dict, *, seed: int) -> pd.Series:
    """Split images by patient, deterministically from ``seed``.

    ``{"fractions": [train, val, test]}`` splits all patients; ``{"counts": [train, val,
    test]}`` samples that many images (whole patients, in seeded order); images beyond the
    counts get the split ``""`` (not used).
    """
    order = sorted(patients.unique(), key=lambda patient: _split_key(seed, patient))
    sizes = patients.value_counts()
    result = {}
    if "fractions" in split:
        fractions = split["fractions"]
        total = len(patients)
        bounds = [fractions[0] * total, (fractions[0] + fractions[1]) * total]
        running = 0
        for patient in order:
            result[patient] = "train" if running < bounds[0] else "val" if running < bounds[1] else "test"
            running += sizes[patient]
    else:
        targets = dict(zip(("train", "val", "test"), split["counts"]))
        filled = dict.fromkeys(targets, 0)
        for patient in order:
            name = next((n for n in ("train", "val", "test") if filled[n] < targets[n]), "")
            result[patient] = name
            if name:
                filled[name] += sizes[patient]
    return patients.map(result)


def build_manifest(
    root, entry: dict, dataset: str, out_path, *, seed: int = 0, split: dict | None = None
) -> pd.DataFrame:
    """Manifest of the images under ``root`` matching the registry layout, with seeded patient-level splits."""
    root, out_path = Path(root), Path(out_path)
    pattern = entry["images"] if entry["images"].startswith("**") else f"**/{entry['images']}"
    paths = sorted(root.glob(pattern))  # each archive unpacks into a folder of its own
    if not paths:
        raise DownloadError(f"{root}: no images match '{entry['images']}' (the {dataset} layout)")
    id_pattern = re.compile(entry["image_id"])
    patient_pattern = re.compile(entry["patient_id"]) if entry.get("patient_id") else None
    rows = []
    for path in paths:
        relative = path.relative_to(root).as_posix()
        found = id_pattern.search(relative)
        image_id = (found.group(1) if found else path.stem).replace("/", "_")
        patient = (
            patient_pattern.search(relative).group(1)
            if patient_pattern and patient_pattern.search(relative)
            else image_id
        )
        rows.append(
            {
                "image_id": image_id,
                "path": os.path.relpath(path, out_path.parent),
                "source": dataset,
                "bit_depth": "",
                "patient_id": patient,
            }
        )
    manifest = pd.DataFrame(rows)
    manifest["split"] = assign_splits(manifest["patient_id"], split or entry["split"], seed=seed)
    manifest = manifest[manifest["split"] != ""][["image_id", "path", "source", "bit_depth", "split", "patient_id"]]
    write_manifest(manifest, out_path)
    return manifest


@dataclasses.dataclass
class DownloadOptions:
    registry: str | None = None  # another registry YAML (a mirror's, or a test's)
    base_url: str | None = None
    archive: str | None = None
    seed: int = 0
    retries: int = 5
    backoff: float = dataclasses.field(default_factory=_default_backoff)  # first wait; env XVERTNET_DOWNLOAD_BACKOFF
    progress: bool = True


def _unpack(archive: Path, target: Path) -> None:
    """Unpack ``archive`` into ``target`` unless ``target`` was unpacked from this very file (path, size, mtime)."""
    stat = archive.stat()
    source = {"archive": str(archive.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    if target.exists():
        try:
            previous = json.loads((target / SOURCE_RECORD).read_text())
        except (OSError, ValueError):
            previous = None
        if previous == source:
            return
        if target.is_symlink() or not target.is_dir():
            raise DownloadError(
                f"{target}: in the way of unpacking {archive.name} and not a folder this stage unpacked; move it away"
            )
        log.warning(
            "%s holds what was unpacked from %s: unpacking %s instead",
            target,
            previous.get("archive") if isinstance(previous, dict) else "an unrecorded archive",
            archive,
        )
        shutil.rmtree(target)
    safe_extract(archive, target, record=source)


def _download_and_unpack(spec: dict, name: str, dest: Path, extracted: Path, options: DownloadOptions) -> None:
    """One registry file: download it into ``dest/archives`` (unless there) and unpack it into ``extracted``."""
    archive = dest / "archives" / spec["name"]
    checksum = _checksum(spec)
    if not archive.exists():
        url = file_url(spec, name, options.base_url)
        log.info("downloading %s from %s", spec["name"], url)
        download_file(
            url,
            archive,
            size=spec.get("size"),
            checksum=checksum,
            retries=options.retries,
            backoff=options.backoff,
            progress=options.progress,
            validate=None if checksum else archive_problem,
        )
        if checksum is None:
            log.warning("%s: no published checksum; sha256 %s", spec["name"], file_digest(archive, "sha256"))
    try:
        _unpack(archive, extracted / Path(spec["name"]).name.split(".")[0])
    except ArchiveDamagedError as error:
        if checksum is not None:
            raise
        archive.unlink()  # unverifiable and unreadable: never reuse it
        raise ArchiveDamagedError(f"{error}; deleted {archive}, a rerun downloads it again") from None


def fetch_dataset(
    dataset: str, dest, options: DownloadOptions | None = None, *, registry_name: str | None = None
) -> pd.DataFrame:
    """Download (or take the user's archive), verify, unpack into ``dest/extracted`` and write ``dest/manifest.csv``.

    An unpacked folder records the archive it came from; another archive (a new
    ``--archive``, a new download) is unpacked again in its place.
    """
    options = options or DownloadOptions()
    name = registry_name or dataset
    registry = load_registry(options.registry or REGISTRY_PATH)
    if name not in registry:
        raise DownloadError(f"unknown data set '{name}', the registry has {sorted(registry)}")
    entry = registry[name]
    dest = Path(dest)
    extracted = dest / "extracted"
    if options.archive:
        supplied = Path(options.archive)
        if not supplied.exists():
            raise DownloadError(f"{name}: the archive or folder {supplied} given in datasets[].archive does not exist")
        if supplied.is_dir():
            extracted = supplied
        else:
            _unpack(supplied, extracted)
    elif entry.get("registration"):
        registration = entry["registration"]
        raise DownloadError(
            f"{name} needs registration: {registration['what']} at {registration['url']}, then set "
            f"datasets[].archive in config.yaml to the downloaded archive or folder"
        )
    else:
        if (extracted / SOURCE_RECORD).exists():  # unpacked from a user's archive before: not these files
            log.warning("%s holds what was unpacked from a supplied archive: removing it", extracted)
            shutil.rmtree(extracted)
        for spec in entry["files"]:
            _download_and_unpack(spec, name, dest, extracted, options)
    manifest = build_manifest(extracted, entry, name, dest / "manifest.csv", seed=options.seed)
    log.info("%s: %d images in the manifest (%s)", name, len(manifest), dict(manifest["split"].value_counts()))
    return manifest
