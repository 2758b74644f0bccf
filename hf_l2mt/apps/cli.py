"""``hf-l2mt``: fine-tune with a recipe, score a fine-tuned model, translate, estimate a Fisher for EWC,
search λ, plot a run, or start the demo."""

import argparse
import importlib.util
import json
import os
import sys

import torch

from .. import __version__
from ..evaluation.translate import (
    decode_lines,
    evaluate_files,
    load_translation_model,
    read_lines,
    report_scores,
    translate,
)
from .recipes import load_recipe, recipe_names, recipe_summary
from .search import METRICS, add_search_arguments, run_search

EXAMPLES = """\
examples:
  hf-l2mt train en_de --output_dir runs/en-de --l2sp_lambda 0.05
  hf-l2mt train domain_adapt --config my_settings.yaml --max_steps 500
  accelerate launch -m hf_l2mt.apps.cli train en_de --bf16
  hf-l2mt evaluate runs/en-de --test newstest2016=newstest2016.en,newstest2016.de
  hf-l2mt translate runs/en-de --input sentences.en > sentences.de
  echo "The patient was discharged." | hf-l2mt translate runs/en-de --num_beams 5
  hf-l2mt fisher --model_name_or_path Helsinki-NLP/opus-mt-en-de --source_file news.en --target_file news.de \
      --output fisher.safetensors
  hf-l2mt search base/ --src_lang en --tgt_lang de --train med.tsv --in_domain_eval med-dev.tsv \
      --general_eval news-dev.tsv --output_dir runs/search
  hf-l2mt plot runs/en-de
"""


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer >= 1")
    return value


def parse_test_set(text: str) -> tuple[str, tuple[str, str]]:
    """``NAME=SOURCE_FILE,REFERENCE_FILE`` → ``(name, (source_file, reference_file))``."""
    name, _, files = text.partition("=")
    source, _, reference = files.partition(",")
    if not (name and source and reference):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not NAME=SOURCE_FILE,REFERENCE_FILE (example: newstest2016=test.en,test.de)"
        )
    return name, (source, reference)


