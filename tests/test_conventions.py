"""Workflow conventions: the conda environment matches the pins, every rule is complete, the lint passes."""

from __future__ import annotations

import re
import tomllib

import yaml
from repo_paths import REPO


def test_conda_environment_pins_equal_pyproject():
    pins = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    environment = yaml.safe_load((REPO / "envs/xvertnet.yaml").read_text())
    pip = next(entry["pip"] for entry in environment["dependencies"] if isinstance(entry, dict))
    assert sorted(pip) == sorted(pins)
    python = next(
        entry for entry in environment["dependencies"] if isinstance(entry, str) and entry.startswith("python=")
    )
    assert python == "python=3.11"


def test_every_rule_has_conda_benchmark_log_threads_and_a_matching_stage_module():
    from xvertnet.stages import COMMANDS

    targets = {"all", "study", "study_images"}
    for path in sorted((REPO / "workflow/rules").glob("*.smk")):
        text = path.read_text()
        for match in re.finditer(r"^(?:rule|checkpoint) (\w+):\n((?:    .*\n|\n)*)", text, re.MULTILINE):
            name, body = match.groups()
            if name in targets:
                continue
            for directive in ("conda:", "benchmark:", "log:", "threads: threads(", "code=code_fingerprint("):
                assert directive in body, f"{path.name}: rule {name} lacks {directive}"
            assert f'threads("{name}")' in body and f'code_fingerprint("{name}")' in body, name
            assert name.replace("_", "-") in COMMANDS, f"rule {name} has no subcommand of its name"
            assert (REPO / "src/xvertnet/stages" / f"{name}.py").is_file(), f"rule {name} has no stage module"
            assert f"python -m xvertnet {name.replace('_', '-')} " in body, (
                f"rule {name} does not run its own subcommand"
            )
            if "--manifests" in body:  # a rule that reads the manifests reruns when one changes
                inputs = body.split("    input:\n", 1)[-1].split("    output:\n", 1)[0]
                assert re.search(r"manifests=\w*manifest_files,", inputs), (
                    f"rule {name} reads the manifests but lacks them as input"
                )


def test_project_files_for_users_and_citation():
    assert "MIT License" in (REPO / "LICENSE").read_text()
    citation = yaml.safe_load((REPO / "CITATION.cff").read_text())
    assert citation["cff-version"] and citation["title"] and citation["references"]
    assert (REPO / "CHANGELOG.md").read_text().startswith("# Changelog")


#: ``raise ValueError`` kept for programming errors no setting or input can reach: a method returning the wrong
#: shape, a method name registered twice, the losses' tensor and argument checks (TrainConfig checks the settings
#: first), a rule naming no module.
PROGRAMMING_GUARDS = {"methods/__init__.py": 2, "model/losses.py": 10, "provenance.py": 1}


def test_every_expected_error_is_an_xvertnet_error():
    # The command line turns an XvertnetError into one line; a plain ValueError would reach a user as a traceback.
    found = {}
    for path in sorted((REPO / "src/xvertnet").rglob("*.py")):
        count = len(re.findall(r"raise ValueError\(", path.read_text()))
        if count:
            found[path.relative_to(REPO / "src/xvertnet").as_posix()] = count
    assert found == PROGRAMMING_GUARDS


def test_adding_a_command_reruns_no_stage():
    # The fingerprint of a stage covers what it imports; stages/__init__.py (the command list) must not be part of it.
    from xvertnet.provenance import imported_modules
    from xvertnet.stages import COMMANDS, module_name

    for command in COMMANDS:
        files = {path.as_posix() for path in imported_modules(module_name(command))}
        assert not any(path.endswith("stages/__init__.py") for path in files), command


def test_no_rules_stage_depends_on_the_planner():
    # A stage's code fingerprint covers every project module it imports; were the planner among them, each
    # edit of the planning code would rerun that stage on every image.
    from xvertnet.provenance import imported_modules

    for path in sorted((REPO / "src/xvertnet/stages").glob("*.py")):
        if path.stem.startswith("_") or path.stem == "check_config":  # check_config validates the plan itself
            continue
        names = {module.name for module in imported_modules(f"xvertnet.stages.{path.stem}")}
        assert "plan.py" not in names, f"stage {path.stem} imports the planner"


def test_the_readme_is_one_screen_and_its_links_resolve():
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    targets = re.findall(r"\]\(([^)#\s]+)", readme)
    assert targets and all((REPO / target).exists() for target in targets if "://" not in target), targets


def test_code_and_docs_cite_no_issue_numbers_and_no_files_outside_the_repository():
    outside = "|".join(name + r"\.md" for name in ("METRICS", "METHOD", "DESIGN", "EVALUATION", "STYLE"))
    pattern = re.compile(r"\b[Ii]ssue\s+#?\d+|" + outside)
    files = [REPO / "README.md", REPO / "Snakefile", *REPO.glob("*.yaml"), *(REPO / "docs").glob("*.md")]
    for folder in ("src", "workflow", "tests", "benchmarks"):
        files += [path for path in (REPO / folder).rglob("*") if path.suffix in (".py", ".smk", ".yaml", ".rst", ".md")]
    found = [
        f"{path.relative_to(REPO)}: {match.group(0)}"
        for path in files
        if "egg-info" not in str(path)
        for match in pattern.finditer(path.read_text(errors="replace"))
    ]
    assert not found, found


def test_every_results_table_in_the_docs_is_a_faithful_copy_of_its_run():
    """Result tables are run outputs copied by `xvertnet docs-tables`, headed by their commit and machine, included
    by their pages, never pasted or edited; where the run output is at hand, the two are the same."""
    from xvertnet.reporting.docs_tables import table_problems

    assert table_problems(REPO) == []
