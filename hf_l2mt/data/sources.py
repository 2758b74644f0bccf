"""``load_pairs``: one entry point that picks the loader from the source's name."""

import os

from datasets import Dataset

from .ding import DING_PATH, load_ding
from .errors import EmptyCorpusError
from .files import load_csv, load_jsonl, load_text_pair, load_tsv, text_pair_paths
from .hub import load_hub_pairs
from .languages import normalize_code
from .memories import load_mo, load_po, load_tmx
from .paths import check_source_file, missing_hint

LOADERS_BY_EXTENSION = {
    ".tsv": load_tsv, ".csv": load_csv, ".jsonl": load_jsonl, ".json": load_jsonl,
    ".tmx": load_tmx, ".po": load_po, ".mo": load_mo,
}

# What a file of each kind holds when it gives no pair although it is not empty.
_NO_PAIR_WHY = {
    ".tsv": "only a header line, or blank lines", ".csv": "only a header line, or blank lines",
    ".jsonl": "only blank lines, or an empty array", ".json": "only blank lines, or an empty array",
    ".tmx": "no <tu> element: is it a TMX file?",
    ".po": "no translated entry (the log counts the untranslated, fuzzy and obsolete ones)",
    ".mo": "no translated entry",
}


def accepted_sources(src_lang: str = "SRC", tgt_lang: str = "TGT") -> str:
    extensions = ", ".join(LOADERS_BY_EXTENSION)
    return (
        f"a file ending in {extensions}; a plain-text prefix PATH with PATH.{src_lang} and PATH.{tgt_lang}; "
        f"'ding' or 'ding:PATH' (default {DING_PATH}); 'hub:NAME[:CONFIG]'; "
        "or a folder written by save_to_disk"
    )


def load_pairs(source: str, src_lang: str, tgt_lang: str, **kwargs) -> Dataset:
    """Pairs from ``source``; ``kwargs`` go to the chosen loader.

    ``hub:wmt/wmt16:de-en`` → ``load_hub_pairs`` (``split=`` and other ``load_dataset`` arguments);
    ``ding`` / ``ding:PATH`` → ``load_ding`` (``domain=``, ``synonyms=``, ``keep_parentheses=``);
    ``*.tsv`` / ``*.csv`` → ``load_tsv`` / ``load_csv`` (``header=``, ``columns=``);
    ``*.jsonl`` / ``*.json`` → ``load_jsonl``; ``*.tmx`` → ``load_tmx``; ``*.po`` / ``*.mo`` → polib;
    a folder → ``load_hub_pairs`` (``save_to_disk`` output or data files); ``data/train`` with
    ``data/train.en`` and ``data/train.de`` → ``load_text_pair``.
    """
    source = str(source)
    if normalize_code(src_lang) == normalize_code(tgt_lang):
        raise ValueError(f"src_lang={src_lang!r} and tgt_lang={tgt_lang!r} name the same language")
    if source.startswith("hub:"):
        name, _, config = source[len("hub:"):].partition(":")
        return load_hub_pairs(name, config or None, src_lang=src_lang, tgt_lang=tgt_lang, **kwargs)
    if source == "ding" or source.startswith("ding:") or _same_file(source, DING_PATH):
        path = DING_PATH if source == "ding" else source.removeprefix("ding:")
        return load_ding(path, src_lang, tgt_lang, **kwargs)
    extension = os.path.splitext(source)[1].lower()
    loader = LOADERS_BY_EXTENSION.get(extension)
    if loader is not None:
        check_source_file(source)
        return _not_empty(loader(source, src_lang, tgt_lang, **kwargs), source, [source], _NO_PAIR_WHY[extension])
    if os.path.isdir(source):
        return load_hub_pairs(source, src_lang=src_lang, tgt_lang=tgt_lang, **kwargs)
    sides = text_pair_paths(source, src_lang, tgt_lang)
    if any(os.path.isfile(path) for path in sides):
        return _not_empty(load_text_pair(source, src_lang, tgt_lang, **kwargs), source, sides, "")
    if not os.path.lexists(source):
        raise FileNotFoundError(
            f"{source} not found, nor {sides[0]} and {sides[1]} beside it: {missing_hint(source)}; "
            f"accepted: {accepted_sources(src_lang, tgt_lang)}"
        )
    raise ValueError(f"cannot tell how to read {source!r}; accepted: {accepted_sources(src_lang, tgt_lang)}")


def _not_empty(dataset: Dataset, source: str, files: list[str], why: str) -> Dataset:
    """``dataset``, or ``EmptyCorpusError`` saying what ``files`` hold instead of pairs."""
    if len(dataset):
        return dataset
    if all(os.path.getsize(path) == 0 for path in files):
        why = "the file is empty (0 bytes)" if len(files) == 1 else "both files are empty (0 bytes)"
    raise EmptyCorpusError(f"{source}: no pair in it: {why}; check the file, and the language codes")


def _same_file(path: str, other: str) -> bool:
    return os.path.isfile(path) and os.path.isfile(other) and os.path.samefile(path, other)
