"""Is the ``python`` the workflow's jobs will run the one that has this package's dependencies?

The jobs run ``python -m xvertnet`` with this checkout's ``src`` on ``PYTHONPATH``, so the package
itself always imports; its dependencies come from whatever ``python`` is first on ``PATH``. Started
as ``.venv/bin/snakemake`` without activating the environment, that is the system's interpreter,
and every job would die late with ``ModuleNotFoundError`` in its log. The workflow asks this
module once, before any job runs (unless a software deployment method such as conda provides
the jobs' software), and stops with one line naming the interpreter and what to do.
"""

from __future__ import annotations

import os
import shutil
import subprocess

#: What every stage imports (torch is left out: it takes seconds to import and comes with the same install).
REQUIRED = ("numpy", "scipy", "pandas", "h5py", "skimage", "yaml", "PIL", "pydicom")


def job_python_problem(src: str, *, path: str | None = None) -> str | None:
    """None when the jobs' ``python`` (first on ``path``, default ``$PATH``) imports the package and its dependencies
    with ``src`` on ``PYTHONPATH``; else the one-line reason and what to do."""
    python = shutil.which("python", path=path) or shutil.which("python3", path=path)
    if python is None:
        return (
            "no `python` on PATH for the workflow's jobs: activate the environment (. .venv/bin/activate) or use `make`"
        )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH", "")) if p))
    if path is not None:
        env["PATH"] = path
    code = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\nimport xvertnet"
    try:
        found = subprocess.run([python, "-c", code, *REQUIRED], env=env, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"the jobs' python ({python}) does not run: {error}"
    if found.returncode == 0:
        return None
    last = (found.stderr.strip().splitlines() or ["(no message)"])[-1]
    return (
        f"the jobs' python ({python}) cannot import the workflow's dependencies ({last}): activate the environment "
        "first (. .venv/bin/activate), put .venv/bin first on PATH, or use `make`"
    )
