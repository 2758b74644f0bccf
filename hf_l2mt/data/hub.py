"""Datasets in the Hub's ``translation`` format (wmt14, wmt16, opus100, opus_books, iwslt2017).

Each row has ``{"translation": {"de": ..., "en": ...}}``. ``translation_pairs`` turns any such
dataset (from the Hub, a local JSON file through ``load_dataset("json", ...)``, or a folder
written by ``save_to_disk``) into ``source``/``target`` columns without leaving Arrow: the
``translation`` struct is flattened and its two columns renamed, no row goes through Python.

Without a network, ``load_dataset`` retries each request with back-off (about 25 s with
huggingface_hub 1.x) before it looks in its cache. ``load_hub_pairs`` first tries a TCP connection
to the Hub (3 s at most); when it fails, the dataset is read in offline mode, from the cache only,
and a dataset not cached gives ``SourceUnavailableError`` at once. Behind an HTTP(S) proxy the
Hub is not probed: only the proxy knows whether it can be reached.
"""

import os
import socket
from contextlib import contextmanager
from urllib.parse import urlsplit

import datasets
import huggingface_hub
from datasets import Dataset, DatasetDict, load_dataset, load_from_disk
from datasets.data_files import EmptyDatasetError
from datasets.features import Translation

from .errors import DataFormatError, SourceUnavailableError
from .languages import match_pair

_PROBE_SECONDS = 3.0
_PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


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
    offline = huggingface_hub.constants.HF_HUB_OFFLINE or datasets.config.HF_HUB_OFFLINE
    unreachable = not offline and not _hub_reachable()
    try:
        with _offline_mode(unreachable):
            return load_dataset(name, config, split=split, **load_kwargs)
    except (ConnectionError, FileNotFoundError):
        if not (offline or unreachable):
            raise
        why = "offline mode is on (HF_HUB_OFFLINE=1)" if offline else \
            f"{huggingface_hub.constants.ENDPOINT} cannot be reached"
        raise SourceUnavailableError(
            f"hub:{name}{':' + config if config else ''} (split {split!r}): {why}, and no copy of it is cached "
            "on this machine; load it once where the Hub can be reached (it is then cached), "
            "or give a local file (TSV, JSON Lines, ...) or a folder written by save_to_disk"
        ) from None


def _hub_reachable() -> bool:
    """Whether a TCP connection to the Hub's host opens within ``_PROBE_SECONDS`` (true behind a proxy)."""
    if any(os.environ.get(variable) for variable in _PROXY_VARIABLES):
        return True
    endpoint = urlsplit(huggingface_hub.constants.ENDPOINT)
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        with socket.create_connection((endpoint.hostname, port), timeout=_PROBE_SECONDS):
            return True
    except OSError:
        return False


@contextmanager
def _offline_mode(on: bool):
    """Offline mode for this call only: both libraries read the flag at call time, not only at import."""
    if not on:
        yield
        return
    saved = huggingface_hub.constants.HF_HUB_OFFLINE, datasets.config.HF_HUB_OFFLINE
    huggingface_hub.constants.HF_HUB_OFFLINE = datasets.config.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        huggingface_hub.constants.HF_HUB_OFFLINE, datasets.config.HF_HUB_OFFLINE = saved


def _is_saved_dataset(name: str) -> bool:
    return os.path.isdir(name) and any(
        os.path.isfile(os.path.join(name, marker)) for marker in ("state.json", "dataset_dict.json")
    )
