"""Rule ``refine``: apply model t to a data shard, the next iteration's inputs and HFC (:func:`xvertnet.model.inference.refine_shard`)."""

from __future__ import annotations

import logging
from pathlib import Path

from xvertnet.settings import add_settings_argument, load_settings


def add_arguments(parser) -> None:
    parser.add_argument("data", type=Path)
    parser.add_argument("--model", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    add_settings_argument(parser, "enhance")


def run(args) -> int:
    from xvertnet.model.inference import EnhanceSettings, refine_shard

    settings = EnhanceSettings.from_config(load_settings(args.settings))
    count = refine_shard(args.model, args.data, args.out, device=settings.device)
    logging.getLogger("xvertnet").info("refine: %d images -> %s", count, args.out)
    return 0
