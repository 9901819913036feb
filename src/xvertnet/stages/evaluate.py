"""Leave-one-patient-out evaluation over the chest CT patients (``make evaluate``; :mod:`xvertnet.evaluation.leave_one_patient_out`).

Runs the workflow once per fold (a named run ``lopo-<test patient>`` with its own demo data
set, from ``--configfile`` plus the fold's patients and splits), then pools the folds' per-ROI
tables into ``<out>/per_roi.csv`` (every row names its patient), ``patients.csv`` and
``patients.md`` (mean +- std over patients and over ROIs, bootstrap CIs by patient, Wilcoxon),
and ``timings.csv`` (seconds per fold). A fold already complete is not rerun: Snakemake sees
nothing to do.
"""

from __future__ import annotations

import logging
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import yaml

from xvertnet.errors import ConfigError, XvertnetError
from xvertnet.io.atomic import atomic_path

log = logging.getLogger(__name__)


def add_arguments(parser) -> None:
    parser.add_argument("--configfile", type=Path, default=Path("config.yaml"), help="the base workflow config")
    parser.add_argument("--schema", type=Path, default=Path("workflow/schemas/config.schema.yaml"))
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("results/evaluate"), help="folder of the pooled report")
    parser.add_argument("--report-only", action="store_true", help="pool the folds already run; run no workflow")
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        help="run and report only these of evaluate.training_seeds (e.g. --seeds 0 for a first pass; a later call "
        "with all of them runs only the folds still missing)",
    )
    parser.add_argument(
        "--detectability",
        type=Path,
        help="make detectability's detectability.csv: its fracture AUCs join the report (evaluate.detectability_table)",
    )
    parser.add_argument(
        "--snakemake-args",
        default="",
        help="more arguments for every fold's snakemake, one string "
        '(e.g. "--keep-going --profile workflow/profiles/slurm")',
    )


def run(args) -> int:
    from xvertnet.config import load_config
    from xvertnet.evaluation.leave_one_patient_out import EvaluationSettings, fold_config, folds, write_report

    base = load_config(args.configfile, args.schema)
    settings = EvaluationSettings.from_config(base.get("evaluate"))
    import dataclasses

    if args.detectability:
        settings = dataclasses.replace(settings, detectability_table=str(args.detectability))
    if args.seeds:
        unknown_seeds = [seed for seed in args.seeds if seed not in settings.training_seeds]
        if unknown_seeds:
            raise ConfigError(
                "evaluate.training_seeds",
                f"--seeds {unknown_seeds[0]} is not one of {', '.join(map(str, settings.training_seeds))}",
            )
    seeds = tuple(args.seeds) if args.seeds else settings.training_seeds
    known = {view["name"] for view in base.get("demo", {}).get("views", [])}
    unknown = [view for view in settings.views if view not in known]
    if unknown:
        raise ConfigError("evaluate.views", f"'{unknown[0]}' is not one of demo.views ({', '.join(sorted(known))})")
    args.out.mkdir(parents=True, exist_ok=True)
    timings_path = args.out / "timings.csv"
    timings = pd.read_csv(timings_path).set_index("fold")["seconds"].to_dict() if timings_path.is_file() else {}
    results = []
    for fold in folds(settings.patients, settings.training_seeds):
        if fold["seed"] not in seeds:
            continue
        config_path = args.out / f"{fold['name']}.yaml"
        with atomic_path(config_path) as tmp:
            Path(tmp).write_text(yaml.safe_dump(fold_config(base, fold, settings), sort_keys=False))
        if not args.report_only:
            log.info(
                "fold %s: train %s, validate %s, test %s",
                fold["name"],
                ", ".join(fold["train"]),
                fold["val"],
                fold["test"],
            )
            start = time.perf_counter()
            command = [
                sys.executable,
                "-m",
                "snakemake",
                "--cores",
                str(args.cores),
                "--configfile",
                str(config_path),
                "--printshellcmds",
                *shlex.split(args.snakemake_args),
            ]
            if subprocess.run(command).returncode != 0:
                raise XvertnetError(
                    f"fold {fold['name']} failed (its config: {config_path}); rerun `make evaluate` to resume"
                )
            seconds = round(time.perf_counter() - start, 1)
            if seconds > 60 or fold["name"] not in timings:  # a fold already complete keeps the time it took
                timings[fold["name"]] = seconds
            with atomic_path(timings_path) as tmp:
                pd.DataFrame({"fold": list(timings), "seconds": list(timings.values())}).to_csv(tmp, index=False)
        per_roi = Path("results/runs") / fold["name"] / "metrics/per_roi.csv"
        manifest = Path("results") / fold["dataset"] / "raw/manifest.csv"
        for path in (per_roi, manifest):
            if not path.is_file():
                raise XvertnetError(f"{path} is missing: run the fold (make evaluate) before --report-only")
        results.append((per_roi, manifest, fold["seed"]))
    table = write_report(results, args.out, dataclasses.replace(settings, training_seeds=seeds))
    log.info("wrote %s (%d rows) and %s", args.out / "patients.csv", len(table), args.out / "patients.md")
    return 0
