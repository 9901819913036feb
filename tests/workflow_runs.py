"""Running the workflow in the tests: Snakemake in a work folder, its test configurations, dry runs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from repo_paths import REPO

#: The workflow test configurations (``configs/test/``): a tiny demo run and the SLURM run.
TEST_CONFIGS = REPO / "configs" / "test"


def load_test_config(name: str) -> dict:
    """A workflow test configuration from ``configs/test/<name>.yaml``."""
    return yaml.safe_load((TEST_CONFIGS / f"{name}.yaml").read_text())


def snakemake_command(workdir: Path, *args: str) -> tuple[list[str], dict]:
    """The command line and environment of Snakemake on two cores in ``workdir`` (this interpreter's jobs)."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    command = [sys.executable, "-m", "snakemake", "--cores", "2", "--directory", str(workdir)]
    return [*command, "--snakefile", str(workdir / "Snakefile"), *args], env


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    command, env = snakemake_command(workdir, *args)
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)


def planned_jobs(output: str) -> dict[str, int]:
    """Rule -> job count from the 'Job stats' table of a dry run."""
    lines = output.splitlines()
    if "Job stats:" not in lines:
        return {}
    table = lines[lines.index("Job stats:") + 3 :]
    jobs = {}
    for line in table:
        parts = line.split()
        if len(parts) != 2 or parts[0] == "total":
            break
        jobs[parts[0]] = int(parts[1])
    return jobs


def dry_run_with_change(workdir: Path, section: str, key: str, value) -> tuple[dict[str, int], str]:
    """(planned jobs, stdout) of a dry run with one config key changed (through an extra --configfile)."""
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    config.setdefault(section, {})[key] = value
    changed = workdir / f"changed_{section}_{key}.yaml"
    changed.write_text(yaml.safe_dump(config))
    result = snakemake(workdir, "--dry-run", "--configfile", str(changed))
    assert result.returncode == 0, result.stderr[-2000:]
    return planned_jobs(result.stdout + result.stderr), result.stdout


def make_workdir(tmp_path: Path, config: dict) -> Path:
    workdir = tmp_path / "run"
    workdir.mkdir()
    shutil.copy(REPO / "Snakefile", workdir)
    shutil.copytree(REPO / "workflow", workdir / "workflow")
    shutil.copytree(REPO / "envs", workdir / "envs")
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    return workdir
