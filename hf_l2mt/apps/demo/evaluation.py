"""Step 5: every model scored on both held-out sets, a few example translations, the table and the best balance."""

import tempfile

from tqdm.auto import tqdm
from transformers import DataCollatorForSeq2Seq, Seq2SeqTrainer

from ...evaluation.metrics import make_compute_metrics
from ...evaluation.translate import translate
from ..terminal.console import use_tidy_progress
from .arguments import MAX_NEW_TOKENS
from .training import training_args

SCORES = ("exact_match", "chrf", "bleu")
EXAMPLES_PER_DOMAIN = 2
BLEU_NOTE = (
    "BLEU is not the headline here: each German output is one compound word, so no hypothesis has a 2-gram\n"
    "and sacreBLEU's corpus BLEU is 0.0 even for perfect translations. Exact match (the whole number right)\n"
    "and chrF (character n-grams, partial credit for 'neunzehnhundert...') measure what matters."
)


def evaluate(model, tokenizer, eval_sets: dict, seed: int) -> dict[str, float]:
    """``Seq2SeqTrainer.evaluate`` with generation on every set: ``eval_<set>_exact_match``, ``..._chrf``, ..."""
    with tempfile.TemporaryDirectory() as scratch:
        trainer = Seq2SeqTrainer(
            model=model,
            args=training_args(scratch, 1, seed),
            eval_dataset=eval_sets,
            data_collator=DataCollatorForSeq2Seq(tokenizer, model=model),
            compute_metrics=make_compute_metrics(tokenizer),
        )
        use_tidy_progress(trainer, None)  # score_runs shows one bar for all models
        return trainer.evaluate()


def score_runs(runs: list[tuple], tokenizer, eval_sets: dict, seed: int) -> list[dict]:
    """One row per ``(name, l2sp_lambda, model)`` run: ``<set>_exact_match``, ``<set>_chrf``, ``<set>_bleu``."""
    rows = []
    for name, lam, model in tqdm(runs, desc="scoring", unit="model", dynamic_ncols=True):
        metrics = evaluate(model, tokenizer, eval_sets, seed)
        scores = {f"{s}_{m}": metrics[f"eval_{s}_{m}"] for s in eval_sets for m in SCORES}
        rows.append({"model": name, "l2sp_lambda": lam, **scores})
    return rows


def best_balanced(rows: list[dict], sets: list[str]) -> dict:
    """The fine-tuned model (every row after the base) with the highest mean exact match over ``sets``."""
    return max(rows[1:], key=lambda row: sum(row[f"{s}_exact_match"] for s in sets))


def held_out_examples(runs, tokenizer, *tests) -> list[dict]:
    """The first few held-out pairs of each domain and every model's translation of them."""
    chosen = [row for test in tests for row in test.select(range(min(EXAMPLES_PER_DOMAIN, len(test))))]
    sources = [row["source"] for row in chosen]
    outputs = {name: translate(sources, model, tokenizer, num_beams=1, max_new_tokens=MAX_NEW_TOKENS, progress=False)
               for name, _, model in runs}
    return [
        {"source": row["source"], "reference": row["target"], "outputs": {n: o[i] for n, o in outputs.items()}}
        for i, row in enumerate(chosen)
    ]


def format_table(rows: list[dict], sets: list[str]) -> str:
    header = ["model"] + [f"{s} {m}" for s in sets for m in ("exact", "chrF")]
    lines = [[r["model"]] + [f"{r[f'{s}_{m}']:.1f}" for s in sets for m in ("exact_match", "chrf")] for r in rows]
    widths = [max(len(line[i]) for line in [header, *lines]) for i in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
    return "\n".join(fmt.format(*line) for line in [header, *lines])


def format_examples(examples: list[dict]) -> str:
    lines = ["Held-out examples (* = exact):"]
    for example in examples:
        lines.append(f"  {example['source']}  ->  {example['reference']}")
        width = max(map(len, example["outputs"]))
        for name, output in example["outputs"].items():
            lines.append(f"    {name:<{width}}  {output}{' *' if output == example['reference'] else ''}")
    return "\n".join(lines)
