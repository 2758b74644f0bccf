"""``hf-l2mt train RECIPE --help`` from the stored listing of the Trainer's flags: the same help as the imported
``L2MTTrainingArguments`` gives, for every recipe, and every ``--help`` without torch or transformers."""

import json
import os
import subprocess
import sys

import pytest

from hf_l2mt.apps import cli
from hf_l2mt.apps.cli import flag_listing
from hf_l2mt.apps.recipes.arguments import RecipeArguments, recipe_layers
from hf_l2mt.apps.recipes import load_recipe, read_recipe, recipe_file, recipe_names
from hf_l2mt.apps.terminal.settings import settings_parser
from hf_l2mt.core.training_args import L2MTTrainingArguments

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Flags of each kind: booleans (--flag, --no-flag, --flag false), an Enum's choices, a list, a number.
ARGV = ["--bf16", "--no-do-train", "--dataloader_pin_memory", "false", "--lr_scheduler_type", "cosine",
        "--l2sp_overrides", "decoder=0.5", "encoder=1", "--learning_rate", "3e-5", "--l2sp_mode", "decoupled"]


@pytest.fixture
def listing(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_L2MT_CACHE", str(tmp_path))
    flag_listing.save_listing(L2MTTrainingArguments)
    stored = flag_listing.load_listing()
    assert stored is not None
    return stored


@pytest.mark.parametrize("name", recipe_names())
def test_listed_flags_are_the_imported_ones_for_every_recipe(name, listing, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # argparse wraps help at the terminal width
    module = load_recipe(name)
    config, description = read_recipe(recipe_file(name))
    assert (config, description) == (module.CONFIG, module.__doc__)
    listed = settings_parser((RecipeArguments, listing), recipe_layers(config), [], description)
    imported = settings_parser((RecipeArguments, L2MTTrainingArguments), recipe_layers(module.CONFIG), [],
                               module.__doc__)

    assert flag_listing.describe(listed) == flag_listing.describe(imported)
    assert listed.format_help() == imported.format_help()
    assert vars(listed.parse_args(ARGV)) == vars(imported.parse_args(ARGV))
    assert vars(listed.parse_args([])) == vars(imported.parse_args([]))


def test_a_listing_whose_source_changed_is_not_used(listing):
    path = flag_listing.cache_path()
    with open(path, encoding="utf-8") as handle:
        stored = json.load(handle)
    source = next(iter(stored["sources"]))
    stored["sources"][source] = "0" * 64
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(stored, handle)

    assert flag_listing.load_listing() is None


def test_a_value_the_listing_cannot_convert_is_parsed_with_the_imported_flags(listing, capsys):
    # --debug takes a list of DebugOption, an Enum the listing does not rebuild.
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", "en_de", "--debug", "underflow_overflow", "--help"])

    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith("usage: hf-l2mt train en_de ")


def test_only_a_recipe_of_the_standard_shape_is_read_as_text(tmp_path):
    path = tmp_path / "mine.py"
    standard = '"""Mine."""\n\nfrom hf_l2mt.apps.recipes.runner import run\n\nCONFIG = {"l2sp_lambda": 0.5}\n\n\n' \
        "def main(argv=None):\n    return run(CONFIG, argv, description=__doc__)\n"
    path.write_text(standard, encoding="utf-8")
    assert read_recipe(str(path)) == ({"l2sp_lambda": 0.5}, "Mine.")
    for changed in (standard.replace("0.5}", "0.5}\nCONFIG['seed'] = 1"), standard.replace("0.5", "float('0.5')"),
                    standard.replace("description=__doc__", "description='other'")):
        path.write_text(changed, encoding="utf-8")
        assert read_recipe(str(path)) is None


HELP_SCRIPT = """
import sys
from hf_l2mt.apps import cli
try:
    cli.main(sys.argv[1:])
except SystemExit as stop:
    assert not stop.code, stop.code
print("LOADED", sorted(name for name in ("torch", "transformers") if name in sys.modules))
"""


def test_every_help_imports_neither_torch_nor_transformers_and_names_its_command(listing):
    commands = [[], ["train"], *([name] for name in cli.commands.COMMANDS if name != "train"),
                *(["train", name] for name in recipe_names())]
    env = {**os.environ, "PYTHONPATH": ROOT}
    for arguments in commands:
        result = subprocess.run([sys.executable, "-c", HELP_SCRIPT, *arguments, "--help"], env=env,
                                capture_output=True, text=True, timeout=120, check=False)
        assert result.returncode == 0, (arguments, result.stderr[-2000:])
        lines = result.stdout.splitlines()
        assert lines[0].startswith(" ".join(["usage: hf-l2mt", *arguments]) + " "), (arguments, lines[0])
        assert lines[-1] == "LOADED []", arguments
