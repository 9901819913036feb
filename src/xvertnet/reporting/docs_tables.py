"""Result tables in the documentation are copies of a run's own output, never typed.

Every table of results a docs page shows lives in ``docs/tables/<name>.md`` and is pulled into its
page with a snippet line (``--8<-- "tables/<name>.md"``, pymdownx.snippets). ``xvertnet
docs-tables`` fills that folder from the run outputs listed in :data:`DOCS_TABLES`: each output
starts with the line its command wrote (``Made by `<command>` at commit <hash> on <machine>``,
:func:`xvertnet.provenance.made_by`), and the copy ends with an invisible record of where it came
from and the SHA-256 of what was copied. :func:`table_problems` is the check the test suite runs:
a docs table without that header, whose text no longer matches its recorded digest (edited by
hand), whose numbers differ from the run output at hand when that output names the same commit and
machine (the run the copy names, rerun: on one machine a rerun is bit-identical), that no page
includes, or a page that pastes a table whose header row is a generated table's, is a problem.

A run at hand made at another commit or on another machine is not the run the copy names: its learned
columns differ within the spread of training seeds (the same seed ends at other weights with other
vector kernels), so a difference there is not a fault of the docs. :func:`tables_behind_runs` lists
those copies, for ``xvertnet docs-tables --check`` to report, and ``make docs-tables`` to copy when that
run should be the docs' one.
"""

from __future__ import annotations

import hashlib
import re
import shlex
import sys
from pathlib import Path

from xvertnet.errors import InputFileError
from xvertnet.io.atomic import atomic_path

#: name in docs/tables -> (the run output it is copied from, relative to the repository; the command that makes it)
DOCS_TABLES = {
    "comparison": ("results/tables/comparison.md", "make demo"),
    "drr-realism": ("results/benchmarks/drr_realism.md", "python benchmarks/drr_realism.py"),
    "detectability": ("results/detectability/detectability.md", "make detectability"),
    "detectability-validation": ("results/detectability/validation.md", "make detectability"),
    "patient-evaluation": ("results/evaluate/summary.md", "make evaluate"),
    "design-study": ("results/runs/study/study/observer/summary.md", "make study"),
    "lut-mapping-table": ("results/tables/lut_mapping_table.md", "make lut-table"),
    "led": ("results/led/led.md", "make led"),
    "comparison-led": ("results/tables/comparison_led.md", "make led"),
    "super-resolution": ("results/tables/super_resolution.md", "make sr-table"),
    "dehazing": ("results/tables/dehazing.md", "make sr-table"),
    "comparison-sr": ("results/tables/comparison_sr.md", "make sr-table"),
    "stage-memory-montgomery": (
        "results/benchmarks/stage_memory_montgomery.md",
        "python benchmarks/stage_memory.py --markdown results/benchmarks/stage_memory_montgomery.md",
    ),
    "stage-memory-paper-model": (
        "results/benchmarks/stage_memory_paper_model.md",
        "python benchmarks/stage_memory.py --images 2 --base-width 64 --depth 4 "
        "--markdown results/benchmarks/stage_memory_paper_model.md",
    ),
    "stage-memory-nih": (
        "results/benchmarks/stage_memory_nih.md",
        "python benchmarks/stage_memory.py --height 1024 --width 1024 --markdown results/benchmarks/stage_memory_nih.md",
    ),
    "wls-solvers": (
        "results/benchmarks/wls.md",
        "python benchmarks/wls.py --solvers fast amg direct spsolve --markdown results/benchmarks/wls.md",
    ),
    "whole-image": (
        "results/benchmarks/whole_image.md",
        "python benchmarks/whole_image.py --full --markdown results/benchmarks/whole_image.md",
    ),
    "train-infer": (
        "results/benchmarks/train_infer.md",
        "python benchmarks/train_infer.py --markdown results/benchmarks/train_infer.md",
    ),
    "metrics-memory": (
        "results/benchmarks/metrics_memory.md",
        "python benchmarks/metrics_memory.py --markdown results/benchmarks/metrics_memory.md",
    ),
    "vertebra-labels": (
        "results/benchmarks/vertebra_labels.md",
        "python benchmarks/vertebra_labels.py --markdown results/benchmarks/vertebra_labels.md",
    ),
    "dicom-node-load": (
        "results/benchmarks/dicom_node.md",
        "python benchmarks/dicom_node.py --markdown results/benchmarks/dicom_node.md",
    ),
    "observer-validation": (
        "results/benchmarks/observer_validation.md",
        "python benchmarks/observer_validation.py --markdown results/benchmarks/observer_validation.md",
    ),
    "dag-scale": (
        "results/benchmarks/dag_scale.md",
        "python benchmarks/dag_scale.py --markdown results/benchmarks/dag_scale.md",
    ),
    "methods-timing": (
        "results/benchmarks/methods.md",
        "python benchmarks/methods.py --methods clahe farbman zerodce zssr madmad lut-mapping --models "
        "results/models/xvertnet-paper/iter1 results/models/xvertnet-paper/iter2 --markdown results/benchmarks/methods.md",
    ),
    "methods-timing-others": (
        "results/benchmarks/methods_others.md",
        "python benchmarks/methods.py --short-training --methods clahe lut-mapping lut-mapping-bone srcnn vdsr "
        "vdsr-dehaze led --models src/xvertnet/models/xvertnet/iter1 --markdown results/benchmarks/methods_others.md",
    ),
}
#: Columns of the comparison tables that no training touches: they reproduce to the digit on any machine and at any
#: commit that does not change their code, so a run at hand that differs there is a problem wherever it was made.
UNTRAINED_COLUMNS = ("original", "clahe", "farbman")
COMPARISON_TABLES = ("comparison", "comparison-led", "comparison-sr")
HEADER = re.compile(r"^(# [^\n]*\n\n)?Made by `[^`]+` at commit [0-9a-f]{7,40}(\+changes)?[^\n]* on [^\n]+")
RECORD = re.compile(
    r"\n<!-- copied from (?P<source>\S+) by `xvertnet docs-tables` \(made by `(?P<command>[^`]+)`\); "
    r"sha256 (?P<digest>[0-9a-f]{64}) -->\n$"
)


