"""The two tasks of the forgetting study: a general domain to pretrain on and a domain to adapt to.

``numbers``  English→German number words (``hf_l2mt.apps.demo.numbers_task``): general = cardinals, domain = years
             (or ordinals); a tiny Marian (d_model 128, 2+2 layers) learns it in minutes on one core.
``ding``     English→German entries of the Ding dictionary: general = untagged entries (words, phrases
             and the sentence-like entries), domain = the entries of one subject tag (default ``med.``).
``gettext``  English→German software strings of Debian's gettext catalogues (``benchmarks/gettext_corpus.py``):
             general = every package but the held-out family, domain = one product family
             (default ``postgresql``; or ``gcc``, ...).

Each task gives four sets of ``(source, target)`` rows: ``general_train``, ``general_test``,
``domain_train`` and ``domain_test``. No held-out source is a training source of either domain, so a
score on a test set is never a lookup of something seen in training.
"""

import os
from dataclasses import dataclass

from datasets import Dataset
from transformers import MarianConfig, MarianTokenizer

SRC_LANG, TGT_LANG = "en", "de"


@dataclass
class Task:
    name: str
    general: str
    domain: str
    general_train: Dataset
    general_test: Dataset
    domain_train: Dataset
    domain_test: Dataset


@dataclass(frozen=True)
class ModelShape:
    """A Marian encoder-decoder shape; the vocabulary comes from the tokenizer."""

    d_model: int
    layers: int
    heads: int
    ffn: int
    max_positions: int


NUMBERS_SHAPE = ModelShape(d_model=128, layers=2, heads=4, ffn=512, max_positions=64)
DING_SHAPE = ModelShape(d_model=256, layers=3, heads=4, ffn=1024, max_positions=128)
# UI strings are as long as Ding's sentence-like entries (median 6 source words, 99 % at most 21),
# so the Ding base's shape: 7.6M parameters with an 8,000-piece vocabulary.
GETTEXT_SHAPE = DING_SHAPE


def marian_config(shape: ModelShape, tokenizer) -> MarianConfig:
    """Marian config for ``shape`` with ids as opus-mt has them: ``</s>`` 0, ``<pad>`` last and decoder start."""
    return MarianConfig(
        vocab_size=len(tokenizer), d_model=shape.d_model, encoder_layers=shape.layers,
        decoder_layers=shape.layers, encoder_attention_heads=shape.heads, decoder_attention_heads=shape.heads,
        encoder_ffn_dim=shape.ffn, decoder_ffn_dim=shape.ffn, max_position_embeddings=shape.max_positions,
        pad_token_id=tokenizer.pad_token_id, decoder_start_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id, forced_eos_token_id=tokenizer.eos_token_id,
        dropout=0.1, attention_dropout=0.0, activation_dropout=0.0, scale_embedding=True, share_encoder_decoder_embeddings=True,
    )


def load_or_train_tokenizer(directory: str, texts, vocab_size: int) -> MarianTokenizer:
    """The MarianTokenizer saved in ``directory``; trained there on ``texts()`` first if it is missing."""
    if not os.path.isfile(os.path.join(directory, "vocab.json")):
        from hf_l2mt.apps.demo.spm_tokenizer import train_marian_tokenizer

        tmp = f"{directory}.tmp"
        train_marian_tokenizer(texts(), tmp, vocab_size=vocab_size, source_lang=SRC_LANG, target_lang=TGT_LANG)
        os.replace(tmp, directory)
    return MarianTokenizer.from_pretrained(directory)


def both_sides(*datasets: Dataset):
    """Every source and target sentence of ``datasets``, for training a shared vocabulary."""
    return lambda: [text for d in datasets for column in ("source", "target") for text in d[column]]


def _without_sources(dataset: Dataset, sources: set[str]) -> Dataset:
    return dataset.filter(lambda s: s not in sources, input_columns="source")


# ---- numbers ------------------------------------------------------------------------------------


def numbers_task(domain: str = "year", *, general_size: int, domain_size: int, heldout: int, seed: int = 0,
                 general_high: int | None = None, general: str = "cardinal") -> Task:
    """Cardinals (0 to ``general_high``) to pretrain on and ``domain`` (years or ordinals) to adapt to.

    The splits are fixed by ``seed``.
    """
    from hf_l2mt.apps.demo.numbers_task import numbers_splits

    general_splits = numbers_splits(general, train_size=general_size, heldout_size=heldout, seed=seed, low=0,
                                    high=general_high)
    domain_splits = numbers_splits(domain, train_size=domain_size, heldout_size=heldout, seed=seed)
    columns = ["source", "target"]
    general_train, general_test = (general_splits[s].select_columns(columns) for s in ("train", "test"))
    domain_train, domain_test = (domain_splits[s].select_columns(columns) for s in ("train", "test"))
    # Years 2000-2009 read like cardinals ("two thousand and one"): no test source may be trained on.
    general_train = _without_sources(general_train, set(domain_test["source"]))
    domain_train = _without_sources(domain_train, set(general_test["source"]))
    return Task("numbers", general, domain, general_train, general_test, domain_train, domain_test)


