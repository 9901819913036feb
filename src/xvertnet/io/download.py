"""The download stage: fetch, verify, safely unpack a public data set and write its manifest.

* :func:`~xvertnet.io.http_download.download_file` (:mod:`xvertnet.io.http_download`): HTTP(S) to ``<name>.part``, redirects followed, resumed with an
  HTTP Range request after an interruption (a ``.part`` that is already complete, answered
  with HTTP 416, is verified as it is), retried with exponential back-off and one log line
  per retry; permanent failures (4xx, a redirect loop, a server that does not speak HTTP)
  fail at once. A body shorter than its ``Content-Length`` is never accepted. The size and
  checksum are verified before anything is unpacked; a file without a published checksum
  is read to its end as an archive instead (:func:`archive_problem`), which catches a
  close-delimited body cut early. A rejected file is deleted, so a rerun downloads it again.
* :func:`~xvertnet.io.archives.safe_extract` (:mod:`xvertnet.io.archives`): zip and tar archives; absolute paths, ``..``, links pointing outside
  (also through other links), device files, names that are both a file and a folder and
  hard links to missing members are refused; ``.DS_Store``, ``Thumbs.db`` and ``__MACOSX``
  are skipped; everything is unpacked into a temporary folder renamed when complete, which
  records the archive it came from (another archive is unpacked again in its place).
* :func:`~xvertnet.io.dataset_splits.build_manifest` (:mod:`xvertnet.io.dataset_splits`): the images of the layout, ids and patient ids from file names, and
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
import json
import logging
import shutil
from pathlib import Path

import pandas as pd
import yaml

from xvertnet.io.archives import SOURCE_RECORD, ArchiveDamagedError, archive_problem, safe_extract
from xvertnet.io.dataset_splits import build_manifest
from xvertnet.io.http_download import (
    DownloadError,
    RetryPolicy,
    default_backoff,
    download_file,
    file_digest,
    file_url,
    published_checksum,
)

log = logging.getLogger(__name__)

REGISTRY_PATH = Path(__file__).with_name("datasets_registry.yaml")


def load_registry(path=REGISTRY_PATH) -> dict:
    return yaml.safe_load(Path(path).read_text())


@dataclasses.dataclass
class DownloadOptions:
    registry: str | None = None  # another registry YAML (a mirror's, or a test's)
    base_url: str | None = None
    archive: str | None = None
    seed: int = 0
    retries: int = 5
    backoff: float = dataclasses.field(default_factory=default_backoff)  # first wait; env XVERTNET_DOWNLOAD_BACKOFF
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
    checksum = published_checksum(spec)
    if not archive.exists():
        url = file_url(spec, name, options.base_url)
        log.info("downloading %s from %s", spec["name"], url)
        download_file(
            url,
            archive,
            size=spec.get("size"),
            checksum=checksum,
            validate=None if checksum else archive_problem,
            policy=RetryPolicy(retries=options.retries, backoff=options.backoff, progress=options.progress),
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
