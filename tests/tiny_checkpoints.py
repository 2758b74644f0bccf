"""Tiny checkpoints saved as a Hub checkpoint is (config, weights, tokenizer), and tiny parallel data files.

``save_opus_mt_checkpoint`` and ``save_t5_checkpoint`` write the file layouts of opus-mt and t5-small
repositories on the Hub, with SentencePiece models trained on the given pairs. ``save_looping_checkpoint``
writes a Marian of ``POSITIONS`` positions that never ends a translation.

The tokenizer is a word-level ``PreTrainedTokenizerFast`` over ``WORDS`` whose special ids match the
tiny models of conftest: Marian's ``</s>`` = 0 and ``<pad>`` = 1, T5's ``<pad>`` = 0 and ``</s>`` = 1.
"""

import io
import random

import sentencepiece as spm
import torch
from datasets import Dataset, Features, Translation
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import (
    GenerationConfig, MarianConfig, MarianMTModel, PreTrainedTokenizerFast, T5Config, T5ForConditionalGeneration,
    T5Tokenizer,
)

from conftest import EOS, PAD, T5_EOS, T5_PAD, VOCAB, tiny_marian, tiny_t5
from hf_l2mt.apps.demo.spm_tokenizer import train_marian_tokenizer

WORDS = "the house is small a dog barks cat sleeps red green blue big old new tree car sun moon day night".split()


def word_tokenizer(pad_id: int, eos_id: int) -> PreTrainedTokenizerFast:
    vocab = {"</s>": eos_id, "<pad>": pad_id, "<unk>": 2, **{word: 3 + i for i, word in enumerate(WORDS)}}
    assert sorted(vocab.values()) == list(range(VOCAB))
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", eos_id)])
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")


# looping_marian: its positions, the word it repeats, and its translation of anything at any length above them
# (with forced_eos_token_id the last of the POSITIONS new tokens is </s>, which decoding drops).
POSITIONS = 8
LOOP_WORD = "dog"
LOOPED = " ".join([LOOP_WORD] * (POSITIONS - 1))


def looping_marian() -> MarianMTModel:
    """A tiny Marian of ``POSITIONS`` positions whose every step picks LOOP_WORD: it never ends a translation."""
    torch.manual_seed(0)
    config = MarianConfig(
        vocab_size=VOCAB, d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, max_position_embeddings=POSITIONS,
        pad_token_id=PAD, eos_token_id=EOS, decoder_start_token_id=PAD, forced_eos_token_id=EOS,
    )
    model = MarianMTModel(config)
    loop_id = word_tokenizer(PAD, EOS).convert_tokens_to_ids(LOOP_WORD)
    with torch.no_grad():
        # Logits of a random tiny model stay within a few units; 100 outweighs them at every step.
        model.final_logits_bias[0, loop_id] = 100.0
    return model


def save_looping_checkpoint(path) -> str:
    """``looping_marian`` and its tokenizer saved in ``path``; returns the path as a string."""
    looping_marian().save_pretrained(path)
    word_tokenizer(PAD, EOS).save_pretrained(path)
    return str(path)


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


def save_opus_mt_checkpoint(path, pairs) -> str:
    """A tiny Marian saved in opus-mt's file layout: config, safetensors weights, ``source.spm``,
    ``target.spm``, ``vocab.json``, tokenizer and generation configs; the tokenizer is trained on ``pairs``."""
    tokenizer = train_marian_tokenizer([text for pair in pairs for text in pair], str(path), vocab_size=60)
    torch.manual_seed(3)
    config = MarianConfig(
        vocab_size=len(tokenizer), d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id, forced_eos_token_id=tokenizer.eos_token_id,
    )
    MarianMTModel(config).save_pretrained(path)
    return str(path)


def save_t5_checkpoint(path, pairs, source_prefix: str = "translate English to German: ") -> str:
    """A tiny T5 saved in t5-small's file layout: config, safetensors weights, generation config, ``spiece.model``
    and the ``tokenizer.json`` + ``tokenizer_config.json`` that ``T5Tokenizer.save_pretrained`` writes.

    ``spiece.model`` is a unigram SentencePiece model trained on ``pairs`` (sources with ``source_prefix``), with
    T5's special ids: ``<pad>`` 0, ``</s>`` 1, ``<unk>`` 2. The tokenizer is built from its pieces and scores
    rather than converted from the file: transformers 5 converts a ``spiece.model`` only with protobuf installed,
    and t5-small ships ``tokenizer.json`` too, which is what ``AutoTokenizer`` reads. No sentinel tokens
    (``extra_ids=0``): translation never uses them.
    """
    path.mkdir(parents=True, exist_ok=True)
    texts = [source_prefix + source for source, _ in pairs] + [target for _, target in pairs]
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(texts), model_prefix=str(path / "spiece"), model_type="unigram", vocab_size=60,
        hard_vocab_limit=False, pad_id=0, eos_id=1, unk_id=2, bos_id=-1, pad_piece="<pad>", eos_piece="</s>",
        unk_piece="<unk>", num_threads=1, minloglevel=2,
    )
    (path / "spiece.vocab").unlink()
    pieces = spm.SentencePieceProcessor(model_file=str(path / "spiece.model"))
    vocab = [(pieces.id_to_piece(i), pieces.get_score(i)) for i in range(pieces.get_piece_size())]
    tokenizer = T5Tokenizer(vocab=vocab, extra_ids=0, model_max_length=512)
    tokenizer.save_pretrained(path)
    torch.manual_seed(3)
    config = T5Config(
        vocab_size=len(tokenizer), d_model=16, d_kv=8, d_ff=32, num_layers=1, num_decoder_layers=1, num_heads=2,
        dropout_rate=0.0, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
    )
    model = T5ForConditionalGeneration(config)
    model.generation_config = GenerationConfig(pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
    model.save_pretrained(path)
    return str(path)


def translation_parquet(pairs, src_lang: str = "en", tgt_lang: str = "de") -> bytes:
    """``pairs`` as a parquet file with wmt16's one column, ``translation`` ({"de": ..., "en": ...})."""
    rows = [{"translation": {src_lang: source, tgt_lang: target}} for source, target in pairs]
    features = Features({"translation": Translation(languages=sorted([src_lang, tgt_lang]))})
    buffer = io.BytesIO()
    Dataset.from_list(rows, features=features).to_parquet(buffer)
    return buffer.getvalue()


def wmt16_files(config: str = "de-en") -> dict[str, bytes]:
    """A tiny dataset repository laid out as wmt16 on the Hub: one parquet file per split under ``config/``,
    and the README whose YAML header maps the config and its splits to them."""
    files, entries = {}, []
    for seed, (split, count) in enumerate((("train", 24), ("validation", 6), ("test", 6))):
        path = f"{config}/{split}-00000-of-00001.parquet"
        files[path] = translation_parquet(sentence_pairs(count, seed=10 + seed))
        entries.append(f"  - split: {split}\n    path: {path}\n")
    files["README.md"] = f"---\nconfigs:\n- config_name: {config}\n  data_files:\n{''.join(entries)}---\n".encode()
    return files
