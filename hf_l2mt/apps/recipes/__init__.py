"""The recipes, one module per language pair or task; each defines ``CONFIG`` and ``main(argv=None)``.

They live in the package so that ``hf-l2mt train NAME`` works wherever hf_l2mt is installed;
``recipes/NAME.py`` in the repository are the scripts that ``accelerate launch`` runs.
"""

import ast
import importlib
import importlib.util
import pkgutil


def recipe_names() -> list[str]:
    return sorted(module.name for module in pkgutil.iter_modules(__path__) if not module.name.startswith("_"))


def recipe_summary(name: str) -> str:
    """First line of the recipe's docstring, read without importing it (imports load torch)."""
    spec = importlib.util.find_spec(f"{__name__}.{name}")
    with open(spec.origin, encoding="utf-8") as handle:
        docstring = ast.get_docstring(ast.parse(handle.read())) or ""
    return docstring.split("\n", 1)[0]


def load_recipe(name: str):
    """The recipe module ``name``; an unknown name raises ``ValueError`` listing the recipes."""
    if name not in recipe_names():
        raise ValueError(f"recipe {name!r} does not exist; accepted: {', '.join(recipe_names())}")
    return importlib.import_module(f"{__name__}.{name}")
