"""Rule ``demo_data``: build the embedded demo data set and its manifest (:mod:`xvertnet.demo.demo_data`)."""

from __future__ import annotations

import logging
from pathlib import Path

from xvertnet.settings import add_settings_argument, load_settings


def add_arguments(parser) -> None:
    parser.add_argument("--out-dir", required=True, type=Path)
    parser.add_argument("--manifest", required=True, type=Path)
    parser.add_argument(
        "--workers", type=int, default=1, help="views projected at once, in threads (the same files for any number)"
    )
    add_settings_argument(parser, "demo")


def run(args) -> int:
    from xvertnet.demo.demo_data import DemoSettings, build_demo_data

    settings = DemoSettings.from_config(load_settings(args.settings))
    manifest = build_demo_data(args.out_dir, args.manifest, settings, workers=args.workers)
    logging.getLogger("xvertnet").info("demo data: %d images, manifest %s", len(manifest), args.manifest)
    return 0
