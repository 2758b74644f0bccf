"""Batched translation with a fine-tuned model, and sacreBLEU evaluation of test sets.

``translate`` sorts the sentences by length so that each batch holds sentences of similar length
(little compute is spent on padding) and returns the translations in input order.
``evaluate_files`` translates each test set and scores it with ``hf_l2mt.evaluation.metrics.score_translations``;
``report_scores`` prints the scores as a table and saves them, signatures included, as JSON.
"""

import copy
import os

import torch
from tqdm.auto import tqdm
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer, GenerationConfig

from ..core.generation_length import capped_model_new_tokens
from ..core.lora import adapter_base_model, is_adapter_directory, load_adapter_model
from ..tokenizer_warnings import without_sacremoses_recommendation
from .source_ids import encode_sources
from .text_lines import read_lines


class ModelDirectoryError(ValueError):
    """A model directory that is missing or holds no saved model."""


def load_translation_model(path: str):
    """``(model, tokenizer)`` saved with ``save_pretrained`` in the local directory ``path``, model in eval mode.

    ``path`` may also be a LoRA adapter (``adapter_config.json``, as a run with ``adapter='lora'`` saves it):
    its base model (``base_model_name_or_path``, a local directory) is loaded and the adapter merged into it,
    which translates as base + adapter does. The tokenizer is the adapter folder's, else the base's.
    Only local files are read and no code from the directory is run (``trust_remote_code=False``).
    """
    if is_adapter_directory(path):
        return _load_adapter_as_model(path)
    if not os.path.isfile(os.path.join(path, "config.json")):
        what = "does not exist" if not os.path.exists(path) else "has no config.json"
        raise ModelDirectoryError(
            f"load_translation_model: {path!r} {what}; pass a directory written by save_pretrained "
            "(the output_dir of a finished run)"
        )
    with without_sacremoses_recommendation():
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True, trust_remote_code=False)
    model = AutoModelForSeq2SeqLM.from_pretrained(path, local_files_only=True, trust_remote_code=False)
    return model.eval(), tokenizer


def _load_adapter_as_model(path: str):
    base = adapter_base_model(path)
    if base is None or not os.path.isfile(os.path.join(base, "config.json")):
        raise ModelDirectoryError(
            f"load_translation_model: {path!r} is a LoRA adapter whose base model {base!r} is not a local model "
            "directory; set base_model_name_or_path in its adapter_config.json to the base's directory"
        )
    model, base_tokenizer = load_translation_model(base)
    tokenizer = base_tokenizer
    if any(os.path.isfile(os.path.join(path, name)) for name in ("tokenizer_config.json", "tokenizer.json")):
        with without_sacremoses_recommendation():
            tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True, trust_remote_code=False)
    return load_adapter_model(path, model).merge_and_unload().eval(), tokenizer


def translate(
    texts: list[str],
    model,
    tokenizer,
    *,
    batch_size: int = 32,
    num_beams: int = 4,
    max_new_tokens: int = 128,
    source_prefix: str | None = None,
    device=None,
    progress: bool = True,
) -> list[str]:
    """Translate ``texts`` in batches of similar length; the result is in input order.

    ``source_prefix`` is prepended to every sentence (T5: ``"translate English to German: "``).
    ``device`` moves the model there; by default it runs where the model is. Sentences longer than
    ``tokenizer.model_max_length`` tokens are truncated, with a warning. ``max_new_tokens`` is capped at the
    positions the model's decoder embeds (``hf_l2mt.core.generation_length``), with a warning the first time.
    """
    if isinstance(texts, str):
        raise ValueError("translate: texts is a single string; pass a list of sentences")
    for flag, value in (("batch_size", batch_size), ("num_beams", num_beams), ("max_new_tokens", max_new_tokens)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"translate: {flag}={value!r}; accepted: an integer >= 1")
    texts = list(texts)
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise ValueError(f"translate: texts[{index}] is a {type(text).__name__}; accepted: str")
    if not texts:
        return []
    if device is not None:
        model.to(device)
    device = next(model.parameters()).device
    input_ids = encode_sources(tokenizer, [f"{source_prefix}{text}" for text in texts] if source_prefix else texts)
    # Longest first: an out-of-memory error shows in the first batch, not after most of the work.
    order = sorted(range(len(texts)), key=lambda i: len(input_ids[i]), reverse=True)
    batches = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
    translations = [""] * len(texts)
    was_training, model_generation_config = model.training, model.generation_config
    model.eval()
    model.generation_config = generation_limits(
        model_generation_config, num_beams, capped_model_new_tokens(model, max_new_tokens)
    )
    try:
        with torch.inference_mode():
            for batch in tqdm(batches, desc="Translating", unit="batch", disable=not progress or len(batches) < 2):
                features = {
                    "input_ids": [input_ids[i] for i in batch],
                    "attention_mask": [[1] * len(input_ids[i]) for i in batch],
                }
                inputs = tokenizer.pad(features, return_tensors="pt").to(device)
                generated = model.generate(**inputs)
                for index, text in zip(batch, tokenizer.batch_decode(generated, skip_special_tokens=True)):
                    translations[index] = text.strip()
    finally:
        model.generation_config = model_generation_config
        model.train(was_training)
    return translations


