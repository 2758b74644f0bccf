"""Training pairs streamed from files of any size: read line by line, tokenised on the fly.

``load_pairs`` already keeps loading in bounded memory (it writes an Arrow file in batches and
memory-maps it), but a run over a corpus of millions of pairs still pays before its first update:
the corpus is copied to disk twice (pairs, then tokens), ``clean_pairs`` keeps one hash per pair
to find duplicates, and the length-grouped sampler reads every pair's length into a list. A
stream does none of this: the Trainer pulls batches from the files as it trains, so memory does
not grow with the corpus. The price: no shuffling beyond a buffer (``IterableDataset.shuffle``),
no length grouping, no cleaning (clean the files first), and ``max_steps`` must be set, since the
Trainer cannot know an epoch's length.
"""

import os

from datasets import IterableDataset

from .files import delimited_rows, json_rows, text_pair_paths, text_pair_rows
from .languages import normalize_code
from .records import PAIR_FEATURES

STREAMED_EXTENSIONS = (".tsv", ".csv", ".jsonl", ".json")


def stream_pairs(source, src_lang: str, tgt_lang: str, header: bool | None = None, columns=None) -> IterableDataset:
    """``source`` as an ``IterableDataset`` of ``{"source", "target"}`` pairs, read lazily.

    ``source`` is a ``.tsv`` / ``.csv`` file (``header=`` and ``columns=`` as for ``load_tsv``), a
    ``.jsonl`` / ``.json`` file, or a plain-text prefix ``PATH`` with ``PATH.SRC`` and ``PATH.TGT``
    (their line counts are compared first). Bad lines raise the errors of ``load_pairs``, when
    the stream reaches them.
    """
    source = str(source)
    if normalize_code(src_lang) == normalize_code(tgt_lang):
        raise ValueError(f"src_lang={src_lang!r} and tgt_lang={tgt_lang!r} name the same language")
    extension = os.path.splitext(source)[1].lower()
    if extension in STREAMED_EXTENSIONS:
        if not os.path.isfile(source):
            raise FileNotFoundError(f"{source} not found")
        if extension in (".tsv", ".csv"):
            delimiter = "\t" if extension == ".tsv" else ","
            generator, gen_kwargs, _ = delimited_rows(source, src_lang, tgt_lang, delimiter, header, columns)
        else:
            generator, gen_kwargs, _ = json_rows(source, src_lang, tgt_lang)
    elif any(os.path.isfile(path) for path in text_pair_paths(source, src_lang, tgt_lang)):
        generator, gen_kwargs, _ = text_pair_rows(source, src_lang, tgt_lang)
    else:
        raise ValueError(
            f"cannot stream {source!r}; accepted: a file ending in {', '.join(STREAMED_EXTENSIONS)}, or a "
            f"plain-text prefix PATH with PATH.{src_lang} and PATH.{tgt_lang}"
        )
    return IterableDataset.from_generator(generator, features=PAIR_FEATURES, gen_kwargs=gen_kwargs)
