"""Tiny checkpoints saved as a Hub checkpoint is (config, weights, tokenizer), and tiny parallel data files.

The tokenizer is a word-level ``PreTrainedTokenizerFast`` over ``WORDS`` whose special ids match the
tiny models of conftest: Marian's ``</s>`` = 0 and ``<pad>`` = 1, T5's ``<pad>`` = 0 and ``</s>`` = 1.
"""

import random

from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

from conftest import EOS, PAD, T5_EOS, T5_PAD, VOCAB, tiny_marian, tiny_t5

WORDS = "the house is small a dog barks cat sleeps red green blue big old new tree car sun moon day night".split()


def word_tokenizer(pad_id: int, eos_id: int) -> PreTrainedTokenizerFast:
    vocab = {"</s>": eos_id, "<pad>": pad_id, "<unk>": 2, **{word: 3 + i for i, word in enumerate(WORDS)}}
    assert sorted(vocab.values()) == list(range(VOCAB))
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", eos_id)])
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")


def save_checkpoint(path, kind: str = "marian") -> str:
    """A tiny Marian or T5 model and its tokenizer saved in ``path``; returns the path as a string."""
    if kind == "marian":
        model, tokenizer = tiny_marian(seed=3), word_tokenizer(PAD, EOS)
    else:
        model, tokenizer = tiny_t5(seed=3), word_tokenizer(T5_PAD, T5_EOS)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def sentence_pairs(count: int, seed: int) -> list[tuple[str, str]]:
    """Distinct (source, target) sentences of 2 to 6 words; the target reverses the source."""
    rng = random.Random(seed)
    pairs = {}
    while len(pairs) < count:
        words = [rng.choice(WORDS) for _ in range(rng.randint(2, 6))]
        pairs[" ".join(words)] = " ".join(reversed(words))
    return list(pairs.items())


def write_tsv(path, pairs, header=("en", "de")) -> str:
    lines = ["\t".join(header)] + ["\t".join(pair) for pair in pairs]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def write_ding(path, pairs, domains) -> str:
    """A dictionary file in Ding's format, German :: English, one subject label per line."""
    lines = ["# de :: en"] + [
        f"{german} [{domain}] :: {english}" for (german, english), domain in zip(pairs, domains)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)
