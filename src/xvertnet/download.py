"""The download stage: fetch, verify, safely unpack a public data set and write its manifest.

* :func:`download_file`: HTTP(S) to ``<name>.part``, redirects followed, resumed with an
  HTTP Range request after an interruption, retried with exponential back-off; the size and
  checksum are verified before anything is unpacked; a mismatch deletes the partial file and
  fails naming the file, the expected and the actual digest. A progress bar per file.
* :func:`safe_extract`: zip and tar archives; absolute paths, ``..``, links pointing outside
  and device files are refused; ``.DS_Store``, ``Thumbs.db`` and ``__MACOSX`` are skipped;
  everything is unpacked into a temporary folder renamed when complete.
* :func:`build_manifest`: the images of the layout, ids and patient ids from file names, and
  a split deterministic from a seed and by patient (fractions or counts, from the registry).
* Data sets that need registration take a user-supplied archive or folder
  (``datasets[].archive``); without it they fail at once saying where to register.

Only this stage uses the network; everything else runs offline.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import re
import shutil
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

import pandas as pd
import yaml

from .datasets import write_manifest
from .errors import XvertnetError

log = logging.getLogger(__name__)

REGISTRY_PATH = Path(__file__).with_name("datasets_registry.yaml")
SKIPPED_NAMES = {".DS_Store", "Thumbs.db"}
SKIPPED_FOLDERS = {"__MACOSX"}
CHUNK = 1 << 20


class DownloadError(XvertnetError):
    """A download, verification or extraction failed; the message names the file and the reason."""


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


def _fetch_once(url: str, part: Path, *, timeout: float, progress: bool, label: str) -> None:
    """Append the rest of ``url`` to ``part`` (resuming from its size with a Range request)."""
    from tqdm import tqdm

    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "xvertnet-download", **({"Range": f"bytes={have}-"} if have else {})})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        if have and response.status != 206:  # the server ignored the range: start again
            have = 0
        total = response.headers.get("Content-Length")
        total = int(total) + have if total is not None else None
        mode = "ab" if have else "wb"
        with open(part, mode) as handle, tqdm(total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024,
                                              desc=label, disable=not progress, mininterval=0.5) as bar:
            while True:
                block = response.read(CHUNK)
                if not block:
                    break
                handle.write(block)
                bar.update(len(block))
        if total is not None and part.stat().st_size < total:
            raise ConnectionError(f"connection closed at {part.stat().st_size} of {total} bytes")


def download_file(url: str, dest, *, size: int | None = None, checksum: tuple[str, str] | None = None, retries: int = 5,
                  backoff: float = 1.0, timeout: float = 60.0, progress: bool = True) -> Path:
    """Download ``url`` to ``dest`` through ``dest.part``, resuming and retrying; verify, then rename.

    Raises
    ------
    DownloadError
        After ``retries`` failed attempts, or when the size or checksum differs (the
        partial file is then deleted).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    for attempt in range(retries + 1):
        try:
            _fetch_once(url, part, timeout=timeout, progress=progress, label=dest.name)
            break
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as error:
            if isinstance(error, urllib.error.HTTPError) and error.code in (401, 403, 404, 410):
                raise DownloadError(f"{dest.name}: {url} answered HTTP {error.code} {error.reason}") from None
            if attempt == retries:
                raise DownloadError(f"{dest.name}: failed after {retries + 1} attempts: {error}") from None
            wait = backoff * 2**attempt
            log.warning("%s: %s; retrying in %.1f s (resume at %d bytes)", dest.name, error, wait,
                        part.stat().st_size if part.exists() else 0)
            time.sleep(wait)
    actual_size = part.stat().st_size
    if size is not None and actual_size != size:
        part.unlink()
        raise DownloadError(f"{dest.name}: expected {size} bytes, got {actual_size}; partial file deleted")
    if checksum is not None:
        algorithm, expected = checksum
        actual = file_digest(part, algorithm)
        if actual != expected:
            part.unlink()
            raise DownloadError(f"{dest.name}: {algorithm} mismatch, expected {expected}, got {actual}; partial file deleted")
    os.replace(part, dest)
    return dest


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


