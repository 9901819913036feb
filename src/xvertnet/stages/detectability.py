"""Command ``xvertnet detectability``: the fracture-detectability study (:mod:`xvertnet.evaluation.detectability`) into a folder.

Settings: the ``detectability`` section of ``--config`` (YAML), then the command-line options over it.
Writes ``detectability.csv`` (one row per method, observer, lesion and region), ``detectability.md``,
``validation.json`` (d' by dose, run times, the levels and their regions), ``fracture_types.png`` and
``pairs.png``, the observers' inputs (``patches.npz``, ``cases.csv``) and the 2AFC reading page (``reading/``).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def add_arguments(parser) -> None:
    parser.add_argument("--out", type=Path, default=Path("results/detectability"), help="output folder")
    parser.add_argument("--config", type=Path, help="YAML config with a `detectability` section")
    parser.add_argument("--realisations", type=int, help="noise realisations of each image per view (even)")
    parser.add_argument("--patients", nargs="+", help="held-out CT patients")
    parser.add_argument("--views", nargs="+", help="views of each patient (the demo's view names: ap, rotl4, ...)")
    parser.add_argument("--methods", nargs="+", help="methods (original, xvertnet, clahe-<clip>, ...)")
    parser.add_argument(
        "--baselines",
        help="folder of the workflow's trained baselines (<folder>/<method>/model.json), e.g. results/models/baselines",
    )
    parser.add_argument(
        "--reanalyse",
        action="store_true",
        help="only the analysis and the reading page again, from the patches a finished run left in --out",
    )


def run(args) -> int:
    import yaml

    from xvertnet.evaluation.detectability import DetectabilitySettings, run_study

    section = {}
    if args.config:
        section = dict((yaml.safe_load(args.config.read_text()) or {}).get("detectability") or {})
    for name in ("realisations", "patients", "views", "methods", "baselines"):
        if getattr(args, name) is not None:
            section[name] = getattr(args, name)
    settings = DetectabilitySettings.from_config(section)
    if args.reanalyse:
        from xvertnet.evaluation.detectability import reanalyse

        reanalyse(args.out, settings)
        log.info("wrote %s again from %s", args.out / "detectability.md", args.out / "patches.npz")
        return 0
    validation = run_study(args.out, settings)
    log.info("wrote %s (%s)", args.out / "detectability.md", json.dumps(validation["timing_s"]))
    return 0
