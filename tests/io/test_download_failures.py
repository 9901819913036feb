"""`xvertnet download` against a misbehaving server on 127.0.0.1 and a corpus of broken archives.

Every case runs the real command line (``xvertnet.cli.main``) and checks the one-line error,
the exit code, that nothing was written outside the destination and that no partial output
(an archive, an unpacked folder, a manifest, a temporary) is left where a rerun would take it
for finished. Archives are built here, in ``tmp_path``.
"""

from __future__ import annotations

import io
import json
import logging
import os
import stat
import tarfile
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from misbehaving_server import misbehaving_server, refused_url
from small_fs import fill, small_filesystem

from xvertnet.cli import main

NAME = "ChinaSet_AllFiles.zip"  # shenzhen: downloadable, no published checksum
PREFIX = "xvertnet download: error: "


@pytest.fixture(autouse=True)
def short_backoff(monkeypatch):
    monkeypatch.setenv("XVERTNET_DOWNLOAD_BACKOFF", "0.01")


@pytest.fixture
def server(tmp_path_factory):
    httpd = misbehaving_server(tmp_path_factory.mktemp("mirror"))
    httpd.publish = lambda name, data: (httpd.root / name).write_bytes(data)
    yield httpd
    httpd.shutdown()


def shenzhen_zip(count=6, size=40_000) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zipped:
        for index in range(count):
            zipped.writestr(f"ChinaSet_AllFiles/CXR_png/CHNCXR_{index:04d}_{index % 2}.png", os.urandom(size))
    return buffer.getvalue()


def tree(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")} if folder.exists() else set()


def download(capsys, dataset, dest, *options) -> tuple[int, str]:
    """Run ``xvertnet download``; the exit code and the error line (asserted to be the only one)."""
    keys = {"--base-url": "base_url", "--archive": "archive", "--registry": "registry", "--seed": "split_seed"}
    pairs = list(zip(options[::2], options[1::2]))
    entry = {keys[flag]: value for flag, value in pairs if flag in keys}  # the data set's config entry
    rest = [item for flag, value in pairs if flag not in keys for item in (flag, value)]
    code = main(["download", dataset, "--dest", str(dest), "--no-progress", "--settings", json.dumps(entry), *rest])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("xvertnet download:")]
    if code == 0:
        assert lines == []
        return code, ""
    assert len(lines) == 1 and lines[0].startswith(PREFIX), lines
    return code, lines[0][len(PREFIX) :]


def assert_nothing_partial(dest: Path, *, part_kept: bool = False) -> None:
    """No archive, unpacked folder, manifest or temporary under ``dest`` (a ``.part`` only where said)."""
    names = tree(dest)
    assert not [n for n in names if ".tmp" in n or n.startswith("extracted/") or n == "manifest.csv"], names
    archives = {n for n in names if n.startswith("archives/")}
    assert archives == ({f"archives/{NAME}.part"} if part_kept else set()), archives


def fetch(capsys, server, tmp_path, *modes, retries=1):
    """Publish the Shenzhen-like zip, script the server's answers and run the download into ``tmp_path/sz``."""
    data = shenzhen_zip()
    server.publish(NAME, data)
    server.behave(NAME, *modes)
    before = tree(tmp_path)
    code, message = download(capsys, "shenzhen", tmp_path / "sz", "--base-url", server.url, "--retries", str(retries))
    assert {n for n in tree(tmp_path) - before if not n.startswith("sz")} == set()  # nothing outside the destination
    return code, message, data


# ---- the network -------------------------------------------------------------------------------------------------


def test_chunked_transfer_cut_mid_stream_is_retried_and_resumed(capsys, caplog, server, tmp_path):
    caplog.set_level(logging.WARNING, "xvertnet")
    code, _, data = fetch(capsys, server, tmp_path, "chunked_cut", "chunked")
    assert code == 0 and (tmp_path / "sz" / "archives" / NAME).read_bytes() == data
    assert (
        "attempt 1 of 2 failed: transfer cut mid-stream (chunked body incomplete); retrying in 0.01 s (resuming at byte"
        in caplog.text
    )
    assert server.requests[-1][1] and server.requests[-1][1] != "bytes=0-"


