"""The ``xvertnet`` command: one subcommand per workflow stage (:mod:`xvertnet.stages`).

Rules call these subcommands; the same commands serve a user outside Snakemake.
Diagnostics go to the log (stderr), Python warnings as one line each; an expected failure
(any :class:`~xvertnet.errors.XvertnetError`, or an ``OSError`` naming a file) prints one line
(``xvertnet <command>: error: <what>: <why>``) and exits with 2. Only a bug shows a traceback.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import logging
import os
import sys
import warnings

from xvertnet.errors import XvertnetError
from xvertnet.io.atomic import disk_full_reason
from xvertnet.stages import COMMANDS, module_name


def _warning_as_one_line(message, category, filename, lineno, file=None, line=None) -> None:
    """``warnings.showwarning`` of the command: the category and the message, whitespace folded, as one log
    line of logger ``py.warnings`` (no file, line number or source line; a multi-line message stays one line)."""
    text = " ".join(str(message).split())
    logging.getLogger("py.warnings").warning("%s: %s", category.__name__, text)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only ``command``'s stage module is imported (torch is not loaded for ``--help``)."""
    from xvertnet import __version__

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


def _unraisable_as_one_line(unraisable) -> None:
    """``sys.unraisablehook`` of the command. An error a library raises while freeing an object (h5py closing a
    dataset of a file that just ran out of space) is a consequence of the failure the command reports: shown at
    debug level when it is the same disk-full, else as one warning line (never a traceback)."""
    error = unraisable.exc_value
    text = " ".join(f"{type(error).__name__}: {error}".split())
    level = logging.DEBUG if disk_full_reason(error) else logging.WARNING
    logging.getLogger("xvertnet").log(level, "ignored while cleaning up: %s", text)


def _configure_logging() -> None:
    """One stderr handler whose format turns Python warnings into one line; set before any stage module is
    imported, so warnings raised while importing (torch, ...) are one line too."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    warnings.showwarning = _warning_as_one_line


def _is_damaged_hdf5(error: OSError) -> bool:
    """h5py's error for a chunk whose checksum or compression filter fails (a damaged cache read outside the shard
    reader, which names the file itself)."""
    text = str(error)
    return "filter returned failure" in text or "Can't synchronously read data" in text or "Fletcher32" in text


def _fail(command: str, message: str) -> int:
    print(f"xvertnet {command}: error: {' '.join(str(message).split())}", file=sys.stderr)
    return 2


def main(argv=None) -> int:
    """Run ``xvertnet argv``; the exit code. Called as the program (``argv`` None) after HDF5 failed to write (a
    disk filled behind the free-space check, :mod:`xvertnet.io.shard_store`), the process ends at once with that code:
    HDF5's own shutdown would crash on the file it could not close."""
    code = _run(argv)
    store = sys.modules.get("xvertnet.io.shard_store")
    if argv is None and store is not None and store.HDF5_STATE.broken:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _run(argv) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((arg for arg in argv if arg in COMMANDS), None)
    _configure_logging()
    args = build_parser(command).parse_args(argv)
    if args.verbose:
        logging.getLogger().setLevel(logging.DEBUG)
    previous_hook, sys.unraisablehook = sys.unraisablehook, _unraisable_as_one_line
    try:
        return args.run(args)
    except XvertnetError as error:
        return _fail(args.command, str(error))
    except OSError as error:
        if error.filename is None and _is_damaged_hdf5(error):
            return _fail(
                args.command,
                f"a cached HDF5 file is damaged ({' '.join(str(error).split())}): `xvertnet verify "
                "results` lists the damaged files and the command that rebuilds each",
            )
        if error.filename is None:  # nothing names a file: not an expected failure, the traceback is the report
            raise
        what = error.filename if error.filename2 is None else f"{error.filename} -> {error.filename2}"
        why = error.strerror or str(error)
        return _fail(args.command, f"{what}: {why[:1].lower()}{why[1:]}")
    finally:
        gc.collect()  # objects freed late still fail under the command's hook
        sys.unraisablehook = previous_hook


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
