"""One file over HTTP(S): resumed from where a cut download stopped (Range requests), retried with backoff on
transient failures, verified (size, checksum, or a validator) and renamed into place only when whole."""

from __future__ import annotations

import dataclasses
import hashlib
import http.client
import logging
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from xvertnet.errors import DiskFullError, XvertnetError
from xvertnet.io.atomic import disk_full_as_error, disk_full_reason

log = logging.getLogger(__name__)


CHUNK = 1 << 20

REDIRECT_CODES = {301, 302, 303, 307, 308}


class DownloadError(XvertnetError):
    """A download, verification or extraction failed; the message names the file and the reason, on one line."""

    def __init__(self, message):
        super().__init__(" ".join(str(message).split()))


class _LocalWriteError(Exception):
    """Writing the ``.part`` file failed (disk full, permissions): never retried."""

    def __init__(self, error: OSError):
        super().__init__(str(error))
        self.error = error


def default_backoff() -> float:
    text = os.environ.get("XVERTNET_DOWNLOAD_BACKOFF", "1.0")
    try:
        return float(text)
    except ValueError:
        raise DownloadError(f"XVERTNET_DOWNLOAD_BACKOFF={text!r}: not a number of seconds") from None


def file_url(spec: dict, dataset: str, base_url: str | None = None) -> str:
    """The file's URL; a base URL (argument, else XVERTNET_BASE_URL_<DATASET>) replaces all before the name."""
    base = base_url or os.environ.get(f"XVERTNET_BASE_URL_{dataset.upper()}")
    return f"{base.rstrip('/')}/{spec['name']}" if base else spec["url"]


def published_checksum(spec: dict) -> tuple[str, str] | None:
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


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """How hard :func:`download_file` tries: ``retries`` more attempts after a transient failure, the first
    after ``backoff`` seconds and each next one twice as long; ``timeout`` seconds per read; a progress bar."""

    retries: int = 5
    backoff: float = 1.0
    timeout: float = 60.0
    progress: bool = True


def download_file(
    url: str,
    dest,
    *,
    size: int | None = None,
    checksum: tuple[str, str] | None = None,
    validate: Callable[[Path], str | None] | None = None,
    policy: RetryPolicy = RetryPolicy(),
) -> Path:
    """Download ``url`` to ``dest`` through ``dest.part``, resuming and retrying; verify, then rename.

    Transient failures (refused or cut connections, 5xx, timeouts) are retried ``policy.retries``
    times, waiting ``policy.backoff`` seconds, then twice as long each time; each retry logs one
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
    retries, backoff, timeout, progress = policy.retries, policy.backoff, policy.timeout, policy.progress
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
