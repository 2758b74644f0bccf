"""Datasets in the Hub's ``translation`` format (wmt14, wmt16, opus100, opus_books, iwslt2017).

Each row has ``{"translation": {"de": ..., "en": ...}}``. ``translation_pairs`` turns any such
dataset (from the Hub, a local JSON file through ``load_dataset("json", ...)``, or a folder
written by ``save_to_disk``) into ``source``/``target`` columns without leaving Arrow: the
``translation`` struct is flattened and its two columns renamed, no row goes through Python.

Without a network, ``load_dataset`` retries each request with back-off (about 25 s with
huggingface_hub 1.x) before it looks in its cache. ``load_hub_pairs`` first probes the Hub
(``hf_l2mt.hub_probe``, 3 s at most); when it cannot be reached, the dataset is read in offline
mode, from the cache only, and a dataset not cached gives ``SourceUnavailableError`` at once.
"""

import os

from datasets import Dataset, DatasetDict, load_dataset, load_from_disk
from datasets.data_files import EmptyDatasetError
from datasets.features import Translation

from ..hub_probe import offline_mode, why_unavailable
from .errors import DataFormatError, SourceUnavailableError
from .languages import match_pair


def translation_languages(dataset: Dataset, where: str) -> list[str]:
    """Language codes of the ``translation`` column (a ``Translation`` feature or a struct)."""
    if "translation" not in dataset.column_names:
        raise DataFormatError(
            f"{where}: no 'translation' column; found columns: {', '.join(dataset.column_names)}; "
            "expected rows like {\"translation\": {\"de\": ..., \"en\": ...}}"
        )
    feature = dataset.features["translation"]
    if isinstance(feature, Translation):
        return list(feature.languages)
    if isinstance(feature, dict):
        return list(feature)
    raise DataFormatError(f"{where}: the 'translation' column is {feature}, expected one text per language code")


def translation_pairs(dataset: Dataset, src_lang: str, tgt_lang: str, where: str = "dataset") -> Dataset:
    """``source``/``target`` columns from the ``translation`` column; other columns are dropped."""
    languages = translation_languages(dataset, where)
    src_key, tgt_key = match_pair(src_lang, tgt_lang, languages, where)
    src_column, tgt_column = f"translation.{src_key}", f"translation.{tgt_key}"
    flat = dataset.select_columns(["translation"]).flatten().select_columns([src_column, tgt_column])
    return flat.rename_columns({src_column: "source", tgt_column: "target"})


def load_hub_pairs(
    name: str, config: str | None = None, split: str = "train", *, src_lang: str, tgt_lang: str, **load_kwargs
) -> Dataset:
    """``load_dataset(name, config, split=split, **load_kwargs)`` as ``source``/``target`` pairs.

    ``name`` may also be a folder written by ``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk``
    (read with ``load_from_disk``; ``split`` picks from a ``DatasetDict``). Example:
    ``load_hub_pairs("wmt16", "de-en", split="train", src_lang="en", tgt_lang="de")``.
    """
    where = f"{name}" + (f" ({config})" if config else "") + f" split {split!r}"
    if _is_saved_dataset(name):
        dataset = load_from_disk(name)
        if isinstance(dataset, DatasetDict):
            if split not in dataset:
                raise ValueError(f"{name}: no split {split!r}; it has: {', '.join(dataset)}")
            dataset = dataset[split]
    elif os.path.isdir(name):
        try:
            dataset = load_dataset(name, config, split=split, **load_kwargs)
        except EmptyDatasetError:
            raise SourceUnavailableError(
                f"{name}: this folder holds no data files (.json, .jsonl, .csv, .parquet, ...) and is not a folder "
                "written by save_to_disk (no dataset_dict.json or state.json); give a data file, or such a folder"
            ) from None
    else:
        dataset = _load_from_the_hub(name, config, split, load_kwargs)
    return translation_pairs(dataset, src_lang, tgt_lang, where)


def _load_from_the_hub(name, config, split, load_kwargs) -> Dataset:
    why = why_unavailable()
    try:
        with offline_mode(why is not None):
            return load_dataset(name, config, split=split, **load_kwargs)
    except (ConnectionError, FileNotFoundError):
        if why is None:
            raise
        raise SourceUnavailableError(
            f"hub:{name}{':' + config if config else ''} (split {split!r}): {why}, and no copy of it is cached "
            "on this machine; load it once where the Hub can be reached (it is then cached), "
            "or give a local file (TSV, JSON Lines, ...) or a folder written by save_to_disk"
        ) from None


def _is_saved_dataset(name: str) -> bool:
    return os.path.isdir(name) and any(
        os.path.isfile(os.path.join(name, marker)) for marker in ("state.json", "dataset_dict.json")
    )
