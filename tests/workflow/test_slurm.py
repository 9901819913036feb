"""The demo workflow through the SLURM profile on a real one-node SLURM (started and stopped here)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import slurm_cluster
from workflow_runs import load_test_config, make_workdir

pytestmark = pytest.mark.slurm


@pytest.fixture(scope="module")
def cluster():
    reason = slurm_cluster.why_not_available()
    if reason:
        pytest.skip(reason)
    try:
        host = slurm_cluster.start()
    except BaseException:
        slurm_cluster.stop()  # daemons half up and the configuration written: put everything back
        raise
    yield host
    slurm_cluster.stop()


def test_demo_workflow_runs_through_the_slurm_profile_with_gpus_only_for_training(cluster, tmp_path):
    workdir = make_workdir(tmp_path, load_test_config("slurm"))  # configs/test/slurm.yaml: about 25 SLURM jobs
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    command = [
        sys.executable,
        "-m",
        "snakemake",
        "--profile",
        "workflow/profiles/slurm",
        "--slurm-init-seconds-before-status-checks",
        "1",
        "--jobs",
        "4",
        "--groups",
        "ingest=ingest",
        "--group-components",
        "ingest=2",
    ]
    result = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stderr[-4000:]
    assert len(pd.read_csv(workdir / "results/metrics/per_roi.csv")) == 3 * 2 * 2  # val/test images x ROIs x methods
    submitted = [job for job in slurm_cluster.jobs() if job.get("WorkDir", "") == str(workdir)]
    assert submitted, "no SLURM jobs of this run were found"
    by_rule = {}
    for job in submitted:
        rule = job.get("Comment", "").removeprefix("rule_").split("_wildcards_")[0]
        by_rule.setdefault(rule, []).append(job)
    assert {"train", "prep", "metrics_shard"} <= set(by_rule), sorted(by_rule)
    assert any(rule.startswith("ingest") for rule in by_rule), "the grouped ingest jobs"

    def asks_for_gpu(job):
        return "gpu" in (job.get("TresPerJob", "") + job.get("TresPerNode", "") + job.get("Gres", ""))

    assert all(asks_for_gpu(job) for job in by_rule["train"]) and len(by_rule["train"]) == 2
    for rule in ("ingest_ingest", "roi", "prep", "metrics_shard", "demo_data", "aggregate_metrics", "tables"):
        assert not any(asks_for_gpu(job) for job in by_rule.get(rule, [])), rule
    assert all(job["JobState"] == "COMPLETED" for job in submitted)
