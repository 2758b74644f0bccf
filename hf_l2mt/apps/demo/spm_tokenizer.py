"""Train a small SentencePiece model and wrap it as a ``MarianTokenizer`` (the files opus-mt models ship).

``MarianTokenizer`` (transformers 5.24, ``models/marian/tokenization_marian.py``) reads three files:
``source.spm`` and ``target.spm`` (SentencePiece models that split text into pieces) and ``vocab.json``
(piece → model id; a piece missing from it becomes ``<unk>``). One shared model is written under both
names, as for opus-mt models with a shared vocabulary. Ids follow the opus-mt layout: ``</s>`` is 0,
``<unk>`` is 1, the pieces follow in SentencePiece order and ``<pad>`` comes last (it is also the
decoder start token of Marian models).
"""

import json
import os
import tempfile
from collections.abc import Iterable

import sentencepiece as spm
from transformers import MarianTokenizer

from ...tokenizer_warnings import without_sacremoses_recommendation

EOS, UNK, PAD = "</s>", "<unk>", "<pad>"
MIN_VOCAB_SIZE = 8


def load_marian_tokenizer(directory: str) -> MarianTokenizer:
    """``MarianTokenizer.from_pretrained(directory)`` without the sacremoses recommendation."""
    with without_sacremoses_recommendation():
        return MarianTokenizer.from_pretrained(directory)


def train_marian_tokenizer(
    texts: Iterable[str],
    output_dir: str,
    vocab_size: int = 400,
    source_lang: str = "en",
    target_lang: str = "de",
) -> MarianTokenizer:
    """Train one unigram SentencePiece model on ``texts`` (source and target sentences together) and save
    a ``MarianTokenizer`` to ``output_dir`` that ``AutoTokenizer.from_pretrained(output_dir)`` loads.

    ``vocab_size`` counts the pieces plus ``</s>`` and ``<unk>``; ``<pad>`` is added on top. The limit is
    soft: a corpus too small for ``vocab_size`` pieces gets as many as it supports.
    """
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < MIN_VOCAB_SIZE:
        raise ValueError(f"vocab_size: got {vocab_size!r}; accepted: an integer >= {MIN_VOCAB_SIZE}")
    sentences = [t for t in texts if t.strip()]
    if not sentences:
        raise ValueError("texts: no non-empty sentence to train the SentencePiece model on")
    with tempfile.TemporaryDirectory() as tmp:
        prefix = os.path.join(tmp, "spm")
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(sentences),
            model_prefix=prefix,
            model_type="unigram",
            vocab_size=vocab_size,
            hard_vocab_limit=False,
            character_coverage=1.0,  # keep ä, ö, ü, ß as pieces instead of mapping them to <unk>
            eos_id=0,
            unk_id=1,
            bos_id=-1,
            pad_id=-1,  # <pad> lives in vocab.json only, after every piece, as in opus-mt vocabularies
            eos_piece=EOS,
            unk_piece=UNK,
            # One thread: with more, the EM's expected counts are summed in another order and the pieces
            # differ (the demo's 400-piece model came out different with 1, 2 and 16 threads).
            num_threads=1,
            minloglevel=2,
        )
        processor = spm.SentencePieceProcessor(model_file=prefix + ".model")
        vocab = {processor.id_to_piece(i): i for i in range(processor.get_piece_size())}
        vocab[PAD] = len(vocab)
        vocab_path = os.path.join(tmp, "vocab.json")
        with open(vocab_path, "w", encoding="utf-8") as handle:
            json.dump(vocab, handle, ensure_ascii=False, indent=2)
        with without_sacremoses_recommendation():
            tokenizer = MarianTokenizer(
                source_spm=prefix + ".model",
                target_spm=prefix + ".model",
                vocab=vocab_path,
                source_lang=source_lang,
                target_lang=target_lang,
                unk_token=UNK,
                eos_token=EOS,
                pad_token=PAD,
            )
        tokenizer.save_pretrained(output_dir)
    return load_marian_tokenizer(output_dir)
