"""Command ``xvertnet docs-tables``: copy result tables from the runs that made them into ``docs/tables``.

Each docs table is a run output copied verbatim (its first line names the command, the commit and the
machine) with a record of its source and digest (:mod:`xvertnet.reporting.docs_tables`). ``--check``
copies nothing and lists every docs table that is not such a copy (exit 1 if any), then, as notes, the
tables whose run at hand was made at another commit or machine and has other numbers. ``--list`` prints every
docs table with the run output it is copied from and the command that makes it.
"""

from __future__ import annotations

from pathlib import Path


def add_arguments(parser) -> None:
    parser.add_argument("names", nargs="*", help="tables to copy (default: every one whose run output is at hand)")
    parser.add_argument("--repo", type=Path, default=Path("."), help="the repository (default: here)")
    parser.add_argument("--check", action="store_true", help="check the docs tables instead of copying")
    parser.add_argument("--list", action="store_true", help="print each docs table, its source and its command")


def run(args) -> int:
    import logging

    from xvertnet.reporting.docs_tables import DOCS_TABLES, copy_tables, table_problems, tables_behind_runs

    log = logging.getLogger("xvertnet")
    if args.list:
        for name, (source, command) in DOCS_TABLES.items():
            print(f"{name}\t{source}\t{command}")
        return 0
    if args.check:
        problems = table_problems(args.repo)
        for problem in problems:
            log.error("%s", problem)
        for note in tables_behind_runs(args.repo):
            log.info("%s", note)
        return 1 if problems else 0
    unknown = sorted(set(args.names) - set(DOCS_TABLES))
    if unknown:
        from xvertnet.errors import InvalidValueError

        raise InvalidValueError(f"docs-tables: unknown tables {unknown} (known: {', '.join(DOCS_TABLES)})")
    copied = copy_tables(args.repo, args.names or None)
    log.info("copied into docs/tables: %s", ", ".join(copied) or "nothing (no run output at hand)")
    return 0
