"""Source sentences as token ids for translation, the too long truncated with one warning; no torch needed.

Shared by the PyTorch engine (``translate``) and the CTranslate2 one (``ctranslate2_engine``), which must
feed their models the same ids.
"""

import logging

logger = logging.getLogger(__name__)


def encode_sources(tokenizer, sources: list[str]) -> list[list[int]]:
    """``tokenizer``'s ids of each of ``sources``; one longer than ``tokenizer.model_max_length`` is truncated to it.

    The one warning is ours, with the count and the first sentence; ``verbose=False`` keeps the tokenizer's own
    "Token indices sequence length is longer than ..." from repeating it.
    """
    input_ids = tokenizer(sources, verbose=False)["input_ids"]
    too_long = [i for i, ids in enumerate(input_ids) if len(ids) > tokenizer.model_max_length]
    if too_long:
        logger.warning(
            "translate: %d source sentence(s) longer than model_max_length=%d tokens are truncated (first: #%d)",
            len(too_long), tokenizer.model_max_length, too_long[0],
        )
        truncated = tokenizer([sources[i] for i in too_long], truncation=True, verbose=False)["input_ids"]
        for index, ids in zip(too_long, truncated):
            input_ids[index] = ids
    return input_ids
