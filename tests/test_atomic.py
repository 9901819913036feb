"""Atomic outputs: nothing half-written survives a failure."""

from __future__ import annotations

import pytest

from xvertnet.atomic import atomic_path


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
