"""Atomic outputs: nothing half-written survives a failure, a full disk is one line, modes follow the umask."""

from __future__ import annotations

import errno
import os
import re
import stat
import subprocess
import sys

import numpy as np
import pytest
from command_line import run_cli
from repo_paths import REPO
from small_fs import small_filesystem
from synthetic_data import write_png

from xvertnet.errors import DiskFullError
from xvertnet.io.atomic import atomic_dir, atomic_path, current_umask


def test_success_renames_into_place(tmp_path):
    with atomic_path(tmp_path / "a" / "out.csv") as tmp:
        tmp.write_text("x\n")
    assert (tmp_path / "a" / "out.csv").read_text() == "x\n"
    assert list((tmp_path / "a").iterdir()) == [tmp_path / "a" / "out.csv"]


def test_failure_leaves_target_untouched_and_no_temporary(tmp_path):
    target = tmp_path / "out.h5"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            assert tmp.suffix == ".h5"
            raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert list(tmp_path.iterdir()) == [target]


@pytest.fixture(params=[0o022, 0o002], ids=["umask022", "umask002"])
def umask(request):
    previous = os.umask(request.param)
    yield request.param
    os.umask(previous)


def test_outputs_follow_the_umask(tmp_path, umask):
    assert current_umask() == umask
    with atomic_path(tmp_path / "out.csv") as tmp:
        tmp.write_text("x\n")
    with atomic_dir(tmp_path / "folder") as staging:
        (staging / "inside.txt").write_text("x")
    assert stat.S_IMODE((tmp_path / "out.csv").stat().st_mode) == 0o666 & ~umask  # 0644 / 0664
    assert stat.S_IMODE((tmp_path / "folder").stat().st_mode) == 0o777 & ~umask  # 0755 / 0775
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder", "out.csv"]


def test_a_failed_folder_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_dir(tmp_path / "folder") as staging:
            (staging / "half.txt").write_text("x")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_out_of_space_reported_by_a_library_is_one_line_naming_the_file(tmp_path):
    with pytest.raises(DiskFullError) as caught:
        with atomic_path(tmp_path / "out.h5"):
            raise OSError(errno.EDQUOT, os.strerror(errno.EDQUOT))
    assert str(caught.value) == f"{tmp_path / 'out.h5'}: disk quota exceeded"
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_is_one_line_naming_the_file_and_leaves_nothing(tmp_path):
    with small_filesystem(tmp_path / "small") as small:
        (small / "kept.txt").write_text("before")
        with pytest.raises(DiskFullError) as caught:
            with atomic_path(small / "out.bin") as tmp:
                tmp.write_bytes(os.urandom(2 << 20))
        assert str(caught.value) == f"{small / 'out.bin'}: no space left on device"
        with pytest.raises(DiskFullError, match=f"^{small / 'folder'}: no space left on device while testing$"):
            with atomic_dir(small / "folder", detail="while testing") as staging:
                (staging / "big.bin").write_bytes(os.urandom(2 << 20))
        assert [p.name for p in small.iterdir()] == ["kept.txt"]


def test_a_stage_out_of_space_fails_in_one_line_and_leaves_no_partial_shard(capsys, tmp_path):
    noise = np.random.default_rng(0).integers(
        0, 65536, (1024, 1024), dtype=np.uint16
    )  # 4 MB of float32, incompressible
    image = write_png(tmp_path / "noise.png", noise)
    with small_filesystem(tmp_path / "small") as small:
        code, message = run_cli(
            capsys, "ingest", image, "--out", small / "ingest.h5", "--rejects", tmp_path / "rejects.csv"
        )
        assert code == 2
        assert re.fullmatch(
            rf"{small / 'ingest.h5'}: no space left on device \(1\.0 MB free, image noise needs up to 5\.2 MB\)",
            message,
        )
        assert list(small.iterdir()) == []
    assert not (tmp_path / "rejects.csv").exists()  # written after the shard: the stage stopped first


def test_hdf5_meeting_the_full_disk_itself_still_fails_in_one_line_without_a_crash(tmp_path):
    # A disk filled by another process after the free-space check: HDF5's write fails. Run as the program (the
    # library's state is broken afterwards, so the process ends without HDF5's shutdown, which would crash).
    image = write_png(
        tmp_path / "noise.png", np.random.default_rng(0).integers(0, 65536, (1024, 1024), dtype=np.uint16)
    )
    with small_filesystem(tmp_path / "small") as small:
        script = (
            "import sys; import xvertnet.io.shard_store as store; store.free_bytes = lambda folder: None; "
            "from xvertnet.cli import main; sys.argv[1:] = sys.argv[2:]; sys.exit(main())"
        )
        result = subprocess.run(
            [
                sys.executable,
                "-c",
                script,
                "-",
                "ingest",
                str(image),
                "--out",
                str(small / "ingest.h5"),
                "--rejects",
                str(tmp_path / "rejects.csv"),
            ],
            env=dict(os.environ, PYTHONPATH=str(REPO / "src")),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 2, result.stderr
        assert result.stderr.splitlines() == [f"xvertnet ingest: error: {small / 'ingest.h5'}: no space left on device"]
        assert list(small.iterdir()) == []
