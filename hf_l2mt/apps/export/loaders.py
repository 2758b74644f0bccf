"""Loaders that ``hf-l2mt export`` puts in place of CTranslate2's own where those translate differently from PyTorch.

CTranslate2's Transformers converter picks a loader per configuration class from its registry
(``ctranslate2.converters.transformers._MODEL_LOADERS``). Its Marian loader (ctranslate2 4.x) drops
``<pad>`` from the vocabulary and starts the decoder from a zero vector (``start_from_zero_embedding``),
where transformers starts it from the ``<pad>`` embedding (``decoder_start_token_id``). The two agree
only while that row is zero, as in opus-mt checkpoints; fine-tuning moves it (the tied output layer
gives it a gradient), and the export then loses the first words of its translations.
``StartTokenMarianLoader`` keeps ``<pad>`` and starts from its embedding, as transformers does.
"""

import contextlib

import torch
from ctranslate2.converters import transformers as converter

# float16's lowest finite value: finite in every weight type of an export, and far enough below any
# logit that softmax gives the token no probability, as transformers' -inf does.
SUPPRESSED_LOGIT = -65504.0


def suppressed_token_ids(model) -> list[int]:
    """The single tokens the model's generation config never generates (``bad_words_ids`` of one token;
    opus-mt's and the recipes' Marian configs list ``<pad>``)."""
    bad_words = getattr(model.generation_config, "bad_words_ids", None) or []
    return sorted({ids[0] for ids in bad_words if len(ids) == 1})


class StartTokenMarianLoader(converter.MarianMTLoader):
    """Marian with ``<pad>`` kept in the vocabulary and the decoder started from its embedding.

    transformers masks the tokens of ``bad_words_ids`` in generation; CTranslate2 has no such setting in
    a model, so their output rows get a bias of ``SUPPRESSED_LOGIT`` and any translator of the export
    skips them too.
    """

    def get_model_spec(self, model):
        model.config.normalize_before = False
        model.config.normalize_embedding = False
        spec = converter.BartLoader.get_model_spec(self, model)  # MarianMTLoader's own removes the <pad> rows
        suppressed = suppressed_token_ids(model)
        if suppressed:
            projection = spec.decoder.projection
            bias = projection.bias if projection.has_bias() else torch.zeros(model.config.vocab_size)
            bias = torch.as_tensor(bias).clone()
            bias[suppressed] = SUPPRESSED_LOGIT
            projection.bias = bias
        return spec

    def set_config(self, config, model, tokenizer):
        super().set_config(config, model, tokenizer)
        config.decoder_start_token = tokenizer.convert_ids_to_tokens(model.config.decoder_start_token_id)

    def set_decoder(self, spec, decoder):
        converter.BartLoader.set_decoder(self, spec, decoder)
        spec.start_from_zero_embedding = False

    def get_vocabulary(self, model, tokenizer):
        return converter.BartLoader.get_vocabulary(self, model, tokenizer)


EXPORT_LOADERS = {"MarianConfig": StartTokenMarianLoader()}


@contextlib.contextmanager
def export_loaders(loaders: dict | None = None):
    """CTranslate2's converter registry with ``loaders`` (default ``EXPORT_LOADERS``) in place, restored after.

    The converter reads its registry inside ``convert`` and offers no other way to choose a loader.
    """
    loaders = EXPORT_LOADERS if loaders is None else loaders
    registry = converter._MODEL_LOADERS
    replaced = {name: registry[name] for name in loaders if name in registry}
    registry.update(loaders)
    try:
        yield
    finally:
        for name in loaders:
            registry.pop(name)
        registry.update(replaced)
