"""How many tokens an encoder-decoder model can generate before its decoder runs out of positions.

Marian, BART, mBART, Pegasus, FSMT and M2M100/NLLB decoders add to each token the embedding of its
position, read from a table of ``max_position_embeddings`` rows. The decoder start token sits at
position 0 and the k-th generated token at position k when it is fed back; the last token is never
fed back, so a table of P rows allows P new tokens, and the (P+1)-th fails with ``IndexError: index
out of range in self`` in PyTorch (CTranslate2: "No position encodings are defined for positions >=
P"). A model that loops (never emits ``</s>``) reaches that limit on any ``max_new_tokens`` above P.
M2M100 grows its table on demand in PyTorch but not in a CTranslate2 export; capping it too keeps
both engines alike. T5 embeds relative positions: its config names no table, and nothing is capped.

Decoder-only models are left alone: their positions include the prompt, and many (rotary) have no
table to run past.

Every path that generates caps here and logs one line per model and requested length, so a long
file or a run that evaluates many times says it once.
"""

import logging

logger = logging.getLogger(__name__)

# The config fields that give the size of a decoder's position table, in the order they are looked up:
# max_target_positions where a config has separate encoder and decoder sizes (Speech2Text, Whisper).
POSITION_FIELDS = ("max_target_positions", "max_position_embeddings", "n_positions")

_reported: set[tuple[str, int, int]] = set()


def decoder_positions(config) -> int | None:
    """The number of positions an encoder-decoder ``config``'s decoder embeds; ``None`` when it sets no limit
    (relative positions, or a decoder-only model)."""
    if not getattr(config, "is_encoder_decoder", False):
        return None
    for name in POSITION_FIELDS:
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def capped_new_tokens(max_new_tokens: int, positions: int | None, model_name: str) -> int:
    """``max_new_tokens``, or ``positions`` when that is fewer (the decoder start token takes position 0 and the
    last new token is never fed back, so ``positions`` new tokens fit); logs the first cap of each model and
    requested length."""
    if positions is None or max_new_tokens <= positions:
        return max_new_tokens
    key = (model_name, max_new_tokens, positions)
    if key not in _reported:
        _reported.add(key)
        logger.warning(
            "%s: generating at most %d new tokens, not %d: its decoder embeds %d positions, and a longer "
            "translation (one that loops) would run past them", model_name, positions, max_new_tokens, positions,
        )
    return positions


def model_name(model) -> str:
    """How the messages name ``model``: its folder, else its class."""
    return getattr(model.config, "name_or_path", "") or type(model).__name__


def capped_model_new_tokens(model, max_new_tokens: int) -> int:
    """``capped_new_tokens`` for a loaded transformers ``model``."""
    return capped_new_tokens(max_new_tokens, decoder_positions(model.config), model_name(model))


def capped_generate_kwargs(model, gen_kwargs: dict) -> dict:
    """``Seq2SeqTrainer``'s ``generate`` arguments with the length capped at ``model``'s decoder positions.

    The length is ``max_new_tokens`` when it or the model's generation config sets one (``generate`` prefers it),
    else ``max_length``, which counts the decoder start token: ``gen_kwargs``' (``generation_max_length``), the
    generation config's, or transformers' default (``_get_default_generation_params``, which
    ``Seq2SeqTrainer.prediction_step`` reads too).
    """
    positions = decoder_positions(model.config)
    if positions is None:
        return gen_kwargs
    generation, name = model.generation_config, model_name(model)
    max_new_tokens = gen_kwargs.get("max_new_tokens") or generation.max_new_tokens
    if max_new_tokens is not None:
        within = capped_new_tokens(max_new_tokens, positions, name)
        return gen_kwargs if within == max_new_tokens else {**gen_kwargs, "max_new_tokens": within}
    max_length = (gen_kwargs.get("max_length") or generation.max_length
                  or generation._get_default_generation_params()["max_length"])
    within = 1 + capped_new_tokens(max_length - 1, positions, name)
    return gen_kwargs if within == max_length else {**gen_kwargs, "max_length": within}
