"""One flag language for every ``hf-l2mt`` command: ``--config FILE`` with the command line winning, ``--help``
listing every field with its choices, the renamed ``--threads``, and flags that are parsed without torch."""

import dataclasses
import json
import os
import subprocess
import sys

import pytest
import yaml

from hf_l2mt.apps import cli
from hf_l2mt.apps.fisher import estimate as estimate_fisher
from hf_l2mt.apps.fisher.estimate import FisherSettings
from hf_l2mt.apps.plots.figures import PlotSettings
from hf_l2mt.apps.search import study as search
from hf_l2mt.apps.search.settings import SEARCHED_SCHEDULES, SearchSettings
from hf_l2mt.apps.translation import commands as translation_commands
from hf_l2mt.apps.translation.commands import EvaluateSettings, TranslateSettings
from hf_l2mt.evaluation.report_names import HIGHER_IS_BETTER

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SETTINGS = {
    "evaluate": EvaluateSettings, "translate": TranslateSettings, "fisher": FisherSettings, "search": SearchSettings,
    "plot": PlotSettings,
}
SEARCH_DATA = {"src_lang": "en", "tgt_lang": "de", "train": "t.tsv", "in_domain_eval": "i.tsv", "general_eval": "g.tsv"}


def capture_settings(monkeypatch, command: str) -> list:
    """Replace what ``command`` runs with a recorder of the settings it receives."""
    received = []
    targets = {
        "evaluate": (translation_commands, "run_evaluate"), "translate": (translation_commands, "run_translate"),
        "fisher": (estimate_fisher, "estimate_fisher_from_files"), "search": (search, "run_search"),
    }
    if command == "plot":
        from hf_l2mt.apps.plots import figures as plots

        monkeypatch.setattr(plots, "plot_run", lambda run_dir, output_dir, metric: received.append(
            PlotSettings(run_dir=run_dir, output_dir=output_dir, metric=metric)) or [])
    else:
        monkeypatch.setattr(*targets[command], received.append)
    return received


# command -> (positional arguments, the config file, the command line's flags, the settings expected)
CASES = {
    "evaluate": (["runs/a"], {"num_beams": 2, "batch_size": 8, "test": ["a=a.en,a.de"]},
                 ["--num_beams", "5", "--test", "b=b.en,b.de", "--test", "c=c.en,c.de"],
                 {"model_dir": "runs/a", "num_beams": 5, "batch_size": 8, "test": ["b=b.en,b.de", "c=c.en,c.de"]}),
    "translate": (["runs/a"], {"num_beams": 2, "max_new_tokens": 9, "source_prefix": "translate: "},
                  ["--max_new_tokens", "7"],
                  {"model_dir": "runs/a", "num_beams": 2, "max_new_tokens": 7, "source_prefix": "translate: "}),
    "fisher": ([], {"model_name_or_path": "base", "source_file": "s.en", "target_file": "t.de", "output": "f.st",
                    "batch_size": 4}, ["--output", "g.st"],
               {"model_name_or_path": "base", "output": "g.st", "batch_size": 4, "max_examples": None}),
    "search": (["base"], {**SEARCH_DATA, "output_dir": "runs/s", "n_trials": 3, "schedules": ["constant", "sigmoid"],
                          "metric": "chrf"}, ["--n_trials", "5", "--metric", "exact_match"],
               {"model_dir": "base", "n_trials": 5, "schedules": ["constant", "sigmoid"], "metric": "exact_match"}),
    "plot": ([], {"run_dir": "runs/a", "metric": "chrf", "output_dir": "p1"}, ["--output_dir", "p2"],
             {"run_dir": "runs/a", "metric": "chrf", "output_dir": "p2"}),
}


@pytest.mark.parametrize("command", CASES)
@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_every_command_reads_a_config_file_and_the_command_line_wins(command, suffix, tmp_path, monkeypatch):
    positional, config, flags, expected = CASES[command]
    path = tmp_path / f"settings{suffix}"
    path.write_text(yaml.safe_dump(config) if suffix == ".yaml" else json.dumps(config), encoding="utf-8")
    received = capture_settings(monkeypatch, command)

    cli.main([command, *positional, "--config", str(path), *flags])

    (settings,) = received
    assert isinstance(settings, SETTINGS[command])
    assert {name: getattr(settings, name) for name in expected} == expected


def test_train_passes_the_config_file_to_the_recipe_whose_help_shows_it_as_default(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "300")
    path = tmp_path / "settings.yaml"
    path.write_text("l2sp_lambda: 0.375\n", encoding="utf-8")

    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", "en_de", "--config", str(path), "--help"])

    assert exit_info.value.code == 0
    assert "(default: 0.375)" in capsys.readouterr().out


