"""Start and stop a real one-node SLURM on 127.0.0.1 for the tests (Debian's slurm-wlm and munge).

Needs root and apt-get (skipped with a reason otherwise). Follows ../shared/SLURM_NOTES.md:
munge as its own user, slurmctld and slurmd as root, no cgroups, no accounting, two fake GPUs
as GRES backed by device files.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

PACKAGES = ["slurmctld", "slurmd", "slurm-client", "munge"]


def why_not_available() -> str | None:
    if os.geteuid() != 0:
        return "a real SLURM needs root (apt-get, slurmctld, slurmd)"
    if all(shutil.which(tool) for tool in ("slurmctld", "slurmd", "sbatch", "munged")):
        return None
    if not shutil.which("apt-get"):
        return "SLURM is not installed and apt-get is not available"
    result = subprocess.run(
        ["apt-get", "install", "-y", "-q", *PACKAGES],
        capture_output=True,
        text=True,
        env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"),
    )
    if result.returncode:
        update = subprocess.run(["apt-get", "update", "-q"], capture_output=True, text=True)
        result = subprocess.run(
            ["apt-get", "install", "-y", "-q", *PACKAGES],
            capture_output=True,
            text=True,
            env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"),
        )
        if result.returncode:
            return f"apt-get install {' '.join(PACKAGES)} failed: {(update.stderr + result.stderr)[-300:]}"
    return None


def _memory_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    return 4000


#: The SLURM configuration files start() writes, and what they held before (None: absent), for stop().
CONFIG_FILES = (Path("/etc/slurm/slurm.conf"), Path("/etc/slurm/gres.conf"))
_saved: dict[Path, str | None] = {}


def start() -> str:
    """Configure and start munge, slurmctld and slurmd; return the node name."""
    for path in CONFIG_FILES:
        _saved.setdefault(path, path.read_text() if path.exists() else None)
    host = socket.gethostname()
    cpus = os.cpu_count() or 2
    memory = max(2000, _memory_mb() - 2000)
    for folder in ("/etc/slurm", "/var/spool/slurmctld", "/var/spool/slurmd", "/var/log/slurm", "/run/munge"):
        Path(folder).mkdir(parents=True, exist_ok=True)
    shutil.chown("/run/munge", "munge", "munge")
    if not Path("/etc/munge/munge.key").exists():
        subprocess.run(["mungekey", "--create"], check=False)
        shutil.chown("/etc/munge/munge.key", "munge", "munge")
    for index in range(2):
        device = Path(f"/dev/fakegpu{index}")
        if not device.exists():
            os.mknod(device, 0o666 | 0o020000, os.makedev(1, 3))
    Path("/etc/slurm/slurm.conf").write_text(f"""ClusterName=xvertnet-test
SlurmctldHost={host}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MinJobAge=3600
GresTypes=gpu
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory} Gres=gpu:fake:2 State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP
""")
    Path("/etc/slurm/gres.conf").write_text(f"NodeName={host} Name=gpu Type=fake File=/dev/fakegpu[0-1]\n")
    subprocess.run(["runuser", "-u", "munge", "--", "munged", "--force"], check=True)
    subprocess.run(["slurmctld"], check=True)
    subprocess.run(["slurmd"], check=True)
    deadline = time.time() + 60
    while time.time() < deadline:
        state = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True).stdout.strip()
        if state in ("idle", "mix", "alloc"):
            return host
        time.sleep(0.5)
    raise RuntimeError(f"SLURM did not come up (sinfo: {state!r}); see /var/log/slurm/")


def stop() -> None:
    """Stop the daemons and put the configuration back as it was: a slurm.conf left naming a stopped
    controller makes every later `scontrol` (which Snakemake's SLURM plugin runs at each start) wait ~9 s."""
    subprocess.run(["scontrol", "shutdown"], capture_output=True)
    for name in ("slurmd", "slurmctld", "munged"):
        subprocess.run(["pkill", "-x", name], capture_output=True)
    for path, text in _saved.items():
        if text is None:
            path.unlink(missing_ok=True)
        else:
            path.write_text(text)
    _saved.clear()


def jobs() -> list[dict]:
    """Every job SLURM still knows (`scontrol show job -o`), as dicts of its fields."""
    output = subprocess.run(["scontrol", "show", "job", "-o"], capture_output=True, text=True).stdout
    found = []
    for line in output.splitlines():
        fields = {}
        for token in line.split():
            key, _, value = token.partition("=")
            fields[key] = value
        if fields:
            found.append(fields)
    return found
