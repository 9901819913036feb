"""The ``xvertnet`` command: one subcommand per workflow stage (:mod:`xvertnet.stages`).

Rules call these subcommands; the same commands serve a user outside Snakemake.
Diagnostics go to the log (stderr); an expected failure prints one line
(``xvertnet <command>: error: <what>: <why>``) and exits with 2.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from .errors import XvertnetError
from .stages import COMMANDS, module_name


class _OneLineWarnings(logging.Formatter):
    """Python warnings as one log line (category and message, no source line)."""

    def format(self, record):
        if record.name == "py.warnings":
            text = record.getMessage().strip().splitlines()
            record.msg, record.args = (text[0].split(": ", 1)[-1] if text else ""), None
        return super().format(record)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only ``command``'s stage module is imported (torch is not loaded for ``--help``)."""
    from . import __version__

    parser = argparse.ArgumentParser(prog="xvertnet", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"xvertnet {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True, metavar="command")
    for name, help_text in COMMANDS.items():
        sub = commands.add_parser(name, help=help_text, description=help_text)
        if name == command:
            stage = importlib.import_module(module_name(name))
            stage.add_arguments(sub)
            sub.set_defaults(run=stage.run)
    return parser


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((arg for arg in argv if arg in COMMANDS), None)
    args = build_parser(command).parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLineWarnings("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, handlers=[handler])
    logging.captureWarnings(True)
    try:
        return args.run(args)
    except XvertnetError as error:
        print(f"xvertnet {args.command}: error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
