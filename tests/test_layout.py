"""The package's layers: the core, data and evaluation never import an application, and the core imports neither
the data loaders nor evaluation code, so the trainer can be used (and read) without the CLI, the demo, the loaders
or the Hub tooling."""

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "hf_l2mt"
# part -> the parts of hf_l2mt it must not import
FORBIDDEN = {"core": {"apps", "data", "evaluation"}, "data": {"apps", "evaluation"}, "evaluation": {"apps"}}


def imported_parts(path: pathlib.Path) -> set[str]:
    """The first-level subpackages of hf_l2mt that ``path`` imports, absolute or relative."""
    module = path.relative_to(PACKAGE.parent).with_suffix("").parts
    package = module[:-1] if path.name != "__init__.py" else module[:-1]
    parts = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = [*base, *(node.module.split(".") if node.module else [])]
                names = [[*target, alias.name] for alias in node.names] if not node.module else [target]
            else:
                names = [node.module.split(".")] if node.module else []
        elif isinstance(node, ast.Import):
            names = [alias.name.split(".") for alias in node.names]
        else:
            continue
        parts |= {name[1] for name in names if len(name) > 1 and name[0] == "hf_l2mt"}
    return parts


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