def write_run_table(path, command: str, text: str) -> Path:
    """Write a benchmark's or a run's table to ``path`` (atomically), headed by the line the docs check for:
    ``command`` (as the user typed it), the commit and the machine (:func:`xvertnet.provenance.made_by`)."""
    from xvertnet.provenance import made_by

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        Path(tmp).write_text(made_by(command.strip()) + "\n\n" + text.rstrip("\n") + "\n")
    return path


def benchmark_command(argv: list[str] | None = None) -> str:
    """How a benchmark script was called (``python benchmarks/<script> <arguments>``), for its table's header line."""
    argv = sys.argv if argv is None else argv
    return shlex.join(["python", f"benchmarks/{Path(argv[0]).name}", *argv[1:]])


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def copied_text(source_text: str, source: str, command: str) -> str:
    """The docs copy of a run output: the output verbatim, then the record of where it came from."""
    body = source_text if source_text.endswith("\n") else source_text + "\n"
    return (
        body
        + f"\n<!-- copied from {source} by `xvertnet docs-tables` (made by `{command}`); sha256 {_digest(body)} -->\n"
    )


def copy_tables(repo, names=None) -> list[str]:
    """Copy the run outputs of ``names`` (default: every one at hand) into ``docs/tables``; the names copied.
    A named output that is missing, or was not headed by its command's commit line, is refused."""
    repo = Path(repo)
    copied = []
    for name, (source, command) in DOCS_TABLES.items():
        path = repo / source
        if names is None and not path.is_file():
            continue
        if names is not None and name not in names:
            continue
        if not path.is_file():
            raise InputFileError(str(path), f"not found: run `{command}` first")
        text = path.read_text()
        if not HEADER.match(text):
            raise InputFileError(str(path), "does not start with the 'Made by ... at commit ... on ...' line")
        with atomic_path(repo / "docs" / "tables" / f"{name}.md") as tmp:
            Path(tmp).write_text(copied_text(text, source, command))
        copied.append(name)
    return copied


def _copied_body(text: str) -> str:
    """A docs copy without its record of where it came from: the run output as copied."""
    record = RECORD.search(text)
    return text[: record.start()] if record else text


def _made_at(text: str) -> tuple[str, str] | None:
    """The commit and the machine a table's 'Made by' line names (None without one)."""
    match = re.match(r"^(?:# [^\n]*\n\n)?Made by `[^`]+` at commit (\S+) on ([^\n]+?)\.?$", text, re.MULTILINE)
    return (match[1], match[2]) if match else None