def test_chunked_transfer_cut_every_time_fails_in_one_line_keeping_the_part_to_resume(capsys, server, tmp_path):
    code, message, data = fetch(capsys, server, tmp_path, "chunked_cut")
    url = f"{server.url}/{NAME}"
    assert code == 2 and message.startswith(
        f"{NAME}: {url}: transfer cut mid-stream (chunked body incomplete); gave up after 2 attempts in "
    )
    part = tmp_path / "sz" / "archives" / f"{NAME}.part"
    assert message.endswith(
        f"s; the {part.stat().st_size} bytes received are kept in {NAME}.part and a rerun resumes there"
    )
    assert data.startswith(part.read_bytes())  # a resume point, never taken for the archive
    assert_nothing_partial(tmp_path / "sz", part_kept=True)


def test_garbage_status_line_fails_at_once(capsys, server, tmp_path):
    code, message, _ = fetch(capsys, server, tmp_path, "garbage", retries=3)
    assert (
        code == 2
        and message
        == f"{NAME}: {server.url}/{NAME}: not an HTTP server (its status line is 'HELLO THERE, THIS IS NOT HTTP')"
    )
    assert len(server.requests) == 1
    assert_nothing_partial(tmp_path / "sz")


def test_body_shorter_than_its_content_length_is_never_accepted(capsys, server, tmp_path):
    code, message, data = fetch(capsys, server, tmp_path, "short")
    part = tmp_path / "sz" / "archives" / f"{NAME}.part"
    assert (
        code == 2
        and f"{NAME}: {server.url}/{NAME}: connection closed after {part.stat().st_size} of the {len(data)} bytes announced"
        in message
    )
    assert "gave up after 2 attempts" in message and part.stat().st_size < len(data)
    assert_nothing_partial(tmp_path / "sz", part_kept=True)


def test_close_delimited_body_cut_early_is_deleted_not_kept(capsys, server, tmp_path):
    code, message, data = fetch(capsys, server, tmp_path, "close_cut")
    assert code == 2 and message == (
        f"{NAME}: the download from {server.url}/{NAME} is not a complete zip or tar archive (truncated, or another kind of "
        "file) and no checksum is published to catch this; partial file deleted, a rerun downloads it again"
    )
    assert_nothing_partial(tmp_path / "sz")
    server.behave(NAME, "close")  # the rerun: a whole close-delimited body is accepted
    assert download(capsys, "shenzhen", tmp_path / "sz", "--base-url", server.url)[0] == 0
    assert (tmp_path / "sz" / "archives" / NAME).read_bytes() == data


