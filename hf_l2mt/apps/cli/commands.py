"""``hf-l2mt``: fine-tune with a recipe, score a fine-tuned model, translate, estimate a Fisher for EWC,
search λ, plot a run, export it to CTranslate2, average its checkpoints, interpolate it toward its base, merge
fine-tunes, or start the demo.

This module only dispatches: each command's flags are a dataclass parsed by ``settings.parse_settings``
(so ``--config FILE`` works for every command), and the module that runs it, with torch and
transformers, is imported only when the command runs. ``hf-l2mt --help`` therefore imports neither.
"""

import argparse
import importlib
import importlib.util
import os
import sys

from ... import __version__
from ..recipes import check_recipe_name, load_recipe, read_recipe, recipe_file, recipe_names, recipe_summary

HELP_FLAGS = {"-h", "--help"}

EXAMPLES = """\
examples:
  hf-l2mt train en_de --output_dir runs/en-de --l2sp_lambda 0.05
  hf-l2mt train domain_adapt --config my_settings.yaml --max_steps 500
  accelerate launch -m hf_l2mt.apps.cli train en_de --bf16
  hf-l2mt evaluate runs/en-de --test newstest2016=newstest2016.en,newstest2016.de
  hf-l2mt translate runs/en-de --input sentences.en > sentences.de
  echo "The patient was discharged." | hf-l2mt translate runs/en-de --num_beams 5
  hf-l2mt fisher --model_name_or_path Helsinki-NLP/opus-mt-en-de --source_file news.en --target_file news.de \\
      --output fisher.safetensors
  hf-l2mt search base/ --src_lang en --tgt_lang de --train med.tsv --in_domain_eval med-dev.tsv \\
      --general_eval news-dev.tsv --output_dir runs/search
  hf-l2mt plot runs/en-de
  hf-l2mt export runs/en-de --quantization int8 --probe dev.en,dev.de
  hf-l2mt average runs/en-de --last 5
  hf-l2mt interpolate runs/en-de --base base/ --alpha 0.2 0.4 0.6 0.8 --max_general_drop 1.0
  hf-l2mt merge runs/med runs/law --base base/ --method ties --output_dir runs/med+law
  hf-l2mt translate runs/en-de --config translate.yaml    # every command reads --config FILE.yaml|json
"""

