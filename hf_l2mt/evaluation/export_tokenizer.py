"""The tokenizer of an export folder, read with sentencepiece alone where it can be: no transformers, no torch.

``hf-l2mt translate EXPORT`` should answer in about a second, and ``import transformers`` alone takes most
of that on 2 CPU cores (``AutoTokenizer`` imports torch too). A Marian export (opus-mt's layout:
``source.spm``, ``target.spm``, ``vocab.json``, ``tokenizer_config.json``) is read by ``MarianPieces``,
which tokenizes and decodes as ``MarianTokenizer`` does (transformers 5.25, ``tokenization_marian.py`` and
``tokenization_python.py``): the text split around the special tokens, each part cut into pieces by the
source model, a piece missing from the vocabulary read as ``<unk>``, ``</s>`` appended; decoding drops the
special tokens and joins the pieces with the SentencePiece model. Any other tokenizer, or a Marian setting
``MarianPieces`` does not cover, is loaded with transformers' ``AutoTokenizer``. ``hf-l2mt export`` checks
the export, and so this reading of its tokenizer, against PyTorch with transformers' tokenizer.

``MarianPieces`` has the part of a transformers tokenizer's interface that translation with an export uses:
calling it on a list of texts, ``model_max_length``, ``convert_ids_to_tokens``, ``convert_tokens_to_ids`` and
``decode``.
"""

import json
import os
import re

MARIAN_FILES = ("source.spm", "target.spm", "vocab.json", "tokenizer_config.json")
WORD_START = "\u2581"  # SentencePiece's mark of a piece that starts a word


class MarianPieces:
    """``MarianTokenizer`` of one folder, for a vocabulary shared by source and target, with sentencepiece only."""

    def __init__(self, path: str, config: dict):
        import sentencepiece

        with open(os.path.join(path, "vocab.json"), encoding="utf-8") as handle:
            self.vocabulary: dict[str, int] = json.load(handle)
        self.tokens_by_id = {index: token for token, index in self.vocabulary.items()}
        self.source_pieces = sentencepiece.SentencePieceProcessor(model_file=os.path.join(path, "source.spm"))
        self.unk_token, self.eos_token = config.get("unk_token", "<unk>"), config.get("eos_token", "</s>")
        self.model_max_length = config.get("model_max_length", 512)
        added = [entry["content"] for entry in config.get("added_tokens_decoder", {}).values()]
        self.special_tokens = {*added, self.unk_token, self.eos_token, config.get("pad_token", "<pad>")}
        # The longest first, so that a token that contains another is found whole (transformers' Trie).
        longest_first = sorted(self.special_tokens, key=len, reverse=True)
        self.special_pattern = re.compile("(" + "|".join(map(re.escape, longest_first)) + ")")
        self.special_ids = {self.vocabulary[token] for token in self.special_tokens if token in self.vocabulary}

    def _pieces(self, text: str) -> list[str]:
        pieces = []
        for part in self.special_pattern.split(text):
            if part in self.special_tokens:
                pieces.append(part)
                continue
            if part.startswith(">>") and (end := part.find("<<")) != -1:  # a target-language code, >>de<<
                pieces.append(part[: end + 2])
                part = part[end + 2 :]
            if part:
                pieces += self.source_pieces.encode(part, out_type=str)
        return pieces

    def _ids(self, text: str, truncation: bool) -> list[int]:
        unk = self.vocabulary[self.unk_token]
        ids = [self.vocabulary.get(piece, unk) for piece in self._pieces(text)]
        if truncation:
            ids = ids[: self.model_max_length - 1]
        return [*ids, self.vocabulary[self.eos_token]]

    def __call__(self, texts: list[str], truncation: bool = False, verbose: bool = True) -> dict[str, list[list[int]]]:
        """``{"input_ids": [...]}`` of each text; ``verbose`` is accepted as transformers' tokenizers take it, and
        there is nothing to say: ``encode_sources`` warns about long sentences."""
        return {"input_ids": [self._ids(text, truncation) for text in texts]}

    def convert_ids_to_tokens(self, ids: list[int]) -> list[str]:
        return [self.tokens_by_id.get(index, self.unk_token) for index in ids]

    def convert_tokens_to_ids(self, tokens: list[str]) -> list[int]:
        unk = self.vocabulary[self.unk_token]
        return [self.vocabulary.get(token, unk) for token in tokens]

    def decode(self, ids: list[int], skip_special_tokens: bool = False) -> str:
        tokens = [self.tokens_by_id.get(index, self.unk_token) for index in ids
                  if not (skip_special_tokens and index in self.special_ids)]
        text, run = "", []
        for token in tokens:  # a special token is kept whole, never decoded by SentencePiece
            if token in self.special_tokens:
                text += self.source_pieces.decode_pieces(run) + token + " "
                run = []
            else:
                run.append(token)
        text += self.source_pieces.decode_pieces(run)
        return text.replace(WORD_START, " ").strip()


def marian_pieces_settings(path: str) -> dict | None:
    """The folder's ``tokenizer_config.json`` when ``MarianPieces`` reads the tokenizer as transformers does, else None.

    Left to transformers: separate source and target vocabularies, SentencePiece options, added tokens
    with their own spacing rules, and clean-up of the decoded spaces.
    """
    if not all(os.path.isfile(os.path.join(path, name)) for name in MARIAN_FILES):
        return None
    with open(os.path.join(path, "tokenizer_config.json"), encoding="utf-8") as handle:
        config = json.load(handle)
    added = config.get("added_tokens_decoder", {}).values()
    plain_added = all(not any(entry.get(rule) for rule in ("lstrip", "rstrip", "single_word")) for entry in added)
    if (config.get("tokenizer_class") == "MarianTokenizer" and not config.get("separate_vocabs")
            and not config.get("sp_model_kwargs") and not config.get("clean_up_tokenization_spaces")
            and not config.get("split_special_tokens") and plain_added):
        return config
    return None


def load_export_tokenizer(path: str):
    """``MarianPieces`` for a Marian export it reads as transformers does, else transformers' ``AutoTokenizer``."""
    config = marian_pieces_settings(path)
    if config is not None:
        return MarianPieces(path, config)
    from transformers import AutoTokenizer

    from ..tokenizer_warnings import without_sacremoses_recommendation

    with without_sacremoses_recommendation():
        return AutoTokenizer.from_pretrained(path, local_files_only=True, trust_remote_code=False)
