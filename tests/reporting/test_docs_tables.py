"""The docs' result tables: copies of run outputs, refused when typed, edited, stale, pasted or left out."""

from __future__ import annotations

import pytest

from xvertnet.errors import InputFileError
from xvertnet.reporting.docs_tables import DOCS_TABLES, copy_tables, table_problems, tables_behind_runs

OUTPUT = (
    "Made by `xvertnet tables` at commit 1a2b3c4 on x86_64, 2 CPU cores.\n\n"
    "| data set | measure | original | clahe |\n|---|---|---|---|\n| demo | Entropy ↑ | 5.4 | 6.4 |\n"
)


def _repo(tmp_path):
    """A repository with every run output at hand and pages that include every table."""
    for name, (source, _) in DOCS_TABLES.items():
        path = tmp_path / source
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(OUTPUT.replace("Entropy", f"Entropy of {name}"))
    (tmp_path / "docs").mkdir()
    includes = "".join(f'--8<-- "tables/{name}.md"\n\n' for name in DOCS_TABLES)
    (tmp_path / "docs" / "results.md").write_text("# Results\n\n" + includes)
    assert copy_tables(tmp_path) == list(DOCS_TABLES)
    return tmp_path


def test_copied_tables_pass_and_name_their_source_and_commit(tmp_path):
    repo = _repo(tmp_path)
    assert table_problems(repo) == []
    text = (repo / "docs/tables/comparison.md").read_text()
    assert text.startswith("Made by `xvertnet tables` at commit 1a2b3c4 on x86_64")
    assert "copied from results/tables/comparison.md by `xvertnet docs-tables` (made by `make demo`)" in text


def test_a_number_edited_by_hand_is_found(tmp_path):
    repo = _repo(tmp_path)
    copy = repo / "docs/tables/comparison.md"
    copy.write_text(copy.read_text().replace("| 6.4 |", "| 7.4 |"))
    (repo / "results/tables/comparison.md").unlink()  # as in CI: no run at hand, the digest still finds it
    assert table_problems(repo) == [
        "docs/tables/comparison.md: edited after it was copied from results/tables/comparison.md (digest differs)"
    ]


def test_a_docs_table_that_differs_from_a_rerun_of_the_run_it_names_is_found(tmp_path):
    repo = _repo(tmp_path)
    source = repo / "results/tables/comparison.md"
    source.write_text(source.read_text().replace("| 6.4 |", "| 6.5 |"))  # the same commit and machine, other numbers
    assert table_problems(repo) == [
        "docs/tables/comparison.md: differs from results/tables/comparison.md at hand, a rerun of the run it names "
        "(copy it again: `make docs-tables`)"
    ]
    copy_tables(repo, ["comparison"])
    assert table_problems(repo) == [] and tables_behind_runs(repo) == []


def test_a_run_at_another_commit_or_machine_is_a_note_not_a_problem(tmp_path):
    repo = _repo(tmp_path)
    source = repo / "results/tables/comparison.md"
    source.write_text(source.read_text().replace("1a2b3c4", "9f9f9f9"))  # another commit, the same numbers
    assert table_problems(repo) == [] and tables_behind_runs(repo) == []
    # a learned row (a segmenter's) that the copy does not have: the numbers differ, the untrained columns do not
    source.write_text(
        source.read_text().replace("2 CPU cores", "8 CPU cores") + "| demo | segmentation Dice ↑ | 0.5 | 0.6 |\n"
    )
    assert table_problems(repo) == []
    assert tables_behind_runs(repo) == [
        "docs/tables/comparison.md (made at 1a2b3c4 on x86_64, 2 CPU cores) differs from results/tables/comparison.md "
        "at hand (made at 9f9f9f9 on x86_64, 8 CPU cores); `make docs-tables` copies it if that run should be the "
        "docs' one"
    ]


