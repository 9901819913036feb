"""Peak memory of one process, for the benchmarks: the kernel's VmHWM, not ``ru_maxrss``.

A child started by fork or vfork and exec inherits its parent's ``ru_maxrss`` (Linux keeps the
largest resident size across exec), so a small command started by a benchmark that holds large
arrays reports the benchmark's peak. VmHWM belongs to the process's own address space and starts
afresh at exec.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

#: ``python -c PEAK_WRAPPER <peak file> <xvertnet arguments...>``: runs the command line in this process and writes
#: its VmHWM (kB) to the peak file before exiting with the command's code.
PEAK_WRAPPER = """
import sys
from xvertnet.cli import main
code = main(sys.argv[2:])
with open("/proc/self/status") as status, open(sys.argv[1], "w") as out:
    out.write(next(line.split()[1] for line in status if line.startswith("VmHWM:")))
sys.exit(code)
"""


def vm_hwm_mb() -> float:
    """This process's peak resident size in MiB (VmHWM; ``ru_maxrss`` where /proc is missing)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_xvertnet(arguments: list[str], peak_file: Path, **popen) -> tuple[subprocess.CompletedProcess, float, float]:
    """Run ``xvertnet arguments`` in its own process (this checkout's ``src`` first on the path): (the finished
    process, its peak resident bytes (NaN when it failed), seconds). ``popen``: stdout, stderr and the like, passed to
    :func:`subprocess.run`."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]))
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", PEAK_WRAPPER, str(peak_file), *arguments], env=env, **popen)
    seconds = time.perf_counter() - start
    peak = int(Path(peak_file).read_text()) * 1024 if done.returncode == 0 else float("nan")
    return done, peak, seconds
