"""The options of CTranslate2's ``Translator.translate_batch`` under which an export decodes as transformers'
``generate`` does with the model's generation config.

| generation config (transformers) | ``translate_batch`` |
|---|---|
| ``num_beams`` (the caller's) | ``beam_size`` |
| ``length_penalty`` (default 1.0) | ``length_penalty`` |
| ``early_stopping`` ``True`` / ``False`` or ``"never"`` | ``patience`` 1 / ``UNHURRIED_PATIENCE`` |
| ``max_new_tokens``, ``forced_eos_token_id`` | ``max_decoding_length`` |
| ``min_new_tokens``, else ``min_length`` | ``min_decoding_length`` (0 when neither is set) |

Both engines score a finished hypothesis as its log-probability divided by its length, ``</s>`` counted, to
the power ``length_penalty`` (the four hypotheses of a numbers-demo sentence scored alike to 1e-5 in both).
They differ in when a beam search stops. transformers (``early_stopping=False``, its default) keeps the
``num_beams`` best finished hypotheses and goes on while the best running beam, at its current length,
still scores above the worst of them (``_check_early_stop_heuristic``, transformers 5.25). CTranslate2
stops once ``beam_size × patience`` hypotheses have finished, whatever their scores (``BeamSearch::search``,
CTranslate2 4.8); with its default patience of 1 it often stopped before transformers had found a longer,
better-scoring translation ("eleven": "elf" against "elftausendelf" from the numbers demo's chosen model).
``early_stopping=True`` is transformers stopping at ``num_beams`` finished hypotheses: patience 1.
"""

# CTranslate2's patience when transformers searches on past num_beams finished hypotheses (early_stopping
# False or "never"). No patience reproduces transformers' stopping rule; 5 is the smallest that gave
# transformers' beam-4 translations on >= 99.5 % of both sentence sets of benchmarks/export_parity.py with the
# numbers demo's chosen model, float32 (docs/export.md#beam-search-in-an-export). A longer search costs time.
UNHURRIED_PATIENCE = 5.0


def generation_setting(generation_config, name: str, default):
    """The generation config's ``name`` (a ``GenerationConfig`` or the dict of its JSON), ``default`` when unset."""
    if generation_config is None:
        return default
    if isinstance(generation_config, dict):
        value = generation_config.get(name)
    else:
        value = getattr(generation_config, name, None)
    return default if value is None else value


def decoding_length(generation_config, max_new_tokens: int) -> int:
    """CTranslate2's ``max_decoding_length`` that gives the hypotheses of transformers' ``max_new_tokens``.

    With ``forced_eos_token_id`` set (opus-mt's configs set it), transformers spends the last of the
    ``max_new_tokens`` on ``</s>`` when a translation reaches the limit, which decoding drops; CTranslate2
    has no forced end token, so it stops one token earlier to produce the same text.
    """
    forced_eos = generation_setting(generation_config, "forced_eos_token_id", None) is not None
    return max(1, max_new_tokens - 1) if forced_eos else max_new_tokens


def shortest_decoding(generation_config) -> int:
    """CTranslate2's ``min_decoding_length`` for transformers' ``min_new_tokens`` or ``min_length``.

    ``min_length`` counts the decoder start token, ``min_new_tokens`` does not; CTranslate2 counts generated
    tokens before ``</s>``. Unset, transformers lets a translation end at its first token (an empty one),
    which CTranslate2's default of 1 forbids.
    """
    min_new_tokens = generation_setting(generation_config, "min_new_tokens", None)
    if min_new_tokens is not None:
        return min_new_tokens
    return max(0, generation_setting(generation_config, "min_length", 0) - 1)


def decoding_options(generation_config, num_beams: int, max_new_tokens: int) -> dict:
    """``translate_batch`` keyword arguments for ``num_beams`` and ``max_new_tokens`` (already within the
    export's positions) under ``generation_config`` (``None``: transformers' defaults)."""
    early_stopping = generation_setting(generation_config, "early_stopping", False)
    return {
        "beam_size": num_beams,
        "length_penalty": float(generation_setting(generation_config, "length_penalty", 1.0)),
        "patience": 1.0 if early_stopping is True else UNHURRIED_PATIENCE,
        "max_decoding_length": decoding_length(generation_config, max_new_tokens),
        "min_decoding_length": shortest_decoding(generation_config),
    }