def generation_options() -> argparse.ArgumentParser:
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument("--batch_size", type=positive_int, default=32, help="sentences per batch (default: 32)")
    options.add_argument("--num_beams", type=positive_int, default=4, help="beam size; 1 is greedy (default: 4)")
    options.add_argument(
        "--max_new_tokens", type=positive_int, default=128, help="longest translation, in tokens (default: 128)"
    )
    options.add_argument("--device", help="where the model runs, e.g. cpu, cuda, cuda:1 (default: cuda if available)")
    options.add_argument(
        "--source_prefix", default=None, metavar="TEXT",
        help="text put before every sentence; T5 models need their task prefix, e.g. 'translate English to German: '",
    )
    return options


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hf-l2mt",
        description="Fine-tune translation models with L2 regularization (L2-SP, weight decay), score and use them.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    recipes = "\n".join(f"  {name:<14} {recipe_summary(name)}" for name in recipe_names())
    train = commands.add_parser(
        "train", help="fine-tune with a recipe", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run a recipe. Flags after RECIPE override its settings; list them: hf-l2mt train RECIPE --help",
        epilog=f"recipes:\n{recipes}\n\nexample:\n  hf-l2mt train en_de --output_dir runs/en-de --l2sp_lambda 0.05",
    )
    train.add_argument("recipe", metavar="RECIPE", help="a recipe name, or the path of a .py file defining main(argv)")
    train.add_argument("overrides", nargs=argparse.REMAINDER, help="the recipe's flags, --config FILE among them")

    evaluate = commands.add_parser(
        "evaluate", parents=[generation_options()], help="score a fine-tuned model on test sets with sacreBLEU",
        description="Translate each test set with the model in MODEL_DIR and score it with sacreBLEU (BLEU, chrF, "
        "TER, exact match); prints a table and writes the scores with their signatures as JSON.",
        epilog="example:\n  hf-l2mt evaluate runs/en-de --test general=newstest2016.en,newstest2016.de "
        "--test medical=med.en,med.de", formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    evaluate.add_argument("model_dir", metavar="MODEL_DIR", help="output_dir of a finished run")
    evaluate.add_argument(
        "--test", type=parse_test_set, action="append", required=True, metavar="NAME=SOURCE_FILE,REFERENCE_FILE",
        help="a test set: UTF-8 text files with one sentence per line; repeat for more sets",
    )
    evaluate.add_argument(
        "--output_json", metavar="PATH", help="where the scores go (default: MODEL_DIR/test_scores.json)"
    )

    translate = commands.add_parser(
        "translate", parents=[generation_options()], help="translate text, one sentence per line",
        description="Translate one sentence per line from --input (default: standard input) to standard output, "
        "in order; the progress bar goes to standard error.",
        epilog="example:\n  hf-l2mt translate runs/en-de --input sentences.en > sentences.de",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    translate.add_argument("model_dir", metavar="MODEL_DIR", help="output_dir of a finished run")
    translate.add_argument("--input", metavar="FILE", help="UTF-8 text file, one sentence per line (default: stdin)")

    fisher = commands.add_parser(
        "fisher", help="estimate a model's diagonal Fisher on general-domain pairs, for EWC (l2sp_fisher_path)",
        description="Mean over batches of the squared gradient of the token-level negative log-likelihood "
        "(docs/regularization.md, EWC), saved as safetensors keyed by parameter name.",
        epilog="example:\n  hf-l2mt fisher --model_name_or_path Helsinki-NLP/opus-mt-en-de --source_file news.en "
        "--target_file news.de --output fisher.safetensors", formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    fisher.add_argument("--model_name_or_path", required=True, metavar="MODEL", help="the base model to fine-tune")
    fisher.add_argument("--source_file", required=True, metavar="FILE", help="UTF-8 sources, one sentence per line")
    fisher.add_argument("--target_file", required=True, metavar="FILE", help="UTF-8 targets, line i translating line i")
    fisher.add_argument("--output", required=True, metavar="FILE", help="the .safetensors file to write")
    fisher.add_argument("--batch_size", type=positive_int, default=16, help="pairs per gradient (default: 16)")
    fisher.add_argument("--max_examples", type=positive_int, help="use only the first N pairs (default: all)")
    fisher.add_argument("--max_source_length", type=positive_int, default=128, help="in tokens (default: 128)")
    fisher.add_argument("--max_target_length", type=positive_int, default=128, help="in tokens (default: 128)")
    fisher.add_argument("--source_prefix", metavar="TEXT", help="text put before every source (T5's task prefix)")
    fisher.add_argument("--device", help="where the model runs, e.g. cpu, cuda (default: cuda if available)")

    search = commands.add_parser(
        "search", help="search λ: an Optuna study with in-domain and general scores as objectives",
        description="Fine-tune MODEL_DIR once per trial with a sampled L2-SP λ (optionally schedule and weight "
        "decay), score in-domain and general evaluation sets, and write the trials and their Pareto front "
        "(docs/search.md).", formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  hf-l2mt search base/ --src_lang en --tgt_lang de --train med.tsv --in_domain_eval "
        "med-dev.tsv --general_eval news-dev.tsv --output_dir runs/search --n_trials 20",
    )
    add_search_arguments(search)

    plot = commands.add_parser(
        "plot", help="draw a run's logged losses, penalties, λ schedules and evaluation scores as PNGs",
        description="Read trainer_state.json in RUN_DIR (or its newest checkpoint-*) and draw loss.png, "
        "penalties.png, strengths.png, distance.png and eval_METRIC.png, for the keys the run logged.",
        epilog="example:\n  hf-l2mt plot runs/en-de --output_dir docs/plots",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    plot.add_argument("run_dir", metavar="RUN_DIR", help="a run's output_dir, or one of its checkpoint-* folders")
    plot.add_argument("--output_dir", metavar="DIR", help="where the PNGs go (default: RUN_DIR/plots)")
    plot.add_argument("--metric", choices=METRICS, default="bleu", help="evaluation score plotted (default: bleu)")

    # The demo parses its own flags, --help included: main() hands it every argument after "demo".
    commands.add_parser("demo", help="start the interactive demo (hf-l2mt demo --help)", add_help=False)
    return parser


def run_train(args) -> None:
    if args.recipe.endswith(".py"):
        if not os.path.isfile(args.recipe):
            raise ValueError(f"RECIPE {args.recipe}: no such file")
        spec = importlib.util.spec_from_file_location("hf_l2mt_user_recipe", args.recipe)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    else:
        module = load_recipe(args.recipe)
    module.main(args.overrides)


def run_evaluate(args) -> None:
    device = default_device(args.device)
    warn_if_prefix_missing(args.model_dir, args.source_prefix)
    test_sets = dict(args.test)
    if len(test_sets) < len(args.test):
        raise ValueError("--test: two test sets have the same NAME")
    scores = evaluate_files(
        args.model_dir, test_sets, batch_size=args.batch_size, num_beams=args.num_beams,
        max_new_tokens=args.max_new_tokens, source_prefix=args.source_prefix, device=device,
    )
    json_path = args.output_json or os.path.join(args.model_dir, "test_scores.json")
    print(report_scores(scores, json_path=json_path))
    print(f"scores with sacreBLEU signatures: {json_path}", file=sys.stderr)


def run_translate(args) -> None:
    device = default_device(args.device)
    warn_if_prefix_missing(args.model_dir, args.source_prefix)
    sentences = read_lines(args.input) if args.input else read_stdin()
    model, tokenizer = load_translation_model(args.model_dir)
    translations = translate(
        sentences, model, tokenizer, batch_size=args.batch_size, num_beams=args.num_beams,
        max_new_tokens=args.max_new_tokens, source_prefix=args.source_prefix, device=device,
    )
    # One line per input sentence, so that line i of the output translates line i of the input.
    sys.stdout.writelines(" ".join(text.splitlines()) + "\n" for text in translations)


def run_fisher(args) -> None:
    from datasets import Dataset
    from torch.utils.data import DataLoader
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    from ..core.fisher import estimate_fisher, save_fisher
    from ..data import make_data_collator, preprocess_pairs

    output_dir = os.path.dirname(os.path.abspath(args.output))
    if not os.path.isdir(output_dir):
        raise ValueError(f"--output {args.output}: the directory {output_dir} does not exist")
    sources, targets = read_lines(args.source_file), read_lines(args.target_file)
    if len(sources) != len(targets) or not sources:
        raise ValueError(
            f"--source_file {args.source_file} has {len(sources)} lines and --target_file {args.target_file} has "
            f"{len(targets)}; accepted: the same number of lines, at least one"
        )
    count = min(len(sources), args.max_examples or len(sources))
    device = default_device(args.device)
    warn_if_prefix_missing(args.model_name_or_path, args.source_prefix)
    tokenizer = AutoTokenizer.from_pretrained(args.model_name_or_path)
    model = AutoModelForSeq2SeqLM.from_pretrained(args.model_name_or_path).to(device)
    pairs = Dataset.from_dict({"source": sources[:count], "target": targets[:count]})
    tokenized = preprocess_pairs(pairs, tokenizer, "", "", args.max_source_length, args.max_target_length,
                                 source_prefix=args.source_prefix or "", model_config=model.config)
    loader = DataLoader(tokenized, batch_size=args.batch_size, collate_fn=make_data_collator(tokenizer, model))
    fisher = estimate_fisher(model, loader)
    save_fisher(fisher, args.output, metadata={
        "model": args.model_name_or_path, "examples": count, "batch_size": args.batch_size,
        "estimator": "empirical Fisher per batch: mean over batches of squared gradients of the token-mean NLL",
    })
    print(f"Fisher of {len(fisher)} parameter tensors on {count} pairs: {args.output}", file=sys.stderr)


def default_device(device: str | None) -> torch.device:
    """``--device`` checked, or CUDA when there is a GPU, else the CPU."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        chosen = torch.device(device)
    except RuntimeError:
        raise ValueError(f"--device {device!r}: accepted: cpu, cuda, cuda:N (a GPU index), mps") from None
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {device!r}: this machine has no CUDA GPU that torch can use; pass --device cpu")
    return chosen


def read_stdin() -> list[str]:
    return decode_lines(sys.stdin.buffer.read(), "<stdin>")


def warn_if_prefix_missing(model_dir: str, source_prefix: str | None) -> None:
    """T5 translates only with its task prefix, and a saved model does not record it."""
    config_path = os.path.join(model_dir, "config.json")
    if source_prefix is None and os.path.isfile(config_path):
        with open(config_path, encoding="utf-8") as handle:
            if json.load(handle).get("model_type") == "t5":
                print(
                    "hf-l2mt: warning: T5 model without --source_prefix; pass the prefix it was fine-tuned with, "
                    "e.g. --source_prefix 'translate English to German: '", file=sys.stderr,
                )


def run_plot(args) -> None:
    from .plots import plot_run

    for path in plot_run(args.run_dir, args.output_dir, metric=args.metric):
        print(path)


def run_demo(args) -> None:
    from .demo import (
        main as demo_main,  # the demo and what it needs load only when it starts
    )

    demo_main(args.demo_args)


COMMANDS = {
    "train": run_train, "evaluate": run_evaluate, "translate": run_translate, "fisher": run_fisher,
    "search": run_search, "plot": run_plot, "demo": run_demo,
}


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command == "demo":
        args.demo_args = extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        COMMANDS[args.command](args)
    except (ValueError, FileNotFoundError, ImportError) as err:
        parser.exit(2, f"hf-l2mt {args.command}: error: {err}\n")


if __name__ == "__main__":
    main()
