"""Checkpoint ``shard``: split a manifest into shard manifests (:func:`xvertnet.io.datasets.split_into_shards`)."""

from __future__ import annotations

import logging
from pathlib import Path

from xvertnet.settings import add_settings_argument, load_settings


def add_arguments(parser) -> None:
    parser.add_argument("manifest", type=Path)
    parser.add_argument("--out-dir", required=True, type=Path)
    add_settings_argument(parser, "ingest")


def run(args) -> int:
    from xvertnet.io.datasets import ShardSettings, split_into_shards

    settings = ShardSettings.from_config(load_settings(args.settings))
    written = split_into_shards(args.manifest, args.out_dir, shard_size=settings.shard_size)
    logging.getLogger("xvertnet").info(
        "%d shards of up to %d images in %s", len(written), settings.shard_size, args.out_dir
    )
    return 0
