"""Rule ``study_report``: the design study's table, per-variant tables and panels, and its conclusion (:mod:`xvertnet.reporting.study`)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from xvertnet.settings import add_settings_argument, load_settings


def add_arguments(parser) -> None:
    parser.add_argument("per_roi", type=Path, help="per_roi.csv with the study entries and the reference methods")
    parser.add_argument("--out-dir", required=True, type=Path)
    parser.add_argument("--manifests", required=True, help="JSON object data set -> manifest CSV (view, condition)")
    parser.add_argument("--enhanced", nargs="*", type=Path, default=[], help="enhanced shards for the panels")
    parser.add_argument("--entries", required=True, help="JSON object study entry -> its settings (xvertnet.plan)")
    parser.add_argument("--paper-entry", help="the entry with the paper's recipe (named in the conclusion)")
    parser.add_argument("--models", default="{}", help="JSON object study entry -> the model.json of its iterations")
    add_settings_argument(parser, "study")


def run(args) -> int:
    import pandas as pd

    from xvertnet.evaluation.metrics_shard import shards_by_method
    from xvertnet.evaluation.study_selection import StudySettings
    from xvertnet.reporting.study import StudyRun, write_study

    settings = StudySettings.from_config(load_settings(args.settings))
    entries = load_settings(args.entries)
    per_roi = pd.read_csv(args.per_roi)
    manifests = {
        dataset: pd.read_csv(path, keep_default_na=False) for dataset, path in load_settings(args.manifests).items()
    }
    spikes = {
        entry: sum(len(json.loads(Path(path).read_text()).get("validation_spikes", [])) for path in paths)
        for entry, paths in load_settings(args.models).items()
        if paths
    }
    run = StudyRun(
        per_roi,
        manifests,
        entries=list(entries),
        entry_settings=entries,
        enhanced=shards_by_method(args.enhanced),
        paper_entry=args.paper_entry,
        spikes=spikes,
    )
    chosen = write_study(run, settings, args.out_dir)
    logging.getLogger("xvertnet").info("study of %d entries -> %s; recommended: %s", len(entries), args.out_dir, chosen)
    return 0
