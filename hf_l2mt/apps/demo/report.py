"""The demo's forgetting report: its best-balanced model against the base and against the run with λ = 0."""

from ...evaluation.forgetting import BASE, RUN, build_report
from ...evaluation.translate import translate
from .arguments import MAX_NEW_TOKENS

PLAIN = "plain"  # the compared run: the fine-tune without regularization (λ = 0)


def report_models(runs: list[tuple], best: str) -> tuple[dict, dict]:
    """``({report name: model}, {report name: run name})``: the base, the best-balanced run, and the λ = 0 run
    when it is another one."""
    by_name = {name: model for name, _, model in runs}
    models = {BASE: by_name["base"], RUN: by_name[best]}
    plain = next((name for name, lam, _ in runs if lam == 0 and name != best), None)
    if plain is not None:
        models[PLAIN] = by_name[plain]
    return models, {BASE: "base", RUN: best, **({PLAIN: plain} if plain else {})}


def demo_report(runs: list[tuple], best: str, tokenizer, test_sets: dict, general_set: str, command: str) -> dict:
    """``build_report`` of the held-out sets (name → rows with ``source`` and ``target``), greedy translations."""
    models, names = report_models(runs, best)
    sources = {name: list(rows["source"]) for name, rows in test_sets.items()}
    translations = {
        model: {name: translate(texts, network, tokenizer, num_beams=1, max_new_tokens=MAX_NEW_TOKENS, progress=False)
                for name, texts in sources.items()}
        for model, network in models.items()
    }
    references = {name: list(rows["target"]) for name, rows in test_sets.items()}
    return build_report(references, translations, [general_set], models=names, command=command, sources=sources)
