"""Command ``xvertnet serve --config node.yaml``: the DICOM node (:mod:`xvertnet.serving.dicom_node`) until SIGTERM or SIGINT.

The settings are checked before anything listens: a wrong key, AE title, port or a missing destination is one line.
"""

from __future__ import annotations

from pathlib import Path


def add_arguments(parser) -> None:
    parser.add_argument("--config", required=True, type=Path, help="the node's settings (YAML; docs/dicom-node.md)")


def run(args) -> int:
    from xvertnet.serving.dicom_node import load_settings, serve_forever

    serve_forever(load_settings(args.config))
    return 0