def test_an_untrained_column_that_moved_is_a_problem_wherever_the_run_was_made(tmp_path):
    """CLAHE and the original reproduce on any machine: a run at another commit and machine that differs there means
    a change moved them; a learned column (here a segmentation row) moving is only a note."""
    repo = _repo(tmp_path)
    source = repo / "results/tables/comparison.md"
    elsewhere = source.read_text().replace("1a2b3c4", "9f9f9f9").replace("2 CPU cores", "8 CPU cores")
    source.write_text(elsewhere + "| demo | segmentation Dice ↑ | 0.5 | 0.6 |\n")
    copy_tables(repo, ["comparison"])
    source.write_text(elsewhere.replace("9f9f9f9", "5d6e7f8") + "| demo | segmentation Dice ↑ | 0.5 | **0.7*** |\n")
    assert table_problems(repo) == [] and len(tables_behind_runs(repo)) == 1
    source.write_text(source.read_text().replace("| 6.4 |", "| 6.41 |"))
    assert table_problems(repo) == [
        "docs/tables/comparison.md: its untrained columns, which reproduce on any machine, differ from "
        "results/tables/comparison.md at hand (Entropy of comparison ↑ / clahe): a change moved them; copy it again "
        "(`make docs-tables`)"
    ]


def test_a_pasted_table_and_a_table_no_page_includes_are_found(tmp_path):
    repo = _repo(tmp_path)
    page = repo / "docs/results.md"
    page.write_text(page.read_text().replace('--8<-- "tables/comparison.md"', OUTPUT.split("\n\n", 1)[1]))
    problems = table_problems(repo)
    assert 'docs/tables/comparison.md: no page includes it (--8<-- "tables/comparison.md")' in problems
    assert "docs/results.md: pastes a table of docs/tables/comparison.md instead of including it" in problems


def test_only_an_output_headed_by_its_commit_is_copied(tmp_path):
    repo = _repo(tmp_path)
    source = repo / "results/tables/comparison.md"
    source.write_text(OUTPUT.split("\n\n", 1)[1])  # typed, or written by a command that names no commit
    with pytest.raises(InputFileError, match="does not start with the 'Made by"):
        copy_tables(repo, ["comparison"])
    source.unlink()
    with pytest.raises(InputFileError, match="not found: run `make demo` first"):
        copy_tables(repo, ["comparison"])
    (repo / "docs/tables/comparison.md").write_text(OUTPUT.split("\n\n", 1)[1])
    assert "docs/tables/comparison.md: no 'Made by `...` at commit ... on ...' header" in table_problems(repo)


def test_a_benchmark_writes_a_table_the_docs_can_copy(tmp_path):
    """A benchmark's --markdown output starts with the line the docs check for (command, commit, machine)."""
    import subprocess
    import sys

    from repo_paths import REPO

    from xvertnet.reporting.docs_tables import HEADER

    out = tmp_path / "stage_memory.md"
    command = [sys.executable, str(REPO / "benchmarks" / "stage_memory.py"), "--images", "1", "--height", "300"]
    command += ["--width", "260", "--stages", "ingest", "--keep", str(tmp_path / "work"), "--markdown", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    text = out.read_text()
    assert HEADER.match(text) and "`python benchmarks/stage_memory.py --images 1" in text.splitlines()[0]
    assert "| stage | peak memory | per input pixel | wall time | per image |" in text and "\n| ingest | " in text


def test_a_benchmark_names_itself_as_the_user_typed_it():
    from xvertnet.reporting.docs_tables import benchmark_command

    argv = ["/somewhere/benchmarks/wls.py", "--sizes", "512", "--markdown", "out dir/wls.md"]
    assert benchmark_command(argv) == "python benchmarks/wls.py --sizes 512 --markdown 'out dir/wls.md'"


def test_the_list_prints_every_docs_table_with_its_source_and_command(capsys):
    from xvertnet.cli import main

    assert main(["docs-tables", "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t") for line in lines] == [[name, *entry] for name, entry in DOCS_TABLES.items()]
