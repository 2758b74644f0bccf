"""Parallel data for fine-tuning: loading pairs from files, memories, Ding and the Hub; cleaning;
held-out splits; tokenisation. See docs/data.md."""

from .causal_lm import (
    DEFAULT_PROMPT_TEMPLATE,
    CausalLMCollator,
    causal_lm_example,
    preprocess_causal_lm_pairs,
)
from .cleaning import CleaningReport, clean_pairs, normalize_whitespace
from .ding import DING_PATH, SUBJECT_TAGS, load_ding, parse_ding_line
from .errors import DataFormatError, EmptyCorpusError, LanguageNotFoundError
from .files import load_csv, load_jsonl, load_text_pair, load_tsv
from .hub import load_hub_pairs, translation_pairs
from .memories import load_mo, load_po, load_tmx
from .preprocess import (
    PairCollator,
    check_max_lengths,
    make_data_collator,
    preprocess_pairs,
    t5_prefix,
)
from .sources import load_pairs
from .splits import split_pairs
from .streaming import stream_pairs

__all__ = [
    "DEFAULT_PROMPT_TEMPLATE", "CausalLMCollator", "causal_lm_example", "preprocess_causal_lm_pairs",
    "DING_PATH", "SUBJECT_TAGS", "CleaningReport", "DataFormatError", "EmptyCorpusError", "LanguageNotFoundError",
    "PairCollator", "check_max_lengths", "clean_pairs", "load_csv", "load_ding", "load_hub_pairs", "load_jsonl",
    "load_mo", "load_pairs", "load_po", "load_text_pair", "load_tmx", "load_tsv", "make_data_collator",
    "normalize_whitespace", "parse_ding_line", "preprocess_pairs", "split_pairs", "stream_pairs", "t5_prefix",
    "translation_pairs",
]