def _untrained_cells(text: str) -> dict:
    """The numbers of the untrained columns (:data:`UNTRAINED_COLUMNS`) of a comparison table, by measure and method;
    rows of a trained task (a segmenter, a classifier) left out, and the marks of the best and of significance,
    which depend on the other columns, ignored."""
    lines = [line for line in text.splitlines() if line.startswith("|")]
    if len(lines) < 2:
        return {}
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    if "measure" not in header:
        return {}
    measure_at = header.index("measure")
    cells = {}
    for line in lines[2:]:
        row = [cell.strip() for cell in line.strip("|").split("|")]
        if len(row) != len(header) or row[measure_at].startswith(("segmentation", "classifier")):
            continue
        for method in UNTRAINED_COLUMNS:
            if method in header:
                key = (row[0], row[measure_at], method)
                cells[key] = re.findall(r"-?\d+(?:\.\d+)?(?:e-?\d+)?", row[header.index(method)])
    return cells


def _numbers(text: str) -> str:
    """A table's text without its 'Made by' line: a run at another commit with the same numbers agrees with it."""
    match = HEADER.match(text)
    if not match:
        return text.strip()
    return ((match.group(1) or "") + text[match.end() :]).strip()


def _table_header_rows(text: str) -> list[str]:
    """The header row of every Markdown table in ``text`` (the line above a ``|---`` line)."""
    lines = text.splitlines()
    return [lines[i - 1].strip() for i, line in enumerate(lines) if i and re.match(r"^\|\s*:?-{3,}", line)]


def table_problems(repo) -> list[str]:
    """Everything that makes a docs table other than a faithful copy of its run (module docstring)."""
    repo = Path(repo)
    docs = repo / "docs"
    pages = {path: path.read_text() for path in docs.glob("*.md")}
    problems = []
    for name, (source, command) in DOCS_TABLES.items():
        copy = docs / "tables" / f"{name}.md"
        if not copy.is_file():
            problems.append(f"docs/tables/{name}.md: missing (run `{command}`, then `xvertnet docs-tables`)")
            continue
        text = copy.read_text()
        record = RECORD.search(text)
        body = text[: record.start()] if record else text
        if not HEADER.match(text):
            problems.append(f"docs/tables/{name}.md: no 'Made by `...` at commit ... on ...' header")
        if not record or record["source"] != source:
            problems.append(f"docs/tables/{name}.md: no record of being copied from {source}")
        elif record["digest"] != _digest(body):
            problems.append(f"docs/tables/{name}.md: edited after it was copied from {source} (digest differs)")
        at_hand = repo / source
        if at_hand.is_file():
            run = at_hand.read_text()
            made_run = _made_at(run)
            if made_run is not None and made_run == _made_at(body) and _numbers(run) != _numbers(body):
                problems.append(
                    f"docs/tables/{name}.md: differs from {source} at hand, a rerun of the run it names "
                    "(copy it again: `make docs-tables`)"
                )
            elif name in COMPARISON_TABLES and made_run is not None:
                copied = _untrained_cells(body)
                moved = sorted(
                    f"{key[1]} / {key[2]}"
                    for key, numbers in _untrained_cells(run).items()
                    if copied.get(key, numbers) != numbers
                )
                if moved:
                    problems.append(
                        f"docs/tables/{name}.md: its untrained columns, which reproduce on any machine, differ from "
                        f"{source} at hand ({', '.join(moved[:3])}{' ...' if len(moved) > 3 else ''}): a change moved "
                        "them; copy it again (`make docs-tables`)"
                    )
        snippet = f'--8<-- "tables/{name}.md"'
        if not any(snippet in page for page in pages.values()):
            problems.append(f"docs/tables/{name}.md: no page includes it ({snippet})")
        rows = set(_table_header_rows(body))
        for path, page in pages.items():
            pasted = rows & set(_table_header_rows(page))
            if pasted:
                problems.append(f"docs/{path.name}: pastes a table of docs/tables/{name}.md instead of including it")
    return problems


def tables_behind_runs(repo) -> list[str]:
    """The docs tables whose run output at hand, made at another commit or on another machine, has other numbers
    (not a problem, :func:`table_problems`: a line each saying where each was made, for the user to decide)."""
    repo = Path(repo)
    notes = []
    for name, (source, _command) in DOCS_TABLES.items():
        copy, at_hand = repo / "docs" / "tables" / f"{name}.md", repo / source
        if not (copy.is_file() and at_hand.is_file()):
            continue
        body, run = _copied_body(copy.read_text()), at_hand.read_text()
        made_copy, made_run = _made_at(body), _made_at(run)
        if made_run is not None and made_run != made_copy and _numbers(run) != _numbers(body):
            notes.append(
                f"docs/tables/{name}.md (made at {made_copy[0] if made_copy else '?'} on "
                f"{made_copy[1] if made_copy else '?'}) differs from {source} at hand (made at {made_run[0]} on "
                f"{made_run[1]}); `make docs-tables` copies it if that run should be the docs' one"
            )
    return notes
