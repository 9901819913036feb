"""The download stage against a local HTTP server on 127.0.0.1: resume, corrupt and malicious archives, splits."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from xvertnet.io.archives import safe_extract
from xvertnet.io.dataset_splits import assign_splits
from xvertnet.io.download import DownloadOptions, fetch_dataset
from xvertnet.io.http_download import DownloadError, RetryPolicy, download_file
from xvertnet.io.mirror import MirrorHandler, serve


class RedirectingMirror(MirrorHandler):
    """The project's mirror, plus ``/redirect/<name>`` answering 302 to ``/files/<name>``."""

    def do_GET(self):
        if self.path.startswith("/redirect/"):
            self.server.requests.append((self.path, None))
            self.send_response(302)
            self.send_header("Location", "/files/" + self.path.split("/", 2)[2])
            self.end_headers()
            return
        super().do_GET()


@pytest.fixture
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("mirror")
    httpd = serve(root, poll_interval=0.02)
    httpd.RequestHandlerClass = RedirectingMirror

    def publish(name, data):
        (root / name).write_bytes(data)

    httpd.publish = publish
    yield httpd
    httpd.shutdown()


def _png_bytes(seed):
    image = (np.random.default_rng(seed).random((64, 64)) * 4095).astype(np.uint16)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def montgomery_like_zip(count=20) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zipped:
        for index in range(count):
            zipped.writestr(f"MontgomerySet/CXR_png/MCUCXR_{index:04d}_{index % 2}.png", _png_bytes(index))
        zipped.writestr("MontgomerySet/.DS_Store", b"junk")
        zipped.writestr("__MACOSX/MontgomerySet/._MCUCXR_0000_0.png", b"junk")
        zipped.writestr("MontgomerySet/CXR_png/Thumbs.db", b"junk")
    return buffer.getvalue()


def test_interrupted_download_resumes_with_a_range_request(server, tmp_path):
    data = os.urandom(3_000_000)
    server.publish("big.bin", data)
    server.interrupt_once["big.bin"] = 1_200_000
    path = download_file(
        f"{server.url}/redirect/big.bin",
        tmp_path / "big.bin",
        size=len(data),
        checksum=("sha256", hashlib.sha256(data).hexdigest()),
        policy=RetryPolicy(backoff=0.01, progress=False),
    )
    assert path.read_bytes() == data and not (tmp_path / "big.bin.part").exists()
    ranges = [r for _, r in server.requests if r]
    assert ranges and int(ranges[0].split("=")[1].split("-")[0]) == 1_200_000


def test_corrupt_archive_is_deleted_and_named(server, tmp_path):
    data = montgomery_like_zip()
    server.publish("set.zip", data)
    wrong = "0" * 64
    with pytest.raises(DownloadError) as caught:
        download_file(
            f"{server.url}/files/set.zip",
            tmp_path / "set.zip",
            checksum=("sha256", wrong),
            policy=RetryPolicy(backoff=0.01, progress=False),
        )
    message = str(caught.value)
    assert "set.zip" in message and wrong in message and hashlib.sha256(data).hexdigest() in message
    assert list(tmp_path.iterdir()) == []


