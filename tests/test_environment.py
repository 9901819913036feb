"""The workflow's check of the jobs' interpreter, before any job runs."""

import os
import shutil
import sys
from pathlib import Path

import pytest

from xvertnet.environment import job_python_problem

SRC = str(Path(__file__).resolve().parents[1] / "src")


def test_the_environments_python_passes():
    assert job_python_problem(SRC, path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}") is None


def test_a_python_without_the_dependencies_is_named_with_what_to_do():
    system = shutil.which("python3", path="/usr/bin:/bin")
    if system is None:
        pytest.skip("no system python3 to stand for an interpreter without the dependencies")
    probe = os.popen(f"{system} -c 'import numpy' 2>&1").read()
    if "No module named" not in probe:
        pytest.skip(f"{system} has numpy: it cannot stand for an interpreter without the dependencies")
    problem = job_python_problem(SRC, path="/usr/bin:/bin")
    assert problem is not None and "\n" not in problem
    assert system in problem and "No module named" in problem and ".venv/bin/activate" in problem


def test_no_python_at_all_is_said(tmp_path):
    problem = job_python_problem(SRC, path=str(tmp_path))
    assert problem is not None and "no `python` on PATH" in problem
