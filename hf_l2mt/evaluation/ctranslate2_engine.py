"""Translation with a CTranslate2 export (``hf-l2mt export``): the same sentences in, the same strings out.

An export folder holds CTranslate2's ``model.bin`` beside the Hugging Face tokenizer it was made with
and the model's ``generation_config.json``. ``translate_with_export`` tokenizes with that tokenizer,
lets CTranslate2 batch by tokens (it sorts by length and returns the results in input order) and
decodes the tokens back with the tokenizer, as ``hf_l2mt.evaluation.translate.translate`` does with
the PyTorch model. Translating with a Marian export imports neither torch nor transformers
(``export_tokenizer``), so that ``hf-l2mt translate EXPORT`` starts in well under the time torch takes to load.
"""

import json
import os

from ..core.generation_length import capped_new_tokens
from .ctranslate2_options import decoding_options
from .export_tokenizer import load_export_tokenizer
from .source_ids import encode_sources

EXPORT_WEIGHTS = "model.bin"
EXPORT_INFO = "hf_l2mt_export.json"


def is_ctranslate2_export(path: str) -> bool:
    """True when ``path`` is a folder CTranslate2 converted a model into."""
    return os.path.isfile(os.path.join(path, EXPORT_WEIGHTS))


def read_export_info(path: str) -> dict:
    """What ``hf-l2mt export`` recorded about the export in ``path`` (source model, quantization, parity)."""
    info_path = os.path.join(path, EXPORT_INFO)
    if not os.path.isfile(info_path):
        return {}
    with open(info_path, encoding="utf-8") as handle:
        return json.load(handle)


class ExportedModel:
    """A CTranslate2 ``Translator`` with the tokenizer and generation settings of the model it came from."""

    def __init__(self, path: str, device: str = "cpu", num_threads: int = 0):
        import ctranslate2

        if not is_ctranslate2_export(path):
            from .translate import ModelDirectoryError

            what = "does not exist" if not os.path.exists(path) else f"has no {EXPORT_WEIGHTS}"
            raise ModelDirectoryError(f"{path!r} {what}; pass a folder written by hf-l2mt export")
        device_type, _, index = device.partition(":")
        self.translator = ctranslate2.Translator(
            path, device=device_type, device_index=int(index or 0), intra_threads=num_threads
        )
        self.tokenizer = load_export_tokenizer(path)
        self.generation_config = read_generation_config(path)
        # Recorded by hf-l2mt export; an export without the record is not capped.
        self.decoder_positions = read_export_info(path).get("decoder_positions")
        self.name = path


def read_generation_config(path: str) -> dict | None:
    """The export's ``generation_config.json`` as a dict (``decoding_options`` reads either form); ``None``
    without the file. Read as JSON: transformers' ``GenerationConfig`` would import torch."""
    config_path = os.path.join(path, "generation_config.json")
    if not os.path.isfile(config_path):
        return None
    with open(config_path, encoding="utf-8") as handle:
        return json.load(handle)


def translate_with_export(
    texts: list[str],
    model: ExportedModel,
    *,
    max_batch_tokens: int = 4096,
    num_beams: int = 4,
    max_new_tokens: int = 128,
    source_prefix: str | None = None,
) -> list[str]:
    """Translate ``texts`` with ``model`` in batches of at most ``max_batch_tokens`` source tokens; input order kept.

    Decodes as ``translate`` does with the PyTorch model (``decoding_options``); ``max_new_tokens`` is capped at
    the export's decoder positions, with a warning the first time.
    """
    if isinstance(texts, str):
        raise ValueError("translate_with_export: texts is a single string; pass a list of sentences")
    for flag, value in (("max_batch_tokens", max_batch_tokens), ("num_beams", num_beams),
                        ("max_new_tokens", max_new_tokens)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"translate_with_export: {flag}={value!r}; accepted: an integer >= 1")
    texts = list(texts)
    if not texts:
        return []
    tokenizer = model.tokenizer
    input_ids = encode_sources(tokenizer, [f"{source_prefix}{text}" for text in texts] if source_prefix else texts)
    max_new_tokens = capped_new_tokens(max_new_tokens, model.decoder_positions, model.name)
    results = model.translator.translate_batch(
        [tokenizer.convert_ids_to_tokens(ids) for ids in input_ids], max_batch_size=max_batch_tokens,
        batch_type="tokens", **decoding_options(model.generation_config, num_beams, max_new_tokens),
    )
    return [
        tokenizer.decode(tokenizer.convert_tokens_to_ids(result.hypotheses[0]), skip_special_tokens=True).strip()
        for result in results
    ]


def evaluate_export_files(path: str, test_sets: dict, *, device: str = "cpu", num_threads: int = 0,
                          **translate_kwargs) -> dict[str, dict]:
    """``evaluate_files`` for an export folder: ``{name: score_translations(...)}``; ``translate_kwargs`` go to
    ``translate_with_export``."""
    from .metrics import score_translations
    from .translate import read_test_sets

    loaded = read_test_sets(test_sets)
    model = ExportedModel(path, device=device, num_threads=num_threads)
    return {
        name: score_translations(translate_with_export(sources, model, **translate_kwargs), references)
        for name, (sources, references) in loaded.items()
    }
