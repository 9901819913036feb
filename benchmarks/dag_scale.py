"""Time `snakemake -n` over the whole workflow for NIH-scale manifests (112,120 and 224,316 images).

For each size: a manifest of that many empty placeholder image files, the default shard size
(256), the `shard` checkpoint executed for real (it only splits the manifest), then a dry run
of the whole workflow, timed, with the peak memory of the snakemake process.

    python benchmarks/dag_scale.py                 # 112120 and 224316
    python benchmarks/dag_scale.py --sizes 112120
    python benchmarks/dag_scale.py --markdown results/benchmarks/dag_scale.md   # the docs' table (make docs-tables)
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def snakemake(workdir: Path, *args: str) -> tuple[subprocess.CompletedProcess, float, float, float]:
    """Run snakemake in a child; return (result, seconds, CPU seconds, peak MB of that child).

    The CPU seconds (user + system) hardly depend on what else the machine runs. The wall seconds also
    count waiting: the SLURM executor plugin runs `scontrol show config` when snakemake starts, which
    takes about 9 s where a SLURM client is configured but its controller is down (as after the SLURM tests)."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "--directory",
            str(workdir),
            "--snakefile",
            str(workdir / "Snakefile"),
            *args,
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return result, seconds, cpu, max(after.ru_maxrss, before.ru_maxrss) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[112120, 224316])
    parser.add_argument("--shard-size", type=int, default=256)
    parser.add_argument(
        "--keep", action="store_true", help="keep each size's work folder (its path is printed) for profiling"
    )
    parser.add_argument(
        "--markdown",
        type=Path,
        help="also write the table here, headed by the command, commit and machine (the docs copy it: make docs-tables)",
    )
    args = parser.parse_args()
    rows = ["| images | shards | jobs | `snakemake -n` wall | of it CPU | peak memory |", "|---|---|---|---|---|---|"]
    for size in args.sizes:
        with (
            contextlib.nullcontext(tempfile.mkdtemp(prefix=f"dag_scale_{size}_"))
            if args.keep
            else tempfile.TemporaryDirectory() as folder
        ):
            workdir = Path(folder) / "run"
            workdir.mkdir()
            shutil.copy(REPO / "Snakefile", workdir)
            shutil.copytree(REPO / "workflow", workdir / "workflow")
            shutil.copytree(REPO / "envs", workdir / "envs")  # the rules' conda environment, named from workflow/
            images = Path(folder) / "images"
            images.mkdir()
            lines = ["image_id,path,source,bit_depth,split"]
            for index in range(size):
                name = f"{index // 1000:08d}_{index % 1000:03d}"
                (images / f"{name}.png").touch()
                split = "train" if index % 10 < 7 else "val" if index % 10 < 9 else "test"
                lines.append(f"{name},images/{name}.png,placeholder,8,{split}")
            (Path(folder) / "manifest.csv").write_text("\n".join(lines) + "\n")
            config = {
                "datasets": [
                    {"name": "nih", "manifest": str(Path(folder) / "manifest.csv"), "shard_size": args.shard_size}
                ]
            }
            (workdir / "config.yaml").write_text(yaml.safe_dump(config))
            result, seconds, _, _ = snakemake(workdir, "--cores", "1", "results/nih/shards")
            if result.returncode:
                raise SystemExit(result.stderr[-2000:])
            shards = len(list((workdir / "results/nih/shards").glob("*.csv")))
            result, seconds, cpu, peak_mb = snakemake(workdir, "--dry-run", "--quiet", "rules")
            if result.returncode:
                raise SystemExit(result.stderr[-2000:])
            total = re.search(r"^total\s+(\d+)", result.stdout + result.stderr, re.MULTILINE)
            print(
                f"{size} images, {shards} shards of {args.shard_size}: snakemake -n {seconds:.1f} s ({cpu:.1f} s CPU), "
                f"{total.group(1) if total else '?'} jobs, peak {peak_mb:.0f} MB",
                flush=True,
            )
            rows.append(
                f"| {size:,} | {shards} | {int(total.group(1)) if total else 0:,} | {seconds:.1f} s | {cpu:.1f} s | "
                f"{peak_mb:.0f} MB |"
            )
            if args.keep:
                print(f"kept {workdir}", flush=True)
    if args.markdown:
        from xvertnet.reporting.docs_tables import benchmark_command, write_run_table

        note = f"Shards of {args.shard_size}; the whole workflow's dry run after the `shard` checkpoint; peak = the process's."
        write_run_table(args.markdown, benchmark_command(), "\n".join(rows) + "\n\n" + note)


if __name__ == "__main__":
    main()
