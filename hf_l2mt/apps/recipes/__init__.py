"""``hf-l2mt train``: the recipe runner and the recipes, one module per language pair or task; each recipe defines
``CONFIG`` and ``main(argv=None)``, which calls the runner.

The runner is ``runner`` (``run``), with its flags in ``arguments`` (apart, so that ``--help`` imports no
transformers), the end-of-run comparison with the starting model in ``base_comparison`` and the models between
the start and the end (``interpolate_after``) in ``interpolation``. The recipes live in
the package so that ``hf-l2mt train NAME`` works wherever hf_l2mt is installed; ``recipes/NAME.py`` in the
repository are the scripts that ``accelerate launch`` runs. This module lists and reads them.
"""

import ast
import importlib
import importlib.util
import pkgutil


# The runner's own modules, beside the recipes that call it: not recipes.
RUNNER_MODULES = ("arguments", "base_comparison", "interpolation", "runner")


def recipe_names() -> list[str]:
    return sorted(module.name for module in pkgutil.iter_modules(__path__)
                  if not module.name.startswith("_") and module.name not in RUNNER_MODULES)


RUNNER = "hf_l2mt.apps.recipes.runner"
# The only main() read_recipe reads: the recipe is its CONFIG and docstring, given to the runner.
STANDARD_MAIN = "def main(argv=None):\n    return run(CONFIG, argv, description=__doc__)"


def recipe_file(name: str) -> str:
    """The path of the recipe module ``name``, without importing it."""
    return importlib.util.find_spec(f"{__name__}.{name}").origin


def recipe_summary(name: str) -> str:
    """First line of the recipe's docstring, read without importing it (imports load torch)."""
    with open(recipe_file(name), encoding="utf-8") as handle:
        docstring = ast.get_docstring(ast.parse(handle.read())) or ""
    return docstring.split("\n", 1)[0]


def read_recipe(path: str) -> tuple[dict, str | None] | None:
    """``(CONFIG, __doc__)`` of the recipe file at ``path``, read without running it (running it imports
    transformers), for ``hf-l2mt train RECIPE --help``.

    Only a file made of a docstring, ``from hf_l2mt.apps.recipes.runner import run``, imports of other recipes'
    ``CONFIG``, one ``CONFIG = {...}`` of literals (or of ``**`` such an imported ``CONFIG``), the standard
    ``main`` and ``if __name__ == "__main__": main()`` is read; ``None`` for any other file.
    """
    with open(path, encoding="utf-8") as handle:
        tree = ast.parse(handle.read())
    imported, config, has_main = {}, None, False
    for position, node in enumerate(tree.body):
        if position == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module == RUNNER:
            if [(alias.name, alias.asname) for alias in node.names] != [("run", None)]:
                return None
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith(f"{__name__}."):
            if [alias.name for alias in node.names] != ["CONFIG"]:
                return None
            imported[node.names[0].asname or "CONFIG"] = node.module.rsplit(".", 1)[1]
        elif isinstance(node, ast.Assign) and ast.unparse(node.targets) == "CONFIG" and config is None:
            config = node.value
        elif isinstance(node, ast.FunctionDef) and ast.unparse(node) == STANDARD_MAIN:
            has_main = True
        elif ast.unparse(node) != "if __name__ == '__main__':\n    main()":
            return None
    if config is None or not has_main or not isinstance(config, ast.Dict):
        return None
    settings = {}
    try:
        for key, value in zip(config.keys, config.values):
            if key is None:  # **NAME: another recipe's CONFIG
                other = read_recipe(recipe_file(imported[value.id])) if isinstance(value, ast.Name) else None
                if other is None:
                    return None
                settings.update(other[0])
            else:
                settings[ast.literal_eval(key)] = ast.literal_eval(value)
    except (ValueError, KeyError, TypeError, SyntaxError):
        return None
    # __doc__ as Python sets it (later versions strip a docstring's indentation): the docstring alone, compiled.
    module = {}
    first = tree.body[:1]
    if first and isinstance(first[0], ast.Expr) and isinstance(first[0].value, ast.Constant):
        exec(compile(ast.Module(body=first, type_ignores=[]), path, "exec"), module)  # a constant: runs nothing
    return settings, module.get("__doc__")


def check_recipe_name(name: str) -> None:
    """A ``ValueError`` listing the recipes when there is none named ``name``."""
    if name not in recipe_names():
        raise ValueError(f"recipe {name!r} does not exist; accepted: {', '.join(recipe_names())}")


def load_recipe(name: str):
    """The recipe module ``name``; an unknown name raises ``ValueError`` listing the recipes."""
    check_recipe_name(name)
    return importlib.import_module(f"{__name__}.{name}")