def test_unreadable_archive_left_by_an_older_run_is_deleted_so_a_rerun_downloads_it(capsys, server, tmp_path):
    data = shenzhen_zip()
    server.publish(NAME, data)
    stale = tmp_path / "sz" / "archives" / NAME
    stale.parent.mkdir(parents=True)
    stale.write_bytes(data[: len(data) // 2])
    code, message = download(capsys, "shenzhen", tmp_path / "sz", "--base-url", server.url)
    assert (
        code == 2
        and message == f"{NAME}: not a zip or tar archive (or truncated); deleted {stale}, a rerun downloads it again"
    )
    assert_nothing_partial(tmp_path / "sz")
    assert download(capsys, "shenzhen", tmp_path / "sz", "--base-url", server.url)[0] == 0


@pytest.mark.parametrize("extra", [0, 1000], ids=["complete", "longer than the file"])
def test_a_part_left_complete_or_too_long_is_verified_or_fetched_again_not_stuck_on_416(
    capsys, server, tmp_path, extra
):
    data = shenzhen_zip()
    server.publish(NAME, data)
    part = tmp_path / "sz" / "archives" / f"{NAME}.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(data + os.urandom(extra))  # a run killed while verifying leaves a complete .part
    assert download(capsys, "shenzhen", tmp_path / "sz", "--base-url", server.url)[0] == 0
    assert (tmp_path / "sz" / "archives" / NAME).read_bytes() == data and not part.exists()
    assert server.requests[0][1] == f"bytes={len(data) + extra}-"  # answered 416
    assert len(server.requests) == (1 if extra == 0 else 2)
    assert len(pd.read_csv(tmp_path / "sz" / "manifest.csv")) == 6


def test_redirect_loop_is_one_line_and_not_retried(capsys, server, tmp_path):
    code, message, _ = fetch(capsys, server, tmp_path, "loop", retries=3)
    assert (
        code == 2
        and message == f"{NAME}: {server.url}/{NAME}: redirect loop, or more than 10 redirects (the last one HTTP 302)"
    )
    assert all(r[0] == f"/{NAME}" for r in server.requests) and len(server.requests) <= 11  # one attempt's redirects
    assert_nothing_partial(tmp_path / "sz")


def test_not_found_fails_at_once(capsys, server, tmp_path):
    code, message, _ = fetch(capsys, server, tmp_path, "404", retries=3)
    assert code == 2 and message == f"{NAME}: {server.url}/{NAME}: HTTP 404 Not Found" and len(server.requests) == 1
    assert_nothing_partial(tmp_path / "sz")


def test_server_error_is_retried_with_one_progress_line_per_retry(capsys, caplog, server, tmp_path):
    caplog.set_level(logging.WARNING, "xvertnet")
    code, message, _ = fetch(capsys, server, tmp_path, "500", retries=2)
    assert code == 2 and message.startswith(
        f"{NAME}: {server.url}/{NAME}: HTTP 500 Internal Server Error; gave up after 3 attempts in "
    )
    assert [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()] == [
        f"{NAME}: attempt 1 of 3 failed: HTTP 500 Internal Server Error; retrying in 0.01 s",
        f"{NAME}: attempt 2 of 3 failed: HTTP 500 Internal Server Error; retrying in 0.02 s",
    ]
    assert len(server.requests) == 3
    assert_nothing_partial(tmp_path / "sz")


def test_refused_connection_is_retried_with_one_progress_line_per_retry(capsys, caplog, tmp_path):
    caplog.set_level(logging.WARNING, "xvertnet")
    with refused_url() as url:
        code, message = download(capsys, "shenzhen", tmp_path / "sz", "--base-url", url, "--retries", "2")
    assert code == 2 and message.startswith(f"{NAME}: {url}/{NAME}: connection refused; gave up after 3 attempts in ")
    assert [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()] == [
        f"{NAME}: attempt {n} of 3 failed: connection refused; retrying in {wait} s"
        for n, wait in ((1, "0.01"), (2, "0.02"))
    ]
    assert_nothing_partial(tmp_path / "sz")


# ---- broken archives (a user's --archive; PadChest takes any **/*.png) ------------------------------------------------


def _tar(path: Path, members) -> Path:
    """A tar.gz of ``(TarInfo, data or None)`` members."""
    with tarfile.open(path, "w:gz") as tarred:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tarred.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _member(name, kind=tarfile.REGTYPE, link=""):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    if kind == tarfile.DIRTYPE:
        info.mode = 0o755
    return info


def truncated_tar_gz(path: Path) -> Path:
    _tar(path, [(_member(f"imgs/{i}.png"), os.urandom(50_000)) for i in range(4)])
    path.write_bytes(path.read_bytes()[: int(path.stat().st_size * 0.6)])
    return path


def zip_with_bad_crc(path: Path) -> Path:
    content = b"PNG-" + bytes(range(256)) * 8
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as zipped:
        zipped.writestr("imgs/a.png", content)
    data = bytearray(buffer.getvalue())
    data[data.index(content) + 100] ^= 0xFF
    path.write_bytes(bytes(data))
    return path


BROKEN = {  # name: (builder, the message after "<archive>: ")
    "truncated.tar.gz": (truncated_tar_gz, "damaged archive: its data ends early (truncated)"),
    "badcrc.zip": (zip_with_bad_crc, "damaged archive: Bad CRC-32 for file 'imgs/a.png'"),
    "hardlink.tar.gz": (
        lambda p: _tar(
            p, [(_member("imgs/a.png"), b"png"), (_member("imgs/b.png", tarfile.LNKTYPE, "imgs/missing.png"), None)]
        ),
        "refused member 'imgs/b.png': hard link to 'imgs/missing.png', which is not a file earlier in the archive",
    ),
    "filethendir.tar.gz": (
        lambda p: _tar(
            p,
            [(_member("imgs/a.png"), b"png"), (_member("imgs/x"), b"file"), (_member("imgs/x", tarfile.DIRTYPE), None)],
        ),
        "refused member 'imgs/x': 'imgs/x' is both a file and a folder in the archive",
    ),
    "fileparent.tar.gz": (
        lambda p: _tar(p, [(_member("imgs/x"), b"file"), (_member("imgs/x/a.png"), b"png")]),
        "refused member 'imgs/x/a.png': 'imgs/x' is a file and also a folder in the archive",
    ),
    "linkchain.tar.gz": (
        lambda p: _tar(
            p,
            [
                (_member("imgs/a.png"), b"png"),
                (_member("l1", tarfile.SYMTYPE, "."), None),
                (_member("l2", tarfile.SYMTYPE, "l1/.."), None),
            ],
        ),
        "refused member 'l2': a link that leads outside the destination (through other links)",
    ),
}


@pytest.mark.parametrize("name", list(BROKEN))
def test_broken_archive_fails_in_one_line_and_unpacks_nothing(capsys, tmp_path, name):
    build, reason = BROKEN[name]
    archive = build(tmp_path / name)
    before = tree(tmp_path)
    code, message = download(capsys, "padchest", tmp_path / "pc", "--archive", str(archive))
    assert code == 2 and message == f"{name}: {reason}"
    assert tree(tmp_path) - before <= {"pc"} and tree(tmp_path / "pc") == set()  # not even a temporary folder


# ---- stale extraction ---------------------------------------------------------------------------------------------


def _png_zip(path: Path, names) -> Path:
    with zipfile.ZipFile(path, "w") as zipped:
        for name in names:
            zipped.writestr(f"set/{name}.png", b"png")
    return path


def test_another_archive_for_the_same_destination_is_unpacked_again(capsys, caplog, tmp_path):
    caplog.set_level(logging.WARNING, "xvertnet")
    first, second = _png_zip(tmp_path / "a.zip", ["a1", "a2"]), _png_zip(tmp_path / "b.zip", ["b1", "b2", "b3"])
    dest = tmp_path / "pc"
    assert download(capsys, "padchest", dest, "--archive", str(first))[0] == 0
    assert sorted(pd.read_csv(dest / "manifest.csv")["image_id"]) == ["a1", "a2"]
    assert download(capsys, "padchest", dest, "--archive", str(second))[0] == 0
    assert sorted(pd.read_csv(dest / "manifest.csv")["image_id"]) == ["b1", "b2", "b3"]
    assert sorted(p.name for p in (dest / "extracted").rglob("*.png")) == ["b1.png", "b2.png", "b3.png"]
    assert f"holds what was unpacked from {first.resolve()}: unpacking {second} instead" in caplog.text
    caplog.clear()
    unpacked = (dest / "extracted" / ".xvertnet-source.json").stat().st_mtime_ns
    assert download(capsys, "padchest", dest, "--archive", str(second))[0] == 0  # the same archive: reused
    assert (
        dest / "extracted" / ".xvertnet-source.json"
    ).stat().st_mtime_ns == unpacked and "unpacking" not in caplog.text
    _png_zip(second, ["c1"])  # the same path, new contents
    os.utime(second, ns=(unpacked + 10**9, unpacked + 10**9))
    assert download(capsys, "padchest", dest, "--archive", str(second))[0] == 0
    assert list(pd.read_csv(dest / "manifest.csv")["image_id"]) == ["c1"]
    assert [n for n in tree(dest) if ".tmp" in n] == []


def test_a_link_in_place_of_the_unpacked_folder_is_never_followed_or_deleted(capsys, tmp_path):
    archive, elsewhere = _png_zip(tmp_path / "a.zip", ["a1"]), tmp_path / "elsewhere"
    (elsewhere / "set").mkdir(parents=True)
    (elsewhere / "set" / "mine.png").write_bytes(b"png")
    (tmp_path / "pc").mkdir()
    (tmp_path / "pc" / "extracted").symlink_to(elsewhere)
    code, message = download(capsys, "padchest", tmp_path / "pc", "--archive", str(archive))
    assert code == 2 and message == (
        f"{tmp_path / 'pc' / 'extracted'}: in the way of unpacking a.zip and not a folder this "
        "stage unpacked; move it away"
    )
    assert tree(elsewhere) == {"set", "set/mine.png"} and tree(tmp_path / "pc") == {"extracted"}


# ---- shared storage: outputs follow the umask --------------------------------------------------------------------


@pytest.mark.parametrize("mask", [0o022, 0o002], ids=["umask022", "umask002"])
def test_unpacked_folders_and_manifest_follow_the_umask(capsys, tmp_path, mask):
    archive = _png_zip(tmp_path / "a.zip", ["a1"])
    previous = os.umask(mask)
    try:
        assert download(capsys, "padchest", tmp_path / "pc", "--archive", str(archive))[0] == 0
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "pc" / "extracted").stat().st_mode) == 0o777 & ~mask
    assert stat.S_IMODE((tmp_path / "pc" / "manifest.csv").stat().st_mode) == 0o666 & ~mask


