"""Running ``xvertnet`` commands in the tests, in this process and as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys

from repo_paths import REPO


def run_cli(capsys, *argv) -> tuple[int, str]:
    """Run ``xvertnet argv`` in this process: the exit code and its error line, asserted to be the only line it printed
    to stderr besides log records ("" when it succeeded)."""
    from xvertnet.cli import main

    capsys.readouterr()
    code = main([str(arg) for arg in argv])
    lines = [
        line for line in capsys.readouterr().err.splitlines() if not line.startswith(("DEBUG ", "INFO ", "WARNING "))
    ]
    if code == 0:
        assert lines == [], lines
        return code, ""
    prefix = f"xvertnet {argv[0]}: error: "
    assert len(lines) == 1 and lines[0].startswith(prefix), lines
    return code, lines[0][len(prefix) :]


def run_cli_subprocess(*argv, cwd=None) -> subprocess.CompletedProcess:
    """``python -m xvertnet argv`` in a fresh interpreter (what a user's terminal shows), text output captured."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run(
        [sys.executable, "-m", "xvertnet", *map(str, argv)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
