"""Command ``xvertnet check-config``: validate a config file against the schema and plan it (:mod:`xvertnet.plan`)."""

from __future__ import annotations

from pathlib import Path


def add_arguments(parser) -> None:
    parser.add_argument("config", type=Path)
    parser.add_argument("--schema", type=Path, default=Path("workflow/schemas/config.schema.yaml"))


def run(args) -> int:
    from xvertnet.config import load_config
    from xvertnet.plan import Plan

    plan = Plan(load_config(args.config, args.schema))
    print(f"{args.config}: valid; data sets {', '.join(plan.datasets)}; methods {', '.join(plan.methods)}")
    return 0
