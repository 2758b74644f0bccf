"""The package's layout, read from the source (the AST), not by importing it.

Layers: the core, data and evaluation never import an application, and the core imports neither the data loaders
nor evaluation code, so the trainer can be used (and read) without the CLI, the demo, the loaders or the Hub
tooling. No import circles: no module imports one that imports it back, directly or around a circle, at the top
of a module or inside a function (an import inside a function is a dodge of the circle, not its end), and the
applications' packages under hf_l2mt/apps/ import each other without a circle either. Every application has its
package: hf_l2mt/apps/ holds no module of its own but its ``__init__``. Modules stay under 400 lines."""

import ast
import pathlib
from collections import defaultdict

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "hf_l2mt"
# part -> the parts of hf_l2mt it must not import
FORBIDDEN = {"core": {"apps", "data", "evaluation"}, "data": {"apps", "evaluation"}, "evaluation": {"apps"}}
MAX_LINES = 400


def module_name(path: pathlib.Path, root: pathlib.Path) -> str:
    """``hf_l2mt.core.trainer`` for ROOT/core/trainer.py, ``hf_l2mt.core`` for ROOT/core/__init__.py."""
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(path: pathlib.Path, root: pathlib.Path) -> set[str]:
    """The absolute dotted names that the file at ``path`` imports, anywhere in it (at the top, inside a function
    or a class), relative imports resolved: ``from .x import y`` in package ``p`` gives ``p.x.y``."""
    name = module_name(path, root)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = [*base, *(node.module.split(".") if node.module else [])]
            names |= {".".join(module if alias.name == "*" else [*module, alias.name]) for alias in node.names}
    return names


def imported_parts(path: pathlib.Path) -> set[str]:
    """The first-level subpackages of hf_l2mt that ``path`` imports, absolute or relative."""
    return {name.split(".")[1] for name in imported_names(path, PACKAGE) if name.startswith(f"{PACKAGE.name}.")}


def import_graph(root: pathlib.Path) -> dict[str, set[str]]:
    """Each module of the package at ``root`` → the modules of that package it imports. ``from m import f``
    counts as importing ``m`` when ``m.f`` is no module; a package is its ``__init__``."""
    modules = {module_name(path, root) for path in root.rglob("*.py")}
    graph = {}
    for path in sorted(root.rglob("*.py")):
        name = module_name(path, root)
        targets = set()
        for imported in imported_names(path, root):
            while imported not in modules and "." in imported:
                imported = imported.rsplit(".", 1)[0]
            if imported in modules and imported != name:
                targets.add(imported)
        graph[name] = targets
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One circle per group of nodes that reach each other (a strongly connected component, Tarjan 1972), as the
    path from the group's first node back to it: ``[["a", "b", "a"]]`` for a ↔ b; ``[]`` when there is none."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = set()
            while node not in group:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
            if len(group) > 1:
                groups.append(group)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(circle_through(graph, group) for group in groups)


def circle_through(graph: dict[str, set[str]], group: set[str]) -> list[str]:
    """The shortest path from the group's first node back to it, inside the group (breadth first)."""
    start = min(group)
    paths = {target: [start, target] for target in sorted(graph[start] & group)}
    queue = list(paths)
    while start not in paths:
        node = queue.pop(0)
        for target in sorted(graph[node] & group):
            if target not in paths:
                paths[target] = [*paths[node], target]
                queue.append(target)
    return paths[start]


def application(module: str) -> str:
    """``hf_l2mt.apps.report`` for ``hf_l2mt.apps.report.page``: the application's package under hf_l2mt/apps/."""
    return ".".join(module.split(".")[:3])


def module_lengths() -> dict[str, int]:
    return {path.relative_to(PACKAGE).as_posix(): len(path.read_text(encoding="utf-8").splitlines())
            for path in sorted(PACKAGE.rglob("*.py"))}


@pytest.mark.parametrize("part", sorted(FORBIDDEN))
def test_lower_layers_never_import_higher_ones(part):
    offenders = {
        str(path.relative_to(PACKAGE.parent)): sorted(imported_parts(path) & FORBIDDEN[part])
        for path in sorted((PACKAGE / part).rglob("*.py"))
    }
    assert {path: bad for path, bad in offenders.items() if bad} == {}


def test_the_check_sees_relative_and_absolute_imports(tmp_path, monkeypatch):
    probe = PACKAGE / "core" / "regularizers" / "l2sp.py"
    source = "from ...apps import cli\nfrom ..trainer import L2MTTrainer\nimport hf_l2mt.evaluation.metrics\n"
    monkeypatch.setattr(pathlib.Path, "read_text", lambda self, encoding=None: source)
    assert imported_parts(probe) == {"apps", "core", "evaluation"}


def test_no_module_imports_itself_around_a_circle():
    assert find_cycles(import_graph(PACKAGE)) == []


def test_the_applications_import_each_other_without_a_circle():
    applications = defaultdict(set)
    for module, targets in import_graph(PACKAGE).items():
        if module.startswith(f"{PACKAGE.name}.apps."):
            applications[application(module)] |= {
                application(target) for target in targets
                if target.startswith(f"{PACKAGE.name}.apps.") and application(target) != application(module)
            }
    assert find_cycles(applications) == []


def test_every_application_has_its_package():
    assert sorted(path.name for path in (PACKAGE / "apps").glob("*.py")) == ["__init__.py"]


def test_the_circle_check_finds_a_circle_through_relative_absolute_and_function_level_imports(tmp_path):
    root = tmp_path / "pkg"
    (root / "sub").mkdir(parents=True)
    files = {
        "__init__.py": "",
        "a.py": "import pkg.sub.b\n",  # absolute, at the top
        "sub/__init__.py": "",
        "sub/b.py": "def late():\n    from ..a import THING\n",  # relative, inside a function
        "sub/c.py": "from . import b\nfrom .. import a\nimport os\n",  # imports the circle, is not in it
    }
    for name, text in files.items():
        (root / name).write_text(text, encoding="utf-8")
    graph = import_graph(root)
    assert graph["pkg.sub.c"] == {"pkg.sub.b", "pkg.a"}
    assert find_cycles(graph) == [["pkg.a", "pkg.sub.b", "pkg.a"]]
    (root / "sub" / "b.py").write_text("def late():\n    import os\n", encoding="utf-8")
    assert find_cycles(import_graph(root)) == []


def test_a_circle_of_three_is_reported_as_its_path():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set()}
    assert find_cycles(graph) == [["a", "b", "c", "a"]]


def test_every_module_is_under_400_lines():
    too_long = {path: lines for path, lines in module_lengths().items() if lines >= MAX_LINES}
    assert too_long == {}

