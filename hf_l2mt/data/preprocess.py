"""Tokenising pairs for a seq2seq model, and the collator that pads each batch.

``preprocess_pairs`` writes ``input_ids``, ``attention_mask``, ``labels`` and ``length``
(the longer of source and target, in tokens). Batches are padded per batch, not to a fixed
length (``make_data_collator``), and recipes set ``train_sampling_strategy="group_by_length"``
(the ``group_by_length=True`` flag of transformers 4.x) so that each batch holds pairs of
similar length and little compute goes to padding. transformers' ``LengthGroupedSampler``
reads the lengths from ``length_column_name`` (``"length"``) when the column reaches it, which
needs ``remove_unused_columns=False``; the collator below drops the column before the model
sees it. With ``remove_unused_columns=True`` the sampler measures ``input_ids`` instead, one
row at a time.
"""

from dataclasses import dataclass

from datasets import Dataset, IterableDataset
from transformers import DataCollatorForSeq2Seq

from .language_codes import set_tokenizer_languages
from .languages import LANGUAGE_NAMES, language_name

PAIR_TEXT_COLUMNS = ("source", "target", "domain")
MODEL_COLUMNS = ("input_ids", "attention_mask", "labels")


def t5_prefix(src_lang: str, tgt_lang: str) -> str:
    """T5's task prefix, ``"translate English to German: "``, for two language codes."""
    try:
        return f"translate {language_name(src_lang)} to {language_name(tgt_lang)}: "
    except KeyError as error:
        raise ValueError(
            f"no English name for language code {error.args[0]!r} to build the T5 prefix; known codes: "
            f"{', '.join(sorted(LANGUAGE_NAMES))}; pass source_prefix='translate X to Y: ' instead"
        ) from None


def resolve_source_prefix(src_lang: str, tgt_lang: str, source_prefix: str | None, model_config) -> str:
    """``source_prefix`` when given; T5's task prefix for T5 models (``model_type == "t5"``); else ``""``."""
    if source_prefix is not None:
        return source_prefix
    if getattr(model_config, "model_type", None) == "t5":
        return t5_prefix(src_lang, tgt_lang)
    return ""


def check_max_lengths(model_config, max_source_length: int, max_target_length: int) -> None:
    """Both lengths positive and within ``config.max_position_embeddings`` where the model has one.

    T5 has relative position buckets and no such attribute: any length is accepted.
    """
    limit = getattr(model_config, "max_position_embeddings", None) if model_config is not None else None
    for flag, value in (("max_source_length", max_source_length), ("max_target_length", max_target_length)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{flag}={value!r}: give a positive number of tokens")
        if limit is not None and value > limit:
            raise ValueError(
                f"{flag}={value} exceeds the model's max_position_embeddings={limit} "
                f"({type(model_config).__name__}); set {flag} to at most {limit}"
            )


def preprocess_pairs(
    dataset: Dataset | IterableDataset,
    tokenizer,
    src_lang: str,
    tgt_lang: str,
    max_source_length: int,
    max_target_length: int,
    source_prefix: str | None = None,
    model_config=None,
) -> Dataset | IterableDataset:
    """Tokenised pairs: ``input_ids``, ``attention_mask``, ``labels``, ``length``; text columns dropped.

    A stream (``stream_pairs``) stays a stream, tokenised batch by batch as it is read.

    Sources get the prefix of ``resolve_source_prefix``; both sides are truncated to their
    maximum length. Tokenisers of multilingual models (NLLB-200, M2M100, mBART-50) get their
    ``src_lang`` / ``tgt_lang`` set to their own codes for the pair first (``de`` → ``deu_Latn``,
    ``hf_l2mt.data.language_codes``), so that sources start with the source's language token and
    targets with the target's.
    """
    check_max_lengths(model_config, max_source_length, max_target_length)
    set_tokenizer_languages(tokenizer, src_lang, tgt_lang)
    prefix = resolve_source_prefix(src_lang, tgt_lang, source_prefix, model_config)

    def tokenize(batch):
        model_inputs = tokenizer(
            [prefix + text for text in batch["source"]], max_length=max_source_length, truncation=True
        )
        labels = tokenizer(text_target=batch["target"], max_length=max_target_length, truncation=True)["input_ids"]
        model_inputs["labels"] = labels
        model_inputs["length"] = [max(len(src), len(tgt)) for src, tgt in zip(model_inputs["input_ids"], labels)]
        return model_inputs

    removed = [name for name in dataset.column_names if name in PAIR_TEXT_COLUMNS]
    if isinstance(dataset, IterableDataset):  # tokenised batch by batch as the Trainer pulls them
        return dataset.map(tokenize, batched=True, remove_columns=removed)
    return dataset.map(tokenize, batched=True, remove_columns=removed, desc="Tokenizing pairs")


@dataclass
class PairCollator(DataCollatorForSeq2Seq):
    """``DataCollatorForSeq2Seq`` that ignores columns the model does not take (``length``).

    The ``length`` column must reach the Trainer's sampler (``remove_unused_columns=False``)
    but not ``model.forward``.
    """

    def __call__(self, features, return_tensors=None):
        features = [{name: value for name, value in feature.items() if name in MODEL_COLUMNS} for feature in features]
        return super().__call__(features, return_tensors=return_tensors)


def make_data_collator(tokenizer, model=None, pad_to_multiple_of: int | None = None) -> PairCollator:
    """Pads inputs with the tokeniser's pad id and labels with -100 (ignored by the loss), per batch.

    With ``model``, the collator also builds ``decoder_input_ids`` from the labels.
    ``pad_to_multiple_of=8`` lets fp16/bf16 matmuls use tensor cores.
    """
    return PairCollator(tokenizer, model=model, label_pad_token_id=-100, pad_to_multiple_of=pad_to_multiple_of)
