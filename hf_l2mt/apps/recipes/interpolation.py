"""``interpolate_after``: at the end of a run, the models between its start and its end (``hf-l2mt interpolate``),
scored on the run's evaluation sets.

``hf_l2mt.apps.recipes.runner.run`` calls ``check_interpolation`` before training and ``interpolate_run`` after the
final evaluation. The starting model is saved once in ``output_dir/interpolated/base`` (with the run's tokenizer and
the generation settings the run gave it), so that the α folders, the scores and a later
``hf-l2mt interpolate output_dir --base output_dir/interpolated/base --max_general_drop ...`` (whose translations
are then read from the cache) all read a local folder, whatever ``model_name_or_path`` named.
"""

import logging
import os

from ..weights.interpolate import OUTPUT_SUBDIR, InterpolateSettings, check_alphas, interpolate
from ..weights.interpolation_scores import score_alphas

logger = logging.getLogger("hf_l2mt")

BASE_SUBDIR = "base"


def check_interpolation(alphas: list[float], adapter: str, model_name_or_path: str) -> None:
    """Refuse, before training, an ``interpolate_after`` that cannot be done or scored."""
    if not alphas:
        return
    try:
        check_alphas(list(alphas))
    except ValueError as err:
        raise ValueError(str(err).replace("--alpha", "interpolate_after", 1)) from None
    if adapter == "lora" and not os.path.isdir(model_name_or_path):
        raise ValueError(
            f"interpolate_after: got {' '.join(map(str, alphas))} with adapter='lora' and model_name_or_path "
            f"{model_name_or_path!r}, which is no local folder: scoring the adapter loads the base its "
            "adapter_config.json names; accepted: a local model_name_or_path, or interpolate_after left empty (then "
            "hf-l2mt interpolate OUTPUT_DIR --base LOCAL_BASE)"
        )


def interpolate_run(recipe, from_cache: bool, output_dir: str, tokenizer, eval_pairs: dict, general: list[str],
                    generation: dict, device) -> str:
    """Save the starting model (prepared for the language pair, as the run's was) and ``tokenizer`` under
    ``output_dir/interpolated/base``, write one model per α of ``recipe.interpolate_after`` and score each on
    ``eval_pairs``; returns the table and where the files went."""
    from transformers import AutoModelForSeq2SeqLM

    from ...data.language_codes import prepare_translation_pair
    from ...hub_probe import offline_mode

    with offline_mode(from_cache):
        base_model = AutoModelForSeq2SeqLM.from_pretrained(
            recipe.model_name_or_path, trust_remote_code=recipe.trust_remote_code
        )
    prepare_translation_pair(base_model, tokenizer, recipe.src_lang, recipe.tgt_lang)
    base_dir = os.path.join(output_dir, OUTPUT_SUBDIR, BASE_SUBDIR)
    base_model.save_pretrained(base_dir)
    del base_model
    tokenizer.save_pretrained(base_dir)
    alphas = list(recipe.interpolate_after)
    targets = interpolate(output_dir, base_dir, alphas, overwrite=True)
    settings = InterpolateSettings(
        run_dir=output_dir, base=base_dir, alpha=alphas, general_sets=list(general),
        batch_size=generation["batch_size"], num_beams=generation["num_beams"],
        max_new_tokens=generation["max_new_tokens"], source_prefix=generation["source_prefix"], device=str(device),
    )
    sets = {"sources": {name: list(pairs["source"]) for name, pairs in eval_pairs.items()},
            "references": {name: list(pairs["target"]) for name, pairs in eval_pairs.items()},
            "general": list(general)}
    return score_alphas(settings, targets, sets)
