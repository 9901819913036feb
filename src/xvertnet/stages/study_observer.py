"""Rule ``study_observer``: every design-study entry and CLAHE at each clip limit on the detectability study's images
of the held-out patients; the choice by the observer's AUC behind the heart (:mod:`xvertnet.evaluation.observer_study`)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from xvertnet.settings import add_settings_argument, load_settings

log = logging.getLogger(__name__)


def add_arguments(parser) -> None:
    parser.add_argument("--out-dir", required=True, type=Path)
    parser.add_argument(
        "--entries", required=True, help="JSON object study entry -> {method, settings, variant, seed, iteration}"
    )
    parser.add_argument(
        "--manifests", required=True, help="JSON object data set -> manifest CSV of the run that trained the entries"
    )
    add_settings_argument(parser, "study.observer")


def run(args) -> int:
    import pandas as pd

    from xvertnet.evaluation.observer_study import ObserverStudySettings, check_training_patients, run_observer_study

    settings = ObserverStudySettings.from_config(load_settings(args.settings))
    manifests = {
        dataset: pd.read_csv(path, keep_default_na=False) for dataset, path in load_settings(args.manifests).items()
    }
    trained_on = check_training_patients(manifests, settings.patients)
    log.info("study models trained on %s; held out: %s", ", ".join(trained_on) or "no named patient", settings.patients)
    summary = run_observer_study(args.out_dir, load_settings(args.entries), settings)
    log.info("wrote %s (%s)", args.out_dir / "summary.md", json.dumps(summary["timing_s"]))
    return 0
