"""The end of a run compared with its start: the starting model translates the evaluation sets too.

``hf_l2mt.apps.recipes.runner.run`` calls ``forgetting_against_base`` after its final evaluation when a set is
general domain, so that every such run says what it kept and what it learned without being asked.
"""

from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

from ...data.language_codes import prepare_translation_pair
from ...evaluation.forgetting import BASE, RUN, build_report
from ...evaluation.translate import translate
from ...hub_probe import offline_mode
from ...tokenizer_warnings import without_sacremoses_recommendation
from ..publish.model_card import hub_id_or_local_name, redact_secrets, shorten_local_paths


def forgetting_against_base(
    recipe, from_cache, eval_pairs, translations, general, generation, command, device
) -> dict:
    """The forgetting report of the fine-tuned ``translations`` against the starting model, which translates every
    evaluation set with its own tokenizer and the same generation settings, on ``device``."""
    with without_sacremoses_recommendation(), offline_mode(from_cache):
        tokenizer = AutoTokenizer.from_pretrained(recipe.model_name_or_path, trust_remote_code=recipe.trust_remote_code)
        base = AutoModelForSeq2SeqLM.from_pretrained(
            recipe.model_name_or_path, trust_remote_code=recipe.trust_remote_code
        )
    prepare_translation_pair(base, tokenizer, recipe.src_lang, recipe.tgt_lang)
    base_translations = {name: translate(pairs["source"], base, tokenizer, device=device, **generation)
                         for name, pairs in eval_pairs.items()}
    references = {name: list(pairs["target"]) for name, pairs in eval_pairs.items()}
    return build_report(
        references, {BASE: base_translations, RUN: translations}, general,
        models={BASE: hub_id_or_local_name(recipe.model_name_or_path)[1], RUN: "this run"},
        command=shorten_local_paths(redact_secrets(command)),
        sources={name: list(pairs["source"]) for name, pairs in eval_pairs.items()},
    )