SUMMARIES = {
    "train": "fine-tune with a recipe",
    "evaluate": "score a fine-tuned model on test sets with sacreBLEU",
    "translate": "translate text, one sentence per line",
    "fisher": "estimate a model's diagonal Fisher on general-domain pairs, for EWC (l2sp_fisher_path)",
    "search": "search λ: an Optuna study with in-domain and general scores as objectives",
    "report": "write a run's forgetting report as one HTML page (forgetting_report.html)",
    "plot": "draw a run's logged losses, penalties, λ schedules and evaluation scores as PNGs",
    "export": "convert a model to CTranslate2 (quantized or not), checked against PyTorch on probe sentences",
    "average": "average the weights of a run's last N complete checkpoints into one model",
    "interpolate": "models between a base and its fine-tune, (1-a)*base + a*fine-tune, scored, one picked by budget",
    "merge": "merge fine-tunes of one base: linear, task arithmetic or TIES on their task vectors",
    "demo": "run the forgetting demo (hf-l2mt demo --help)",
}


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser: ``--help``, ``--version`` and the list of commands; each command parses its own flags."""
    parser = argparse.ArgumentParser(
        prog="hf-l2mt",
        description="Fine-tune translation models with L2 regularization (L2-SP, weight decay), score and use them.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, summary in SUMMARIES.items():
        commands.add_parser(name, help=summary, add_help=False)
    return parser


def train_parser() -> argparse.ArgumentParser:
    recipes = "\n".join(f"  {name:<14} {recipe_summary(name)}" for name in recipe_names())
    train = argparse.ArgumentParser(
        prog="hf-l2mt train", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run a recipe. Flags after RECIPE override its settings, --config FILE among them; list them: "
        "hf-l2mt train RECIPE --help",
        epilog=f"recipes:\n{recipes}\n\nexample:\n  hf-l2mt train en_de --output_dir runs/en-de --l2sp_lambda 0.05",
    )
    train.add_argument("recipe", metavar="RECIPE", help="a recipe name, or the path of a .py file defining main(argv)")
    train.add_argument("overrides", nargs=argparse.REMAINDER, help="the recipe's flags, --config FILE among them")
    return train


def listed_help(path: str, argv: list[str]) -> None:
    """Print the help of the recipe file at ``path`` and exit, from its CONFIG read as text and the stored listing
    of the Trainer's flags (``flag_listing``), so that no transformers is imported. Returns where the file is
    not one ``read_recipe`` reads or a value needs the real dataclasses: the recipe then runs as it would."""
    from .flag_listing import NotListed, training_flags
    from ..recipes.arguments import RecipeArguments, recipe_layers
    from ..terminal.settings import settings_parser

    recipe = read_recipe(path)
    if recipe is None:
        return
    config, description = recipe
    try:
        parser = settings_parser((RecipeArguments, training_flags()), recipe_layers(config), argv, description)
        parser.parse_args(argv)  # exits with the help; returns where --help was some flag's value
    except NotListed:
        return


def run_train(argv: list[str]) -> None:
    from ..terminal.settings import command_name

    args = train_parser().parse_args(argv)
    if args.recipe.endswith(".py"):
        if not os.path.isfile(args.recipe):
            raise ValueError(f"RECIPE {args.recipe}: no such file")
        path = args.recipe
    else:
        check_recipe_name(args.recipe)
        path = recipe_file(args.recipe)
    with command_name(f"hf-l2mt train {args.recipe}"):  # the recipe's usage line and errors name the command
        if HELP_FLAGS.intersection(args.overrides):
            listed_help(path, args.overrides)
        if args.recipe.endswith(".py"):
            spec = importlib.util.spec_from_file_location("hf_l2mt_user_recipe", path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        else:
            module = load_recipe(args.recipe)
        module.main(args.overrides)


def run_evaluate(argv: list[str]) -> None:
    from ..translation import commands
    from ..terminal.settings import parse_settings

    (settings,) = parse_settings(
        (commands.EvaluateSettings,), {}, argv, prog="hf-l2mt evaluate",
        description="Translate each test set with the model in MODEL_DIR and score it with sacreBLEU (BLEU, chrF, "
        "TER, exact match); prints a table and writes the scores with their signatures as JSON.",
        epilog="example:\n  hf-l2mt evaluate runs/en-de --test general=newstest2016.en,newstest2016.de "
        "--test medical=med.en,med.de",
    )
    commands.run_evaluate(settings)


def run_translate(argv: list[str]) -> None:
    from ..translation import commands
    from ..terminal.settings import parse_settings

    (settings,) = parse_settings(
        (commands.TranslateSettings,), {}, argv, prog="hf-l2mt translate",
        description="Translate one sentence per line from --input (default: standard input) to standard output, "
        "in order; the progress bar goes to standard error.",
        epilog="example:\n  hf-l2mt translate runs/en-de --input sentences.en > sentences.de",
    )
    commands.run_translate(settings)


def run_fisher(argv: list[str]) -> None:
    from ..fisher.estimate import FisherSettings, estimate_fisher_from_files
    from ..terminal.settings import parse_settings

    (settings,) = parse_settings(
        (FisherSettings,), {}, argv, prog="hf-l2mt fisher",
        description="Mean over batches of the squared gradient of the token-level negative log-likelihood "
        "(docs/regularization.md, EWC), saved as safetensors keyed by parameter name.",
        epilog="example:\n  hf-l2mt fisher --model_name_or_path Helsinki-NLP/opus-mt-en-de --source_file news.en "
        "--target_file news.de --output fisher.safetensors",
    )
    estimate_fisher_from_files(settings)


def run_search(argv: list[str]) -> None:
    from ..search.settings import parse_search_settings

    settings = parse_search_settings(argv, prog="hf-l2mt search")
    from ..search.study import run_search as search  # torch, transformers and the trainer load once the flags are good

    search(settings)


def run_plot(argv: list[str]) -> None:
    from ..plots.figures import PlotSettings, plot_run
    from ..terminal.settings import parse_settings

    (settings,) = parse_settings(
        (PlotSettings,), {}, argv, prog="hf-l2mt plot",
        description="Read trainer_state.json in RUN_DIR (or its newest checkpoint-*) and draw loss.png, "
        "penalties.png, strengths.png, distance.png and eval_METRIC.png, for the keys the run logged.",
        epilog="example:\n  hf-l2mt plot runs/en-de --output_dir docs/plots",
    )
    for path in plot_run(settings.run_dir, settings.output_dir, metric=settings.metric):
        print(path)


def run_export(argv: list[str]) -> None:
    from ..export.convert import ExportSettings
    from ..terminal.settings import parse_settings

    (settings,) = parse_settings(
        (ExportSettings,), {}, argv, prog="hf-l2mt export",
        description="Convert the model in MODEL_DIR with CTranslate2's converter (PEFT adapters merged first), "
        "translate --probe (default: the run's held-out sets) with PyTorch and with the export at --num_beams, and "
        "keep the export only if their chrF and BLEU differ by at most --parity_tolerance; writes a README with the "
        "numbers into the export folder.",
        epilog="example:\n  hf-l2mt export runs/en-de --to ctranslate2 --quantization int8 --probe dev.en,dev.de",
    )
    from ..export.convert import run_export as export  # torch, transformers, ctranslate2: once the flags are good
    from ..translation.commands import without_weight_loading_bar

    with without_weight_loading_bar():
        export(settings)


def run_average(argv: list[str]) -> None:
    from ..weights.average import AverageSettings
    from ..terminal.settings import parse_settings

    (settings,) = parse_settings(
        (AverageSettings,), {}, argv, prog="hf-l2mt average",
        description="Write a model whose weights are the mean of the last N complete checkpoint-* folders of "
        "RUN_DIR (frozen and tied weights included); checkpoints of different shapes are refused.",
        epilog="example:\n  hf-l2mt average runs/en-de --last 5 --output_dir runs/en-de-avg5",
    )
    from ..weights.average import run_average as average

    average(settings)


def run_interpolate(argv: list[str]) -> None:
    from ..weights.interpolate import InterpolateSettings
    from ..terminal.settings import parse_settings

    (settings,) = parse_settings(
        (InterpolateSettings,), {}, argv, prog="hf-l2mt interpolate",
        description="Write one model per --alpha, (1 - alpha) * BASE + alpha * RUN_DIR (WiSE-FT), as "
        "RUN_DIR/interpolated/alpha-A; score each against the base on the held-out sets (--test, or those the run's "
        "forgetting_report.json keeps) and, with --max_general_drop or --min_gain_kept, pick the alpha with the most "
        "in-domain gain within that forgetting budget (docs/interpolation.md).",
        epilog="example:\n  hf-l2mt interpolate runs/en-de --base base/ --alpha 0.2 0.4 0.6 0.8 --max_general_drop 1.0",
    )
    from ..weights.interpolate import run_interpolate as interpolate

    interpolate(settings)


def run_merge(argv: list[str]) -> None:
    from ..weights.merge import MergeSettings
    from ..terminal.settings import parse_settings

    (settings,) = parse_settings(
        (MergeSettings,), {}, argv, prog="hf-l2mt merge",
        description="Write one model from fine-tunes of BASE_MODEL by combining their task vectors (run - base): "
        "linear (weighted average), task_arithmetic (base + sum of weighted task vectors) or ties (TIES-merging); "
        "tensor names and shapes are checked first (docs/interpolation.md).",
        epilog="example:\n  hf-l2mt merge runs/med runs/law --base base/ --method ties --density 0.2 "
        "--output_dir runs/med+law",
    )
    from ..weights.merge import run_merge as merge

    merge(settings)


def run_report(argv: list[str]) -> None:
    from ..report.settings import ReportSettings
    from ..terminal.settings import parse_settings

    (settings,) = parse_settings(
        (ReportSettings,), {}, argv, prog="hf-l2mt report",
        description="Read RUN_DIR/forgetting_report.json and write one self-contained HTML page: the answer in one "
        "sentence, scores with intervals, the plot, chrF by sentence length and word frequency, the sentences that "
        "changed most. Without flags it is the page the run wrote, byte for byte; it says what differs otherwise, "
        "and leaves a page it cannot explain as it was.",
        epilog="example:\n  hf-l2mt report runs/en-de --metric exact_match --train_source train.en",
    )
    from ..report.command import run_report as write_report_page  # sacreBLEU, numpy, jinja2: once the flags are good

    print(write_report_page(settings))


def run_demo(argv: list[str]) -> None:
    from .. import demo  # the demo parses its own flags, --help and --config included

    demo.main(argv)


COMMANDS = {
    "train": run_train, "evaluate": run_evaluate, "translate": run_translate, "fisher": run_fisher,
    "search": run_search, "plot": run_plot, "report": run_report, "export": run_export, "average": run_average,
    "interpolate": run_interpolate, "merge": run_merge, "demo": run_demo,
}


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    if not argv or argv[0] not in COMMANDS:
        parser.parse_args(argv)  # prints the help or the version, or the error naming what is wrong; exits
        parser.error("expected a COMMAND before any flag")
    command, command_argv = argv[0], argv[1:]
    try:
        COMMANDS[command](command_argv)
    except (ValueError, FileNotFoundError, ImportError) as err:
        parser.exit(2, f"hf-l2mt {command}: error: {err}\n")


if __name__ == "__main__":
    main()
