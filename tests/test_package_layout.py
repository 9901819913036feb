"""The package's layout: subpackages on floors in the order data flows, no import running back up, no circle."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

from repo_paths import REPO

PACKAGE = REPO / "src" / "xvertnet"
#: Floors from the bottom: a module may import from its own floor and the floors below, never from one above.
#: ``base`` are the top-level modules everything uses (errors, settings, config, provenance, the method catalogue);
#: ``top`` the stages, the planner and the command line.
FLOORS = (
    "base",
    "io",
    "demo",
    "preprocessing",
    "metrics",
    "model",
    "methods",
    "evaluation",
    "reporting",
    "serving",
    "top",
)
TOP = {"stages", "plan", "cli", "__main__"}


def floor_of(parts: list[str]) -> int:
    head = parts[0]
    if head in TOP:
        return FLOORS.index("top")
    if head in FLOORS:
        return FLOORS.index(head)
    assert (PACKAGE / f"{head}.py").is_file(), f"xvertnet.{'.'.join(parts)}: not a module of the package"
    return FLOORS.index("base")


def module_name(path: Path) -> str:
    """``io.readers`` for src/xvertnet/io/readers.py, ``io`` for its package, ``__init__`` for the package itself."""
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" and len(parts) > 1 else parts)


@functools.cache
def known_modules() -> frozenset[str]:
    return frozenset(module_name(p) for p in PACKAGE.rglob("*.py"))


def project_imports(path: Path) -> set[str]:
    """Modules of the package (dotted, without the leading ``xvertnet.``) that one file imports, anywhere in it."""
    known = known_modules()
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("xvertnet."):
            base = node.module.removeprefix("xvertnet.")
            found |= {f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in known} or {base}
        elif isinstance(node, ast.Import):
            found |= {
                alias.name.removeprefix("xvertnet.") for alias in node.names if alias.name.startswith("xvertnet.")
            }
    return found


def import_graph() -> dict[str, set[str]]:
    return {module_name(path): project_imports(path) for path in sorted(PACKAGE.rglob("*.py"))}


def test_every_module_sits_in_a_subpackage_by_concern_or_is_one_of_the_few_at_the_top():
    top_level = sorted(p.stem for p in PACKAGE.glob("*.py"))
    assert top_level == [
        "__init__",
        "__main__",
        "cli",
        "config",
        "environment",
        "errors",
        "method_catalogue",
        "plan",
        "provenance",
        "settings",
    ]
    subpackages = sorted(p.parent.name for p in PACKAGE.glob("*/__init__.py"))
    assert subpackages == sorted(set(FLOORS) - {"base", "top"} | {"stages"})


def test_no_relative_imports_and_no_import_running_back_up():
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text())
        relative = [node.lineno for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level]
        assert not relative, f"{path.relative_to(REPO)}:{relative[0]}: a relative import"
        name = module_name(path)
        here = floor_of(name.split("."))
        for imported in project_imports(path):
            if floor_of(imported.split(".")) > here:
                upward.append(f"xvertnet.{name} ({FLOORS[here]}) imports xvertnet.{imported}")
    assert not upward, "\n".join(upward)


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import circles of ``graph`` (module -> modules it imports): its strongly connected components of more than
    one module (Tarjan)."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in graph or target == node:
                continue
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_no_circle_between_modules():
    assert circles(import_graph()) == []


def test_the_checks_see_an_upward_import_and_a_circle(tmp_path):
    """The layout checks above are not blind: an upward import and a two-module circle are found."""
    assert floor_of(["io", "readers"]) < floor_of(["model", "network"]) < floor_of(["stages", "enhance"])
    assert floor_of(["errors"]) == 0
    source = tmp_path / "example.py"
    source.write_text("from xvertnet.io.readers import read_image\nimport xvertnet.model.network\n")
    assert project_imports(source) == {"io.readers", "model.network"}
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def parameter_count(function: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Parameters a caller can pass (``self`` and ``cls`` not counted; ``*args`` and ``**kwargs`` one each)."""
    arguments = function.args
    names = [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]
    count = len(names) + (arguments.vararg is not None) + (arguments.kwarg is not None)
    return count - (bool(names) and names[0].arg in ("self", "cls"))


def test_no_function_takes_more_than_eight_parameters():
    """A function that needs more takes a settings object (a dataclass of what belongs together)."""
    too_many = [
        f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name} ({parameter_count(node)})"
        for path in sorted(PACKAGE.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and parameter_count(node) > 8
    ]
    assert not too_many, too_many


def test_the_parameter_count_counts_what_a_caller_passes():
    source = "class A:\n    def f(self, a, /, b, *rest, c, **more): pass\ndef g(a, b=1): pass\n"
    tree = ast.parse(source)
    counts = {node.name: parameter_count(node) for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}
    assert counts == {"f": 5, "g": 2}