@pytest.mark.parametrize("command", SETTINGS)
def test_help_lists_every_flag_of_the_command_with_its_choices(command, monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "300")
    with pytest.raises(SystemExit) as exit_info:
        cli.main([command, "--help"])

    assert exit_info.value.code == 0
    help_text = capsys.readouterr().out
    dataclass_type = SETTINGS[command]
    for spec in dataclasses.fields(dataclass_type):
        positional = spec.name in dataclass_type.positional_fields if hasattr(dataclass_type, "positional_fields") else False
        assert (spec.name.upper() if positional else f"--{spec.name} ") in help_text, spec.name
    assert "--config FILE" in help_text
    if command in ("search", "plot"):
        assert "--metric {" + ",".join(HIGHER_IS_BETTER) + "}" in help_text
    if command == "search":
        assert "--schedules {" + ",".join(SEARCHED_SCHEDULES) + "}" in help_text


def test_old_threads_spelling_is_an_error_naming_num_threads(tmp_path, capsys):
    argv = ["search", "base", *[part for k, v in SEARCH_DATA.items() for part in (f"--{k}", v)], "--output_dir", "o"]
    for extra, origin in ((["--threads", "1"], "command line"), (["--config", str(tmp_path / "old.yaml")], "old.yaml")):
        (tmp_path / "old.yaml").write_text("threads: 1\n", encoding="utf-8")
        with pytest.raises(SystemExit) as exit_info:
            cli.main([*argv, *extra])
        assert exit_info.value.code == 2
        error = capsys.readouterr().err
        assert "--threads is now spelt --num_threads in every hf-l2mt command; use --num_threads" in error
        assert origin in error


def test_bad_value_in_a_config_file_names_the_file_the_flag_and_the_choices(tmp_path, capsys):
    path = tmp_path / "plot.yaml"
    path.write_text("metric: ter\n", encoding="utf-8")
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["plot", "runs/a", "--config", str(path)])
    assert exit_info.value.code == 2
    assert f"{path}: metric='ter'; accepted: 'bleu', 'chrf', 'exact_match'" in capsys.readouterr().err


def test_listing_commands_and_their_flags_imports_neither_torch_nor_transformers():
    """``hf-l2mt --help`` and ``hf-l2mt COMMAND --help`` stay fast because they import no heavy library: not even
    transformers, whose ``import`` alone takes most of the 1 s a help may take on 2 cores."""
    script = """
import sys
import hf_l2mt.apps.cli as cli
loaded = {name for name in ("torch", "transformers", "datasets") if name in sys.modules}
print("import", sorted(loaded))
for argv in (["--help"], ["train", "--help"]):
    try:
        cli.main(argv)
    except SystemExit:
        pass
print("help", sorted(name for name in ("torch", "transformers", "datasets") if name in sys.modules))
for command in ("evaluate", "translate", "fisher", "search", "plot", "report", "export", "average", "demo"):
    try:
        cli.main([command, "--help"])
    except SystemExit:
        pass
print("command help", sorted(name for name in ("torch", "transformers", "datasets") if name in sys.modules))
"""
    env = {**os.environ, "PYTHONPATH": ROOT}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120, check=False)

    assert result.returncode == 0, result.stderr[-2000:]
    assert [line for line in result.stdout.splitlines() if line.startswith(("import", "help", "command help"))] == [
        "import []", "help []", "command help []",
    ]


def test_flags_of_the_training_arguments_are_those_of_hf_argument_parser_but_booleans():
    """Every field of a recipe gives the flag transformers' ``HfArgumentParser`` gives it: same names, choices,
    ``nargs`` and default; a boolean parses ``--flag``, ``--flag false`` and ``--flag true`` as it does."""
    import argparse

    from transformers import HfArgumentParser

    from hf_l2mt.apps.terminal.dataclass_flags import BooleanFlag, add_dataclass_flags
    from hf_l2mt.apps.recipes.runner import RecipeArguments
    from hf_l2mt.core.training_args import L2MTTrainingArguments

    types = (RecipeArguments, L2MTTrainingArguments)
    theirs = HfArgumentParser(types)
    ours = argparse.ArgumentParser()
    for dataclass_type in types:
        add_dataclass_flags(ours, dataclass_type)
    # HfArgumentParser's --no_x of a boolean defaulting to true shares its dest with --x; --x is the flag.
    their_actions = {a.dest: a for a in theirs._actions
                     if a.dest != "help" and not isinstance(a, argparse._StoreFalseAction)}
    our_actions = {a.dest: a for a in ours._actions if a.help != argparse.SUPPRESS and a.dest != "help"}

    assert set(our_actions) == set(their_actions)
    assert vars(ours.parse_args([])) == vars(theirs.parse_args([]))
    booleans = [dest for dest, action in our_actions.items() if isinstance(action, BooleanFlag)]
    assert len(booleans) > 20  # the Trainer's own switches among them (bf16, fp16, ...)
    for dest, action in our_actions.items():
        if dest in booleans:
            flag = action.option_strings[0]
            for argv in ([flag], [flag, "false"], [flag, "true"]):
                assert getattr(ours.parse_args(argv), dest) == getattr(theirs.parse_args(argv), dest), argv
            assert getattr(ours.parse_args([f"--no-{dest.replace('_', '-')}"]), dest) is False
        else:
            theirs_action = their_actions[dest]
            assert (action.option_strings, action.choices, action.nargs) == (
                theirs_action.option_strings, theirs_action.choices, theirs_action.nargs), dest