def test_missing_file_fails_at_once(server, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404"):
        download_file(
            f"{server.url}/files/none.zip",
            tmp_path / "none.zip",
            policy=RetryPolicy(backoff=0.01, progress=False),
        )


def _zip_with(name: str) -> Path:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zipped:
        zipped.writestr("ok.txt", b"fine")
        zipped.writestr(name, b"evil")
    return buffer.getvalue()


@pytest.mark.parametrize("member", ["../evil.txt", "/etc/evil.txt", "a/../../evil.txt"])
def test_path_traversal_zip_is_refused_and_nothing_is_unpacked(tmp_path, member):
    archive = tmp_path / "evil.zip"
    archive.write_bytes(_zip_with(member))
    with pytest.raises(DownloadError, match="refused member"):
        safe_extract(archive, tmp_path / "out" / "set")
    assert not (tmp_path / "out" / "set").exists() and not (tmp_path / "evil.txt").exists()
    assert [p.name for p in (tmp_path / "out").iterdir()] == []


@pytest.mark.parametrize("kind", ["symlink", "device"])
def test_tar_links_outside_and_devices_are_refused(tmp_path, kind):
    archive = tmp_path / "evil.tar.gz"
    with tarfile.open(archive, "w:gz") as tarred:
        info = tarfile.TarInfo("images/ok.txt")
        info.size = 4
        tarred.addfile(info, io.BytesIO(b"fine"))
        bad = tarfile.TarInfo("images/bad")
        if kind == "symlink":
            bad.type, bad.linkname = tarfile.SYMTYPE, "../../etc/passwd"
        else:
            bad.type, bad.devmajor, bad.devminor = tarfile.CHRTYPE, 1, 3
        tarred.addfile(bad)
    with pytest.raises(DownloadError, match="refused member 'images/bad'"):
        safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def _registry(tmp_path, data: bytes) -> Path:
    registry = yaml.safe_load(
        (Path(__file__).resolve().parents[2] / "src/xvertnet/io/datasets_registry.yaml").read_text()
    )
    entry = registry["montgomery"]
    entry["files"][0]["sha256"] = hashlib.sha256(data).hexdigest()
    path = tmp_path / "registry.yaml"
    path.write_text(yaml.safe_dump(registry))
    return path


def test_fetch_unpacks_skips_junk_and_splits_by_patient(server, tmp_path):
    data = montgomery_like_zip()
    server.publish("NLM-MontgomeryCXRSet.zip", data)
    options = DownloadOptions(registry=str(_registry(tmp_path, data)), base_url=f"{server.url}/files", progress=False)
    manifest = fetch_dataset("montgomery", tmp_path / "mc", options)
    assert len(manifest) == 20 and manifest["image_id"].str.match(r"MCUCXR_\d{4}_[01]").all()
    assert manifest["split"].value_counts().to_dict() == {"train": 14, "val": 4, "test": 2}
    assert not list((tmp_path / "mc").rglob(".DS_Store")) and not list((tmp_path / "mc").rglob("__MACOSX"))
    again = fetch_dataset(
        "montgomery", tmp_path / "mc", DownloadOptions(registry=options.registry, base_url="http://127.0.0.1:9/none")
    )
    pd.testing.assert_frame_equal(manifest.reset_index(drop=True), again.reset_index(drop=True))  # cached: no request
    other = fetch_dataset("montgomery", tmp_path / "mc", DownloadOptions(registry=options.registry, seed=7))
    assert list(other["split"]) != list(manifest["split"])
    from xvertnet.io.readers import read_image

    record = read_image((tmp_path / "mc" / manifest["path"].iloc[0]).resolve())
    assert record.detected_bits == 12


def test_registration_datasets_say_where_to_register(tmp_path):
    with pytest.raises(DownloadError, match=r"jsrt needs registration: .*db\.jsrt\.or\.jp.*datasets\[\]\.archive"):
        fetch_dataset("jsrt", tmp_path / "jsrt")


def test_count_splits_keep_patients_whole_and_are_deterministic():
    patients = pd.Series([f"{p:08d}" for p in np.random.default_rng(0).integers(0, 300, 2000)])
    splits = assign_splits(patients, {"counts": [800, 200, 100]}, seed=1)
    assert (splits == assign_splits(patients, {"counts": [800, 200, 100]}, seed=1)).all()
    frame = pd.DataFrame({"patient": patients, "split": splits})
    assert frame.groupby("patient")["split"].nunique().max() == 1
    counts = frame["split"].value_counts()
    assert counts["train"] >= 800 and counts["val"] >= 200 and counts["test"] >= 100 and counts.get("", 0) > 0