# ---- Ding ---------------------------------------------------------------------------------------


def in_domain_subset(train: Dataset, size: int | None, seed: int = 0) -> Dataset:
    """The first ``size`` in-domain training pairs in an order fixed by ``seed`` (all of them for ``None``).

    The subsets are nested (500 pairs are the first 500 of the 2,000), as a translation memory grows, and
    the same for every fine-tuning seed, so seeds differ only in the training's own randomness.
    """
    if size is None:
        return train
    if not 0 < size <= len(train):
        raise ValueError(f"--domain_size {size}: the in-domain part has {len(train)} training pairs; "
                         f"accepted: 1 to {len(train)}")
    return train.shuffle(seed=seed).select(range(size)).flatten_indices()


def ding_task(tag: str = "med.", *, heldout: int, seed: int = 0, max_chars: int = 200, path: str | None = None,
              domain_size: int | None = None) -> Task:
    """Untagged Ding entries (general) and the entries tagged ``tag`` (domain), English→German.

    Each alternative keeps its first synonym (``synonyms="first"``), so a source has one reference
    translation rather than a list of equivalents. The general set leaves out every source that also
    has a subject tag somewhere in Ding, so the general side (and the base trained on it) is the same
    for every ``tag`` and no in-domain test source is a general training source.
    """
    from hf_l2mt.data import DING_PATH, SUBJECT_TAGS, clean_pairs, load_ding, split_pairs
    from hf_l2mt.data.ding import subject_tag

    if subject_tag(tag) is None:
        raise ValueError(f"--tag {tag!r} is not a Ding subject tag; accepted: {', '.join(sorted(SUBJECT_TAGS))}")
    tag = subject_tag(tag)
    pairs = load_ding(path or DING_PATH, src_lang=SRC_LANG, tgt_lang=TGT_LANG, synonyms="first")
    pairs, _ = clean_pairs(pairs, max_length=max_chars, name="Ding")
    # [:] reads each column in one go (a datasets Column iterated item by item took over a minute here)
    tagged_sources = {source for source, domain in zip(pairs["source"][:], pairs["domain"][:]) if domain}
    general = pairs.filter(lambda s, d: d == "" and s not in tagged_sources, input_columns=["source", "domain"])
    domain = pairs.filter(lambda d: tag in d.split(","), input_columns="domain")
    if len(domain) < 2 * heldout:
        raise ValueError(f"--tag {tag!r}: only {len(domain)} Ding pairs; --heldout {heldout} needs at least {2 * heldout}")
    general_splits = split_pairs(general, {"test": heldout}, seed=seed)
    domain_splits = split_pairs(domain, {"test": heldout}, seed=seed)
    columns = ["source", "target"]
    return Task("ding", "untagged", tag, *(d.select_columns(columns) for d in (
        general_splits["train"], general_splits["test"], in_domain_subset(domain_splits["train"], domain_size, seed),
        domain_splits["test"])))


# ---- gettext ------------------------------------------------------------------------------------


def gettext_task(domain: str = "postgresql", *, heldout: int, seed: int = 0, cache_dir: str | None = None,
                 max_chars: int = 200, domain_size: int | None = None, corpus_dir: str | None = None) -> Task:
    """Debian's German gettext catalogues: every package but ``domain``'s family (general) and that family.

    The corpus has one pair per source string (``gettext_corpus.build_corpus``), so no held-out
    source is a training source of either part. The packages are downloaded once into ``cache_dir``; with
    ``corpus_dir``, the corpus is read from the ``pairs.jsonl`` that ``benchmarks.gettext_corpus`` wrote there.
    """
    from benchmarks.gettext_corpus import DEFAULT_CACHE, build_corpus, domain_splits, read_corpus

    if corpus_dir is not None:  # written by benchmarks.gettext_corpus, for a machine without the packages
        corpus = read_corpus(corpus_dir, max_chars=max_chars)
    else:
        corpus = build_corpus(cache_dir=cache_dir or DEFAULT_CACHE, max_chars=max_chars)
    splits = domain_splits(corpus, domain, heldout, seed=seed)
    splits["domain_train"] = in_domain_subset(splits["domain_train"], domain_size, seed)
    columns = ["source", "target"]
    return Task("gettext", f"all packages but {domain}", domain, *(splits[name].select_columns(columns) for name in (
        "general_train", "general_test", "domain_train", "domain_test")))