def _skipped(name: str) -> bool:
    parts = PurePosixPath(name).parts
    return bool(parts) and (parts[-1] in SKIPPED_NAMES or any(p in SKIPPED_FOLDERS for p in parts))


def safe_extract(archive, dest) -> Path:
    """Unpack a zip or tar archive into ``dest`` (created; must not exist), refusing unsafe members."""
    archive, dest = Path(archive), Path(dest)
    if dest.exists():
        raise DownloadError(f"{dest}: already exists; remove it to unpack {archive.name} again")
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zipped:
                for info in zipped.infolist():
                    problem = _member_problem(info.filename)
                    if problem:
                        raise DownloadError(f"{archive.name}: refused member '{info.filename}': {problem}")
                    mode = info.external_attr >> 16
                    if mode and (mode & 0o170000) == 0o120000:
                        raise DownloadError(f"{archive.name}: refused member '{info.filename}': symbolic link in a zip")
                for info in zipped.infolist():
                    if not _skipped(info.filename):
                        zipped.extract(info, staging)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as tarred:
                members = tarred.getmembers()
                for member in members:
                    if member.ischr() or member.isblk() or member.isfifo() or member.isdev():
                        raise DownloadError(f"{archive.name}: refused member '{member.name}': device or FIFO")
                    link = member.linkname if (member.issym() or member.islnk()) else None
                    problem = _member_problem(member.name, link)
                    if problem:
                        raise DownloadError(f"{archive.name}: refused member '{member.name}': {problem}")
                tarred.extractall(staging, members=[m for m in members if not _skipped(m.name)], filter="data")
        else:
            raise DownloadError(f"{archive.name}: not a zip or tar archive")
        os.replace(staging, dest)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
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


def build_manifest(root, entry: dict, dataset: str, out_path, *, seed: int = 0, split: dict | None = None) -> pd.DataFrame:
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
        patient = patient_pattern.search(relative).group(1) if patient_pattern and patient_pattern.search(relative) else image_id
        rows.append({"image_id": image_id, "path": os.path.relpath(path, out_path.parent), "source": dataset,
                     "bit_depth": "", "patient_id": patient})
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
    backoff: float = 1.0
    progress: bool = True


def fetch_dataset(dataset: str, dest, options: DownloadOptions | None = None, *, registry_name: str | None = None) -> pd.DataFrame:
    """Download (or take the user's archive), verify, unpack into ``dest/extracted`` and write ``dest/manifest.csv``."""
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
        elif not extracted.exists():
            safe_extract(supplied, extracted)
    elif entry.get("registration"):
        registration = entry["registration"]
        raise DownloadError(f"{name} needs registration: {registration['what']} at {registration['url']}, then set "
                            f"datasets[].archive in config.yaml to the downloaded archive or folder")
    else:
        for spec in entry["files"]:
            archive = dest / "archives" / spec["name"]
            if not archive.exists():
                url = file_url(spec, name, options.base_url)
                log.info("downloading %s from %s", spec["name"], url)
                download_file(url, archive, size=spec.get("size"), checksum=_checksum(spec), retries=options.retries,
                              backoff=options.backoff, progress=options.progress)
                if _checksum(spec) is None:
                    log.warning("%s: no published checksum; sha256 %s", spec["name"], file_digest(archive, "sha256"))
            target = extracted / Path(spec["name"]).name.split(".")[0]
            if not target.exists():
                safe_extract(archive, target)
    manifest = build_manifest(extracted, entry, name, dest / "manifest.csv", seed=options.seed)
    log.info("%s: %d images in the manifest (%s)", name, len(manifest), dict(manifest["split"].value_counts()))
    return manifest
