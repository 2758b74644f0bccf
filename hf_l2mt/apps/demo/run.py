"""``run``: the demo's five steps in order, each printed as it starts, then the table and the saved output."""

import os
from dataclasses import asdict

import torch

from ...evaluation.forgetting import REPORT_FILE, RUN, format_report
from ..terminal.console import without_library_progress_bars
from .numbers_task import numbers_splits
from ..report.page import PAGE_FILE
from .arguments import BATCH_SIZE, GENERAL_DOMAIN, LEARNING_RATE, DemoArguments
from .base import base_dir, load_base, pretrain
from .evaluation import BLEU_NOTE, best_balanced, format_examples, format_table, held_out_examples, score_runs
from .finetune import finetune
from .output import DEMO_NAME, RESULTS_FILE, check_output_dir_is_replaceable, save_output
from .report import demo_report
from .reproducible import arithmetic_in_effect
from .stopwatch import Stopwatch
from .training import tokenized


def run(args: DemoArguments, command: str) -> dict:
    """The demo on ``args.num_threads`` threads with deterministic algorithms; a caller's settings are restored."""
    check_output_dir_is_replaceable(args)
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(args.num_threads)  # one by default: two threads sum in another order (reproducible.py)
    torch.use_deterministic_algorithms(True)
    try:
        return run_steps(args, command)
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)


def run_steps(args: DemoArguments, command: str) -> dict:
    clock = Stopwatch()
    general_set, new_set = f"{GENERAL_DOMAIN}s", f"{args.new_domain}s"
    with without_library_progress_bars():  # one bar per phase, drawn by the steps themselves
        print(f"[1/5] data: {general_set} (general domain) and {new_set} (new domain), English -> German")
        cached = os.path.isdir(base_dir(args))
        # The held-out numbers are drawn first, so a cached base needs no training pairs rebuilt.
        general = numbers_splits(GENERAL_DOMAIN, train_size=0 if cached else args.train_size,
                                 heldout_size=args.test_size, seed=args.seed)
        new = numbers_splits(args.new_domain, train_size=args.finetune_train_size, heldout_size=args.test_size,
                             seed=args.seed, distinct_from=GENERAL_DOMAIN)
        for name, splits in ((general_set, general), (new_set, new)):
            example = splits["test"][0]
            print(f"  {name}: {len(splits['train']):,} train, {len(splits['test']):,} held out; "
                  f"e.g. {example['source']!r} -> {example['target']!r}")
        clock.lap("data")

        print(f"[2/5] tokenizer and [3/5] base model: {base_dir(args)}")
        if cached:
            print("  reusing the cached tokenizer and base model (delete that folder to pretrain again)")
        else:
            print(f"  training a SentencePiece tokenizer on the {general_set}, then pretraining for "
                  f"{args.pretrain_steps:,} steps (batch {BATCH_SIZE}, AdamW lr {LEARNING_RATE:g}, no regularization)")
            pretrain(args, general["train"])
        clock.lap("pretrain")
        tokenizer, base = load_base(args)
        eval_sets = {general_set: tokenized(general["test"], tokenizer), new_set: tokenized(new["test"], tokenizer)}
        new_train = tokenized(new["train"], tokenizer)

        print(f"[4/5] fine-tuning copies of the base on {new_set} only: {args.finetune_steps:,} steps each, "
              f"lr {LEARNING_RATE:g}, one run per L2-SP lambda in {' '.join(f'{v:g}' for v in args.l2sp_lambdas)}")
        runs = [("base", None, base)]
        for lam in args.l2sp_lambdas:
            runs.append((f"lambda={lam:g}", lam, finetune(base, tokenizer, new_train, lam, args)))
        clock.lap("finetune")

        print("[5/5] scoring every model on both held-out sets (greedy decoding)")
        rows = score_runs(runs, tokenizer, eval_sets, args.seed)
        examples = held_out_examples(runs, tokenizer, general["test"], new["test"])
        clock.lap("evaluate")

        best = best_balanced(rows, [general_set, new_set])
        forgetting = demo_report(runs, best["model"], tokenizer, {general_set: general["test"], new_set: new["test"]},
                                 general_set, command)
        clock.lap("report")
        results = {
            "demo": DEMO_NAME,
            "command": command,
            "base_from_cache": cached,
            "base_dir": base_dir(args),
            "best_balanced": best["model"],
            "rows": rows,
            "examples": examples,
            "settings": {**asdict(args), "learning_rate": LEARNING_RATE, "batch_size": BATCH_SIZE},
            "arithmetic": arithmetic_in_effect(),
            "timings_s": {**clock.laps, "total": clock.total()},
        }
        best_model = next(model for name, _, model in runs if name == best["model"])
        save_output(args, best_model, tokenizer, results, forgetting, list(new["train"]["source"]))

    print()
    print(format_table(rows, [general_set, new_set]))
    print()
    print(format_examples(examples))
    print()
    print(BLEU_NOTE)
    others = " and ".join(name for key, name in forgetting["models"].items() if key != RUN)
    print(f"\nForgetting report of {best['model']} against {others}:\n")
    print(format_report(forgetting))
    print(f"\nBest balance (highest mean exact match): {best['model']}; saved with its tokenizer to "
          f"{args.output_dir}, scores in {RESULTS_FILE} there, the forgetting report in {REPORT_FILE} and "
          f"{PAGE_FILE} (the page to look at).")
    print("Time: " + ", ".join(f"{k} {v:.0f} s" for k, v in results["timings_s"].items()))
    return results