# ---- disk full (a 1 MB tmpfs; skipped, saying why, where it cannot be mounted) ------------------------------------


def test_disk_full_while_downloading_deletes_the_partial_download(capsys, server, tmp_path):
    data = shenzhen_zip(count=4, size=500_000)  # 2 MB into 1 MB
    server.publish(NAME, data)
    with small_filesystem(tmp_path / "small") as small:
        code, message = download(capsys, "shenzhen", small / "sz", "--base-url", server.url)
        assert code == 2 and message == (
            f"{small / 'sz' / 'archives' / NAME}: no space left on device while downloading "
            f"{server.url}/{NAME}; the partial download was deleted"
        )
        assert [p for p in small.rglob("*") if p.is_file()] == []


def test_disk_full_while_unpacking_leaves_no_partial_folder(capsys, server, tmp_path):
    data = shenzhen_zip(count=3, size=200_000)  # the 600 kB archive fits, not its contents as well
    server.publish(NAME, data)
    with small_filesystem(tmp_path / "small") as small:
        code, message = download(capsys, "shenzhen", small / "sz", "--base-url", server.url)
        assert code == 2 and message == (
            f"{small / 'sz' / 'extracted' / 'ChinaSet_AllFiles'}: no space left on device "
            f"while unpacking {NAME}; nothing was unpacked"
        )
        assert (small / "sz" / "archives" / NAME).read_bytes() == data  # complete and checked: kept for the rerun
        assert {
            n for n in tree(small / "sz") if ".tmp" in n or n.startswith("extracted/") or n == "manifest.csv"
        } == set()


def test_disk_full_while_writing_the_manifest_leaves_no_temporary(capsys, tmp_path):
    images = tmp_path / "images"
    _png_zip(tmp_path / "a.zip", ["a1", "a2"])
    with zipfile.ZipFile(tmp_path / "a.zip") as zipped:
        zipped.extractall(images)
    with small_filesystem(tmp_path / "small") as small:
        (small / "pc").mkdir()
        fill(small)
        code, message = download(capsys, "padchest", small / "pc", "--archive", str(images))
        assert code == 2 and message == f"{small / 'pc' / 'manifest.csv'}: no space left on device"
        assert tree(small / "pc") == set()