def generation_limits(config: GenerationConfig, num_beams: int, max_new_tokens: int) -> GenerationConfig:
    """A copy of the model's generation ``config`` with this call's beams and ``max_new_tokens``, and no ``max_length``.

    ``generate`` warns "Both `max_new_tokens` ... and `max_length` ... seem to have been set" on every call
    while the model's own config holds a ``max_length`` (opus-mt's: 512; transformers 5.24,
    ``generation/utils.py``, ``_prepare_generated_length``), and then lets ``max_new_tokens`` win; so the
    translations are those of ``max_new_tokens`` alone, without the warning. It reads the model's config,
    not the one passed to ``generate``, hence the swap in ``translate``.
    """
    limited = copy.deepcopy(config)
    limited.num_beams = num_beams
    if num_beams == 1:  # a beam-search setting: generate warns that greedy decoding ignores it
        limited.early_stopping = False
    limited.max_new_tokens = max_new_tokens
    limited.max_length = None
    return limited


def evaluate_files(model_dir: str, test_sets: dict, **translate_kwargs) -> dict[str, dict]:
    """Translate and score each test set with the model saved in ``model_dir``.

    ``test_sets`` maps a name to ``(sources, references)``; each side is a list of sentences or the
    path of a text file with one sentence per line. ``translate_kwargs`` go to ``translate``.
    Returns ``{name: score_translations(...)}``.
    """
    from .metrics import score_translations  # sacreBLEU: for scoring, not for hf-l2mt translate

    loaded = read_test_sets(test_sets)
    model, tokenizer = load_translation_model(model_dir)
    return {
        name: score_translations(translate(sources, model, tokenizer, **translate_kwargs), references)
        for name, (sources, references) in loaded.items()
    }


def read_test_sets(test_sets: dict) -> dict[str, tuple[list[str], list[str]]]:
    """``{name: (sources, references)}`` as lists of sentences, each pair checked to have equal, non-zero lengths."""
    loaded = {}
    for name, pair in test_sets.items():
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise ValueError(f"evaluate_files: test set {name!r} must be a pair (sources, references)")
        sources, source_name = _sentences(pair[0], "sources")
        references, reference_name = _sentences(pair[1], "references")
        if len(sources) != len(references) or not sources:
            raise ValueError(
                f"evaluate_files: test set {name!r}: {source_name} has {len(sources)} sentences and "
                f"{reference_name} has {len(references)}; accepted: the same number, at least one"
            )
        loaded[name] = (sources, references)
    return loaded


def _sentences(side, what: str) -> tuple[list[str], str]:
    if isinstance(side, (str, os.PathLike)):
        return read_lines(side), str(side)
    return list(side), what


def report_scores(scores: dict[str, dict], json_path: str | None = None) -> str:
    """A plain-text table of ``scores`` (one row per test set); also saved as JSON when ``json_path`` is given."""
    from .metrics import save_scores

    if json_path is not None:
        save_scores(scores, json_path)
    headers = ("set", "BLEU", "chrF", "TER", "exact match", "sentences")
    rows = [
        (name, *(f"{result[key]:.2f}" for key in ("bleu", "chrf", "ter", "exact_match")),
         str(result.get("num_sentences", "")))
        for name, result in scores.items()
    ]
    widths = [max(len(row[column]) for row in [headers, *rows]) for column in range(len(headers))]
    lines = [
        "  ".join([row[0].ljust(widths[0]), *(cell.rjust(width) for cell, width in zip(row[1:], widths[1:]))])
        for row in [headers, *rows]
    ]
    return "\n".join(lines)
