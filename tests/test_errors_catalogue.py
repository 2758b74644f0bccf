"""Every row of docs/errors.md, triggered for real: its error type, its message, and no user file damaged.

Each case sets up what the user had (files under ``tmp_path``), then returns the call that fails.
Every file under ``tmp_path`` is snapshotted between the two and compared after the failure.
"""

import errno
import json
import os
import re
import shutil
import socket
import struct
import sys

import datasets
import huggingface_hub
import polib
import pytest
import torch
from conftest import T5_PAD, make_args, task_dataset, tiny_marian, tiny_t5, train_with
from safetensors.torch import load_file, save_file
from transformers import MarianMTModel, NllbTokenizer, ProphetNetConfig, T5Config

from hf_l2mt.apps.cli import main as cli_main
from hf_l2mt.apps.recipes.runner import RecipeArguments, load_recipe_pairs, parse_arguments
from hf_l2mt.apps.recipes import en_de
from hf_l2mt.core import anchor as anchor_io
from hf_l2mt.core.anchor import ANCHOR_FILE, AnchorError
from hf_l2mt.core.checkpoints import IncompleteCheckpointError
from hf_l2mt.core.nonfinite import NonFiniteLossError
from hf_l2mt.core.preflight import CheckpointMismatchError, OutputDirError
from hf_l2mt.core.run_lock import LOCK_FILE, OutputDirInUseError
from hf_l2mt.data import (
    DataFormatError,
    EmptyCorpusError,
    LanguageNotFoundError,
    check_max_lengths,
    load_pairs,
)
from hf_l2mt.data.errors import SourceUnavailableError, TruncatedFileError
from hf_l2mt.data.language_codes import LanguageCodeError, set_tokenizer_languages
from hf_l2mt.data.preprocess import resolve_source_prefix
from hf_l2mt.evaluation.glossary import GlossaryError, read_glossary
from hf_l2mt.evaluation.translate import evaluate_files

DOC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "errors.md")
CASES = {}


def case(error, fragment):
    """Register ``setup(ctx) -> call`` as the row named after the function (``case_`` removed)."""

    def register(setup):
        CASES[setup.__name__.removeprefix("case_")] = (error, fragment, setup)
        return setup

    return register


class Context:
    """What a case sets up with: its folder, monkeypatch, and a copy of a real L2-SP checkpoint."""

    def __init__(self, tmp_path, monkeypatch, checkpoint_run):
        self.tmp, self.monkeypatch, self._checkpoint_run = tmp_path, monkeypatch, checkpoint_run

    def write(self, name: str, content) -> str:
        path = self.tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        (path.write_bytes if isinstance(content, bytes) else path.write_text)(content)
        return str(path)

    def run_dir(self) -> str:
        """A copy of an output_dir holding ``checkpoint-2`` (model, optimizer, anchor) of a tiny Marian."""
        target = self.tmp / "run"
        shutil.copytree(self._checkpoint_run(), target)
        return str(target)


def tiny_train(model, output_dir, pad_id=1, resume=None, dataset_size=16, **overrides):
    settings = dict(max_steps=3, l2sp_lambda=0.1) | overrides
    return lambda: train_with(
        model, task_dataset(dataset_size), make_args(output_dir, **settings), pad_id=pad_id,
        resume_from_checkpoint=resume,
    )


# ---- Data files ---------------------------------------------------------------------------------


@case(DataFormatError, "has 3 lines but")
def case_misaligned_text_pair(ctx):
    ctx.write("train.en", "one\ntwo\nthree\n")
    ctx.write("train.de", "eins\nzwei\n")
    return lambda: load_pairs(str(ctx.tmp / "train"), "en", "de", cache_dir=str(ctx.tmp / "cache"))


@case(DataFormatError, "invalid UTF-8 at byte offset 12 (line 2")
def case_invalid_utf8(ctx):
    path = ctx.write("train.tsv", b"hello\thallo\n\xff bad\tschlecht\n")
    return lambda: load_pairs(path, "en", "de", cache_dir=str(ctx.tmp / "cache"))


@case(FileNotFoundError, "train.de not found")
def case_text_pair_side_missing(ctx):
    ctx.write("train.en", "one\n")
    return lambda: load_pairs(str(ctx.tmp / "train"), "en", "de")


@case(FileNotFoundError, "corpus.tsv not found")
def case_source_file_missing(ctx):
    return lambda: load_pairs(str(ctx.tmp / "corpus.tsv"), "en", "de")


@case(ValueError, "cannot tell how to read")
def case_unknown_source_format(ctx):
    path = ctx.write("corpus.xlsx", b"PK\x03\x04")
    return lambda: load_pairs(path, "en", "de")


@case(DataFormatError, "line 2: found 1 column(s)")
def case_missing_column(ctx):
    path = ctx.write("train.tsv", "hello\thallo\nonly one side\n")
    return lambda: load_pairs(path, "en", "de", cache_dir=str(ctx.tmp / "cache"))


@case(DataFormatError, "line 2: not valid JSON")
def case_invalid_json_line(ctx):
    path = ctx.write("train.jsonl", '{"en": "hi", "de": "hallo"}\n{"en": "hi", "de": \n')
    return lambda: load_pairs(path, "en", "de", cache_dir=str(ctx.tmp / "cache"))


@case(LanguageNotFoundError, "language code 'fr' not in this dataset; it has: de, en")
def case_language_not_in_corpus(ctx):
    path = ctx.write("train.jsonl", '{"en": "hi", "de": "hallo"}\n')
    return lambda: load_pairs(path, "en", "fr", cache_dir=str(ctx.tmp / "cache"))


@case(ValueError, "name the same language")
def case_same_language(ctx):
    path = ctx.write("train.tsv", "hello\thallo\n")
    return lambda: load_pairs(path, "en", "EN")


@case(EmptyCorpusError, "no pair left after cleaning (2 pairs in; dropped empty=2")
def case_empty_corpus(ctx):
    path = ctx.write("train.tsv", "hello\t\n\tHallo\n")
    recipe = RecipeArguments(model_name_or_path="base", src_lang="en", tgt_lang="de", train_source=path,
                             eval_holdout=1)
    ctx.monkeypatch.setenv("HF_DATASETS_CACHE", str(ctx.tmp / "cache"))
    return lambda: load_recipe_pairs(recipe, seed=0)


@case(ValueError, "no English name for language code 'xx'")
def case_unknown_language_code(ctx):
    return lambda: resolve_source_prefix("xx", "de", None, T5Config())


def tiny_nllb_tokenizer():
    """NLLB's tokenizer with its 202 language codes over a vocabulary of letters (no download)."""
    letters = {letter: 4 + i for i, letter in enumerate("▁abcdefghijklmnopqrstuvwxyz")}
    return NllbTokenizer(vocab={"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, **letters}, merges=[])


@case(LanguageCodeError, "tgt_lang='deu' is not a language code of NllbTokenizer; close matches: deu_Latn; accepted")
def case_code_not_in_multilingual_tokenizer(ctx):
    return lambda: set_tokenizer_languages(tiny_nllb_tokenizer(), "en", "deu")


@case(LanguageCodeError, "tgt_lang='zh' names several languages of NllbTokenizer: zho_Hans, zho_Hant; add the script")
def case_code_with_several_scripts(ctx):
    return lambda: set_tokenizer_languages(tiny_nllb_tokenizer(), "en", "zh")


@case(ValueError, "max_source_length=512 exceeds the model's max_position_embeddings=32")
def case_max_length_beyond_model(ctx):
    return lambda: check_max_lengths(tiny_marian().config, 512, 32)


def mo_bytes(ctx, pairs=(("Hello", "Hallo"), ("Open file", "Datei öffnen"), ("Save", "Speichern"))) -> bytes:
    catalogue = polib.POFile()
    catalogue.metadata = {"Content-Type": "text/plain; charset=UTF-8", "Language": "de"}
    for msgid, msgstr in pairs:
        catalogue.append(polib.POEntry(msgid=msgid, msgstr=msgstr))
    path = str(ctx.tmp / "built" / "messages.mo")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    catalogue.save_as_mofile(path)
    with open(path, "rb") as handle:
        return handle.read()


def load_written(ctx, name, content, src_lang="en", tgt_lang="de"):
    path = ctx.write(name, content)
    return lambda: load_pairs(path, src_lang, tgt_lang, cache_dir=str(ctx.tmp / "cache"))


@case(TruncatedFileError, "ends at byte")
def case_mo_truncated(ctx):
    data = mo_bytes(ctx)
    return load_written(ctx, "messages.mo", data[:len(data) * 9 // 10])


@case(TruncatedFileError, "0 bytes, shorter than the 28-byte header of an MO file")
def case_mo_too_short(ctx):
    return load_written(ctx, "messages.mo", b"")


@case(DataFormatError, "not a compiled gettext catalogue: it starts with b'<!DOCTYP'")
def case_mo_not_mo(ctx):
    return load_written(ctx, "messages.mo", b"<!DOCTYPE html><html><body>404 Not Found</body></html>\n")


@case(DataFormatError, "MO revision 7.0 is not one gettext writes")
def case_mo_bad_revision(ctx):
    data = mo_bytes(ctx)
    return load_written(ctx, "messages.mo", data[:4] + struct.pack("<I", 7 << 16) + data[8:])


@case(DataFormatError, "of the translations is not valid UTF-8 at byte offset")
def case_mo_not_utf8(ctx):
    return load_written(ctx, "messages.mo", mo_bytes(ctx).replace("öffnen".encode(), "\xf6ffnen ".encode("latin-1")))


@case(TruncatedFileError, "line 5: the string '\"Hal' is not closed and the file ends there")
def case_po_string_cut(ctx):
    return load_written(ctx, "messages.po", 'msgid ""\nmsgstr ""\n\nmsgid "Hello"\nmsgstr "Hal')


@case(TruncatedFileError, "line 4: msgid without msgstr at the end of the file")
def case_po_msgid_without_msgstr(ctx):
    return load_written(ctx, "messages.po", 'msgid ""\nmsgstr ""\n\nmsgid "Hello"\n')


@case(DataFormatError, "line 2: the string '\"Sag \"hallo\"\"' is not closed by a quote, or holds a quote not")
def case_po_unescaped_quote(ctx):
    return load_written(ctx, "messages.po", 'msgid "Say \\"hi\\""\nmsgstr "Sag "hallo""\n')


@case(DataFormatError, "line 3: expected msgid, msgstr, a quoted string or a # comment; found 'msgstring")
def case_po_unknown_line(ctx):
    return load_written(ctx, "messages.po", 'msgid ""\nmsgstr ""\nmsgstring "x"\n')


@case(EmptyCorpusError, "no pair in it: no translated entry")
def case_po_nothing_translated(ctx):
    return load_written(ctx, "messages.po", 'msgid "Hello"\nmsgstr ""\n\nmsgid "World"\nmsgstr ""\n')


@case(DataFormatError, "line 3: 3 fields ['Yes', 'Ja', 'extra'], but line 1 has 2; a tab inside a sentence")
def case_tsv_ragged_row(ctx):
    return load_written(ctx, "train.tsv", "en\tde\nHello\tHallo\nYes\tJa\textra\n")


@case(DataFormatError, "line 2: 3 fields ['\"a', 'b\"', 'c'], but line 1 has 2; field 1 starts with a quote")
def case_tsv_quoted_tab(ctx):
    return load_written(ctx, "train.tsv", 'en\tde\n"a\tb"\tc\n')


@case(DataFormatError, "line 2: not valid CSV (unexpected end of data)")
def case_csv_quote_left_open(ctx):
    return load_written(ctx, "train.csv", 'en,de\n"Hello,Hallo\nYes,Ja\n')


@case(DataFormatError, "train.csv line 2: a field runs past 1,000 characters; most likely its opening quote")
def case_csv_field_over_limit(ctx):
    # The same check as at 16,777,216 characters, without writing a 16 MB file.
    ctx.monkeypatch.setattr("hf_l2mt.data.files.CSV_FIELD_LIMIT", 1_000)
    return load_written(ctx, "train.csv", 'en,de\n"Hello,Hallo\n' + "Yes,Ja\n" * 200)


@case(DataFormatError, "NUL byte at byte offset 1 (line 1)")
def case_nul_bytes(ctx):
    return load_written(ctx, "train.tsv", "hello\thallo\n".encode("utf-16-le"))


@case(DataFormatError, "invalid UTF-8 at byte offset 0 (line 1, byte b'\\xff') (it starts with a UTF-16 byte-order mark)")
def case_utf16_with_mark(ctx):
    return load_written(ctx, "train.tsv", "hello\thallo\n".encode("utf-16"))


@case(DataFormatError, "src_lang='en-US' and tgt_lang='en' both match 'en', so every source would be its own target")
def case_same_column_both_sides(ctx):
    return load_written(ctx, "train.tsv", "en\tde\nHello\tHallo\n", "en-US", "en")


@case(DataFormatError, "language code 'en' is there 2 times ('en', 'EN')")
def case_duplicate_language_column(ctx):
    return load_written(ctx, "train.tsv", "en\tEN\tde\nHello\tHi\tHallo\n")


@case(IsADirectoryError, "train.tsv is a folder, not a file (it holds part-1.tsv)")
def case_source_is_folder(ctx):
    ctx.write("train.tsv/part-1.tsv", "Hello\tHallo\n")
    return lambda: load_pairs(str(ctx.tmp / "train.tsv"), "en", "de")


@case(FileNotFoundError, "is a symbolic link to ")
def case_broken_symlink(ctx):
    os.symlink(str(ctx.tmp / "moved.tsv"), str(ctx.tmp / "train.tsv"))
    return lambda: load_pairs(str(ctx.tmp / "train.tsv"), "en", "de")


@case(FileNotFoundError, "which leads back to itself (a loop of links)")
def case_symlink_loop(ctx):
    os.symlink(str(ctx.tmp / "train.tsv"), str(ctx.tmp / "train.tsv"))
    return lambda: load_pairs(str(ctx.tmp / "train.tsv"), "en", "de")


@case(FileNotFoundError, "train not found, nor ")
def case_source_path_missing(ctx):
    return lambda: load_pairs(str(ctx.tmp / "data" / "train"), "en", "de")


@case(EmptyCorpusError, "train.tsv: no pair in it: the file is empty (0 bytes)")
def case_empty_file(ctx):
    return load_written(ctx, "train.tsv", "")


@case(EmptyCorpusError, "train.tsv: no pair in it: only a header line")
def case_header_only(ctx):
    return load_written(ctx, "train.tsv", "en\tde\n")


@case(DataFormatError, "line 2: expected an object")
def case_json_line_not_object(ctx):
    return load_written(ctx, "train.jsonl", '{"en": "Hello", "de": "Hallo"}\n["Yes", "Ja"]\n')


@case(DataFormatError, "memory.tmx line 3: not valid TMX/XML (Premature end of data")
def case_tmx_cut_short(ctx):
    return load_written(ctx, "memory.tmx", '<tmx version="1.4"><body>\n<tu><tuv xml:lang="en"><seg>Hello</seg></tuv>\n'
                                           '<tuv xml:lang="de"><seg>Hal')


@case(LanguageNotFoundError, "memory.tmx: language code 'de' not in this dataset; it has: en, fr")
def case_tmx_without_the_language(ctx):
    return load_written(ctx, "memory.tmx", '<tmx version="1.4"><body><tu><tuv xml:lang="en"><seg>Hello</seg></tuv>'
                                           '<tuv xml:lang="fr"><seg>Bonjour</seg></tuv></tu></body></tmx>\n')


@case(DataFormatError, "memory.tmx line 3: entity '&nbsp;' is not defined; XML defines only &amp;, &lt;")
def case_tmx_undefined_entity(ctx):
    return load_written(ctx, "memory.tmx", '<tmx version="1.4"><body>\n<tu><tuv xml:lang="en"><seg>Hello</seg></tuv>\n'
                                           '<tuv xml:lang="de"><seg>Hallo&nbsp;</seg></tuv></tu></body></tmx>\n')


@case(DataFormatError, "memory.tmx line 2: entity '&legal;' is external (declared with SYSTEM or PUBLIC)")
def case_tmx_external_entity(ctx):
    notice = ctx.write("notice.txt", "All rights reserved.")
    return load_written(ctx, "memory.tmx", f'<!DOCTYPE tmx [<!ENTITY legal SYSTEM "{notice}">]>\n<tmx version="1.4">'
                                           '<body><tu><tuv xml:lang="en"><seg>Hello &legal;</seg></tuv><tuv '
                                           'xml:lang="de"><seg>Hallo</seg></tuv></tu></body></tmx>\n')


@case(DataFormatError, "memory.tmx: entity expansion refused (")
def case_tmx_entity_bomb(ctx):
    nested = "".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10))
    return load_written(ctx, "memory.tmx", f'<!DOCTYPE tmx [<!ENTITY lol0 "lol">{nested}]>\n<tmx version="1.4"><body>'
                                           '<tu><tuv xml:lang="en"><seg>&lol9;</seg></tuv><tuv xml:lang="de"><seg>'
                                           'Hallo</seg></tuv></tu></body></tmx>\n')


@case(EmptyCorpusError, "memory.tmx: no pair in it: no <tu> element")
def case_tmx_without_units(ctx):
    return load_written(ctx, "memory.tmx", "<html><body>Service unavailable</body></html>\n")


@case(SourceUnavailableError, "hub:wmt/wmt16:de-en (split 'train'): offline mode is on (HF_HUB_OFFLINE=1)")
def case_hub_offline(ctx):
    ctx.monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    ctx.monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    return lambda: load_pairs("hub:wmt/wmt16:de-en", "en", "de", cache_dir=str(ctx.tmp / "cache"))


@case(SourceUnavailableError, "hub:wmt/wmt16:de-en (split 'train'): http://127.0.0.1:9 cannot be reached")
def case_hub_unreachable(ctx):
    ctx.monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", "http://127.0.0.1:9")
    for variable in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        ctx.monkeypatch.delenv(variable, raising=False)
    return lambda: load_pairs("hub:wmt/wmt16:de-en", "en", "de", cache_dir=str(ctx.tmp / "cache"))


@case(SourceUnavailableError, "train_source: hub:wmt/wmt16:de-en (split 'train'): offline mode is on (HF_HUB_OFFLINE=1)")
def case_recipe_hub_dataset_offline(ctx):
    ctx.monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    ctx.monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    ctx.monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(ctx.tmp / "cache"))
    recipe = RecipeArguments(model_name_or_path="unused", src_lang="en", tgt_lang="de",
                             train_source="hub:wmt/wmt16:de-en", eval_holdout=1)
    return lambda: load_recipe_pairs(recipe, seed=0)


def offline_model_run(ctx, endpoint=None):
    """The en_de recipe run as it is shipped, with an empty Hub cache and the Hub offline or unreachable."""
    ctx.monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(ctx.tmp / "hub-cache"))
    if endpoint is None:
        ctx.monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    else:
        ctx.monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", endpoint)
        for variable in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
            ctx.monkeypatch.delenv(variable, raising=False)
    return lambda: en_de.main(["--output_dir", str(ctx.tmp / "out")])


@case(SystemExit, "error: model_name_or_path: 'Helsinki-NLP/opus-mt-en-de' is not a local directory, offline mode "
                  "is on (HF_HUB_OFFLINE=1), and no copy of it is cached on this machine; give --model_name_or_path")
def case_recipe_hub_model_offline(ctx):
    return offline_model_run(ctx)


@case(SystemExit, "error: model_name_or_path: 'Helsinki-NLP/opus-mt-en-de' is not a local directory, "
                  "http://127.0.0.1:9 cannot be reached, and no copy of it is cached")
def case_recipe_hub_model_unreachable(ctx):
    return offline_model_run(ctx, "http://127.0.0.1:9")


@case(SourceUnavailableError, "this folder holds no data files")
def case_folder_without_data(ctx):
    os.makedirs(ctx.tmp / "corpus")
    return lambda: load_pairs(str(ctx.tmp / "corpus"), "en", "de")


# ---- Arguments ----------------------------------------------------------------------------------


@case(ValueError, "l2sp_lambda: got -0.1; accepted: a finite number >= 0")
def case_negative_l2sp_lambda(ctx):
    return lambda: make_args(ctx.tmp / "out", l2sp_lambda=-0.1)


@case(ValueError, "l2sp_schedule: got 'exponential'; accepted: 'constant', 'linear', 'cosine', 'sigmoid'")
def case_unknown_schedule(ctx):
    return lambda: make_args(ctx.tmp / "out", l2sp_schedule="exponential")


@case(ValueError, "weight_decay_mode: got 'adamw'; accepted: 'decoupled', 'coupled'")
def case_unknown_mode(ctx):
    return lambda: make_args(ctx.tmp / "out", weight_decay_mode="adamw")


@case(ValueError, "l2sp_warmup_steps: got 5, but the run has 5 updates")
def case_warmup_not_shorter_than_max_steps(ctx):
    return tiny_train(tiny_marian(), str(ctx.tmp / "out"), max_steps=5, l2sp_lambda=0.1, l2sp_warmup_steps=5)


@case(ValueError, "weight_decay_warmup_steps: got 3, but the run has 2 updates")
def case_warmup_not_shorter_than_epochs(ctx):
    return tiny_train(tiny_marian(), str(ctx.tmp / "out"), dataset_size=8, max_steps=-1, num_train_epochs=1,
                      weight_decay=0.01, weight_decay_warmup_steps=3)


@case(ValueError, "kl_warmup_steps: got 4, but the run has 3 updates")
def case_kl_warmup_not_shorter_than_max_steps(ctx):
    return tiny_train(tiny_marian(), str(ctx.tmp / "out"), max_steps=3, kl_lambda=0.1, kl_warmup_steps=4)


@case(ValueError, "l2sp_overrides: entry 'encoder' is not of the form REGEX=VALUE")
def case_override_syntax(ctx):
    return lambda: make_args(ctx.tmp / "out", l2sp_overrides=["encoder"])


@case(ValueError, "l2sp_include_regex: '(' is not a valid regular expression")
def case_invalid_regex(ctx):
    return lambda: make_args(ctx.tmp / "out", l2sp_include_regex="(")


@case(ValueError, "l2sp_overrides: regex 'encoder\\\\.layer\\\\.' matches no trainable parameter of MarianMTModel")
def case_override_matches_nothing(ctx):
    return tiny_train(tiny_marian(), str(ctx.tmp / "out"), l2sp_overrides=[r"encoder\.layer\.=0.5"])


@case(SystemExit, "model_name_or_path: not set; give --model_name_or_path")
def case_recipe_flag_missing(ctx):
    return lambda: parse_arguments({}, ["--output_dir", str(ctx.tmp / "out")])


@case(SystemExit, "'l2sp_lamda' is not a setting of this parser; did you mean 'l2sp_lambda'?")
def case_config_unknown_setting(ctx):
    path = ctx.write("settings.yaml", "l2sp_lamda: 0.1\n")
    return lambda: parse_arguments({}, ["--config", path])


@case(ValueError, "host_check_steps=4: a NaN or infinite update is then skipped on the device, which these "
                  "settings do not allow: optim='adamw_torch' (AdamW without found_inf")
def case_host_check_steps_without_fused_optimizer(ctx):
    return tiny_train(tiny_marian(), str(ctx.tmp / "out"), optim="adamw_torch", host_check_steps=4)


@case(ValueError, "optimizers: a ready-made optimizer cannot carry l2sp_lambda=0.1")
def case_ready_made_optimizer_with_regularizer(ctx):
    from hf_l2mt import L2MTTrainer

    model = tiny_marian()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    return lambda: L2MTTrainer(model=model, args=make_args(ctx.tmp / "out", l2sp_lambda=0.1),
                               optimizers=(optimizer, None))


@case(ValueError, "prompt_template: 'Translate:' has no {source} field")
def case_prompt_template_without_source(ctx):
    from datasets import Dataset

    from hf_l2mt.data import preprocess_causal_lm_pairs

    pairs = Dataset.from_list([{"source": "one", "target": "eins"}])
    return lambda: preprocess_causal_lm_pairs(pairs, tokenizer=None, template="Translate:")


@case(ValueError, "has no pad_token; decoder-only tokenisers often lack one: set tokenizer.pad_token")
def case_causal_lm_tokenizer_without_pad(ctx):
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    from hf_l2mt.data import CausalLMCollator

    tokenizer = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({"<unk>": 0}, unk_token="<unk>")),
                                        eos_token="<unk>")
    return lambda: CausalLMCollator(tokenizer)


# ---- Command line -------------------------------------------------------------------------------


@case(SystemExit, "'news.en,news.de' is not NAME=SOURCE_FILE,REFERENCE_FILE")
def case_bad_test_set_syntax(ctx):
    return lambda: cli_main(["evaluate", str(ctx.tmp / "run"), "--test", "news.en,news.de"])


@case(SystemExit, "no-such-run' does not exist; pass a directory written by save_pretrained")
def case_missing_model_dir(ctx):
    path = ctx.write("input.en", "hello\n")
    return lambda: cli_main(["translate", str(ctx.tmp / "no-such-run"), "--input", path, "--device", "cpu"])


@case(SystemExit, "not valid UTF-8 at byte 6")
def case_translate_input_not_utf8(ctx):
    path = ctx.write("input.en", b"hello\n\xe9t\xe9\n")
    return lambda: cli_main(["translate", str(ctx.tmp / "run"), "--input", path, "--device", "cpu"])


@case(ValueError, "has 2 sentences and")
def case_test_set_lengths_differ(ctx):
    sources, references = ctx.write("test.en", "a\nb\n"), ctx.write("test.de", "a\n")
    return lambda: evaluate_files(str(ctx.tmp / "run"), {"news": (sources, references)})


@case(SystemExit, "--glossary terms.tsv: needs --base BASE_MODEL")
def case_glossary_without_base(ctx):
    sources, references = ctx.write("news.en", "hello\n"), ctx.write("news.de", "hallo\n")
    return lambda: cli_main(
        ["evaluate", str(ctx.tmp / "run"), "--test", f"news={sources},{references}", "--glossary", "terms.tsv"]
    )


@case(FileNotFoundError, "terms.tsv: no such file")
def case_glossary_missing(ctx):
    return lambda: read_glossary(str(ctx.tmp / "terms.tsv"))


@case(GlossaryError, "terms.xlsx: cannot tell how to read it; accepted: a file ending in .tsv or .csv")
def case_glossary_unknown_format(ctx):
    return lambda: read_glossary(ctx.write("terms.xlsx", b"PK\x03\x04"))


@case(GlossaryError, "terms.tsv: the file holds no term pairs; accepted:")
def case_glossary_empty(ctx):
    return lambda: read_glossary(ctx.write("terms.tsv", "source\ttarget\n# nothing yet\n"))


@case(GlossaryError, "terms.tsv line 2: ['fee'] has no target term; accepted: source term, target term")
def case_glossary_line_without_target(ctx):
    return lambda: read_glossary(ctx.write("terms.tsv", "contract\tVertrag\nfee\n"))


@case(GlossaryError, "the TBX has the languages en, de-DE, fr, not both en and es; accepted:")
def case_glossary_tbx_languages(ctx):
    entry = "".join(
        f'<langSet xml:lang="{lang}"><tig><term>{term}</term></tig></langSet>'
        for lang, term in (("en", "contract"), ("de-DE", "Vertrag"), ("fr", "contrat"))
    )
    tbx = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<martif type="TBX" xml:lang="en"><martifHeader><fileDesc>'
        f"<sourceDesc><p>terms</p></sourceDesc></fileDesc></martifHeader><text><body><termEntry>{entry}"
        "</termEntry></body></text></martif>\n"
    )
    return lambda: read_glossary(ctx.write("terms.tbx", tbx), "en", "es")


# ---- Checkpoints --------------------------------------------------------------------------------


@case(IncompleteCheckpointError, "resume_from_checkpoint: True: No valid checkpoint found in output directory")
def case_resume_without_checkpoint(ctx):
    os.makedirs(ctx.tmp / "out")
    return tiny_train(tiny_marian(), str(ctx.tmp / "out"), resume=True)


@case(IncompleteCheckpointError, "checkpoint-9: it is not a directory. Accepted: a checkpoint-N folder")
def case_checkpoint_not_a_directory(ctx):
    return tiny_train(tiny_marian(), ctx.run_dir(), resume=os.path.join(ctx.tmp, "run", "checkpoint-9"))


@case(CheckpointMismatchError, "tensor(s) that T5ForConditionalGeneration does not have")
def case_checkpoint_other_model(ctx):
    checkpoint = os.path.join(ctx.run_dir(), "checkpoint-2")
    return tiny_train(tiny_t5(), str(ctx.tmp / "resumed"), pad_id=T5_PAD, resume=checkpoint)


@case(CheckpointMismatchError, "'model.shared.weight' has shape (24, 16) but MarianMTModel has (24, 8)")
def case_checkpoint_other_size(ctx):
    checkpoint = os.path.join(ctx.run_dir(), "checkpoint-2")
    config = tiny_marian().config
    config.d_model = 8
    return tiny_train(MarianMTModel(config), str(ctx.tmp / "resumed"), resume=checkpoint)


@case(IncompleteCheckpointError, "which is incomplete: it has no l2sp_anchor.safetensors")
def case_anchor_missing(ctx):
    checkpoint = os.path.join(ctx.run_dir(), "checkpoint-2")
    os.remove(os.path.join(checkpoint, ANCHOR_FILE))
    return tiny_train(tiny_marian(), str(ctx.tmp / "resumed"), resume=checkpoint)


@case(IncompleteCheckpointError, "which is incomplete: it has no trainer_state.json")
def case_checkpoint_half_written(ctx):
    checkpoint = os.path.join(ctx.run_dir(), "checkpoint-2")
    os.remove(os.path.join(checkpoint, "trainer_state.json"))  # as a job killed while saving leaves it
    return tiny_train(tiny_marian(), str(ctx.tmp / "resumed"), resume=checkpoint)


@case(IncompleteCheckpointError, "that this run cannot resume from (checkpoint-2 has no l2sp_anchor.safetensors")
def case_resume_auto_over_finished_checkpoints(ctx):
    run = ctx.run_dir()
    os.remove(os.path.join(run, "checkpoint-2", ANCHOR_FILE))  # as a run without L2-SP writes it
    return tiny_train(tiny_marian(), run, resume="auto")


@case(NonFiniteLossError, "step 1: the training loss is nan")
def case_loss_not_finite(ctx):
    run = ctx.run_dir()
    model = tiny_marian()
    model.register_forward_hook(lambda module, inputs, output: output.__class__(
        **{**output, "logits": output.logits * float("nan")}))
    return tiny_train(model, run, save_strategy="steps", save_steps=1)


@case(AnchorError, "anchor of 'model.shared.weight' has shape (24, 8) but the parameter has (24, 16)")
def case_anchor_shape_mismatch(ctx):
    checkpoint = os.path.join(ctx.run_dir(), "checkpoint-2")
    path = os.path.join(checkpoint, ANCHOR_FILE)
    stored = load_file(path)
    stored["model.shared.weight"] = stored["model.shared.weight"][:, :8].contiguous()
    save_file(stored, path)
    return tiny_train(tiny_marian(), str(ctx.tmp / "resumed"), resume=checkpoint)


@case(AnchorError, "cannot read the anchor")
def case_anchor_damaged(ctx):
    checkpoint = os.path.join(ctx.run_dir(), "checkpoint-2")
    ctx.write(os.path.join("run", "checkpoint-2", ANCHOR_FILE), b"not a safetensors file")
    return tiny_train(tiny_marian(), str(ctx.tmp / "resumed"), resume=checkpoint)


# ---- Environment --------------------------------------------------------------------------------


@case(OutputDirError, "results' is a file, not a directory")
def case_output_dir_not_writable(ctx):
    path = ctx.write("results", "a file the user keeps, not a directory\n")
    return tiny_train(tiny_marian(), path, save_strategy="steps", save_steps=2)


@case(OutputDirInUseError, "is in use by another training run (pid")
def case_output_dir_in_use(ctx):
    # The parent of this process stands in for a live run that holds the lock.
    holder = {"pid": os.getppid(), "host": socket.gethostname(), "started": 0}
    ctx.write(os.path.join("run", LOCK_FILE), json.dumps(holder))
    return tiny_train(tiny_marian(), str(ctx.tmp / "run"))


@case(OSError, "cannot write the L2-SP anchor")
def case_disk_full_while_saving(ctx):
    run = ctx.run_dir()

    def full_disk(tensors, filename, metadata=None):
        with open(filename, "wb") as handle:
            handle.write(b"\0" * 10)
        raise OSError(errno.ENOSPC)

    ctx.monkeypatch.setattr(anchor_io, "save_file", full_disk)
    return tiny_train(tiny_marian(), run, max_steps=2, save_strategy="steps", save_steps=2)


@case(SystemExit, "this machine has no CUDA GPU that torch can use; pass --device cpu")
def case_cuda_without_gpu(ctx):
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    path = ctx.write("input.en", "hello\n")
    return lambda: cli_main(["translate", str(ctx.tmp / "run"), "--input", path, "--device", "cuda"])


# ---- LoRA adapters ------------------------------------------------------------------------------

LORA = dict(adapter="lora", lora_r=2, l2sp_lambda=0.0)


def lora_wrap(ctx, **settings):
    from hf_l2mt.core.lora import wrap_with_lora

    args = make_args(str(ctx.tmp / "run"), **(LORA | settings))
    return lambda: wrap_with_lora(tiny_marian(), args)


@case(ValueError, "lora_target_modules: 'query' match(es) no module of MarianMTModel; its linear layers are: ")
def case_lora_target_matches_nothing(ctx):
    return lora_wrap(ctx, lora_target_modules=["query"])


@case(ValueError, "adapter: PEFT cannot put LoRA on MarianMTModel")
def case_lora_module_not_supported(ctx):
    return lora_wrap(ctx, lora_target_modules=["final_layer_norm"])


@case(ValueError, "lora_r: got 17, but model.encoder.layers.0.self_attn.k_proj is 16x16")
def case_lora_rank_too_large(ctx):
    return lora_wrap(ctx, lora_r=17)


@case(ValueError, "l2sp_lambda: got 0.1 (l2sp_overrides []) with adapter='lora'")
def case_lora_with_l2sp_lambda(ctx):
    return lambda: make_args(str(ctx.tmp / "run"), **(LORA | dict(l2sp_lambda=0.1)))


@case(ValueError, "(a LoRA adapter) needs PEFT, which is not installed; pip install 'hf-l2mt[lora]'")
def case_lora_resume_without_peft(ctx):
    from hf_l2mt import L2MTTrainer
    from hf_l2mt.core import lora

    run = str(ctx.tmp / "run")
    tiny_train(tiny_marian(), run, max_steps=2, save_strategy="steps", save_steps=2, **LORA)()
    ctx.monkeypatch.setattr(lora, "peft_installed", lambda: False)
    trainer = L2MTTrainer(model=tiny_marian(), args=make_args(run, max_steps=4), train_dataset=task_dataset(8))
    return lambda: trainer.train(resume_from_checkpoint=os.path.join(run, "checkpoint-2"))


@case(ValueError, "is a LoRA adapter whose adapter_config.json names no base model")
def case_lora_adapter_pushed_without_base(ctx):
    from hf_l2mt.apps.publish.hub import push_to_hub

    ctx.write("adapter/adapter_config.json", json.dumps({"peft_type": "LORA", "r": 2}))
    return lambda: push_to_hub(str(ctx.tmp / "adapter"), "someone/adapter")


# ---- Export and averaging ------------------------------------------------------------------------


def export_setup(ctx, model_dir, probe_lines=("hello",), reference_lines=None, **settings):
    from hf_l2mt.apps.export.convert import ExportSettings, export_model

    probe = ctx.write("probe.en", "".join(line + "\n" for line in probe_lines))
    if reference_lines is not None:
        probe += "," + ctx.write("probe.de", "".join(line + "\n" for line in reference_lines))
    options = dict(model_dir=model_dir, probe=probe, output_dir=str(ctx.tmp / "ct2")) | settings
    return lambda: export_model(ExportSettings(**options))


def marian_dir(ctx) -> str:
    path = str(ctx.tmp / "model")
    tiny_marian().save_pretrained(path)
    return path


@case(ImportError, "hf-l2mt export needs ctranslate2: pip install 'hf_l2mt[export]'")
def case_export_without_ctranslate2(ctx):
    ctx.monkeypatch.setitem(sys.modules, "ctranslate2", None)
    return export_setup(ctx, marian_dir(ctx))


@case(SystemExit, "has no forgetting_report.json with the run's held-out sentences (a recipe run with a general-domain "
      "set, hf-l2mt evaluate --base and the demo write one); accepted: SOURCE_FILE[,REFERENCE_FILE]")
def case_export_without_probe(ctx):
    pytest.importorskip("ctranslate2")
    return lambda: cli_main(["export", marian_dir(ctx)])


@case(ValueError, "forgetting_report.json: no set keeps its sentences; give --probe SOURCE_FILE[,REFERENCE_FILE]")
def case_export_probe_report_without_sentences(ctx):
    pytest.importorskip("ctranslate2")
    from hf_l2mt.apps.export.convert import ExportSettings, export_model

    model = marian_dir(ctx)
    ctx.write("model/forgetting_report.json", json.dumps({"sets": {"general": {"num_sentences": 2}}}))
    return lambda: export_model(ExportSettings(model_dir=model, output_dir=str(ctx.tmp / "ct2")))


@case(SystemExit, "--parity_tolerance: got -1.0; accepted: a number >= 0")
def case_export_negative_tolerance(ctx):
    return lambda: cli_main(["export", str(ctx.tmp / "model"), "--probe", "dev.en", "--parity_tolerance", "-1"])


@case(ValueError, "no-such-run' does not exist; pass a directory written by save_pretrained")
def case_export_model_dir_missing(ctx):
    pytest.importorskip("ctranslate2")
    return export_setup(ctx, str(ctx.tmp / "no-such-run"))


@case(ValueError, "ct2' exists; pass --overwrite to replace it, or choose another path")
def case_export_output_exists(ctx):
    pytest.importorskip("ctranslate2")
    ctx.write("ct2/model.bin", b"an earlier export the user keeps")
    return export_setup(ctx, marian_dir(ctx))


@case(ValueError, "probe.en: the file has no sentence; accepted: a UTF-8 file with one sentence per line")
def case_export_probe_empty(ctx):
    pytest.importorskip("ctranslate2")
    return export_setup(ctx, marian_dir(ctx), probe_lines=())


@case(ValueError, "probe.en has 2 sentences and")
def case_export_probe_line_counts(ctx):
    pytest.importorskip("ctranslate2")
    return export_setup(ctx, marian_dir(ctx), probe_lines=("hello", "world"), reference_lines=("hallo",))


@case(ValueError, "holds a ProphetNetConfig, which CTranslate2's converter does not support; accepted: ")
def case_export_unsupported_architecture(ctx):
    pytest.importorskip("ctranslate2")
    path = str(ctx.tmp / "prophetnet")
    ProphetNetConfig(vocab_size=24, hidden_size=16, num_encoder_layers=1, num_decoder_layers=1).save_pretrained(path)
    return export_setup(ctx, path)


@case(ImportError, "holds PEFT adapters (adapter_config.json) and peft is not installed; without peft only plain")
def case_export_adapters_without_peft(ctx):
    pytest.importorskip("ctranslate2")
    ctx.write("adapter/adapter_config.json", json.dumps({"peft_type": "LORA", "r": 2}))
    ctx.monkeypatch.setitem(sys.modules, "peft", None)
    return export_setup(ctx, str(ctx.tmp / "adapter"))


@case(ValueError, "export differs from PyTorch by more than --parity_tolerance 1.0 points; nothing was written")
def case_export_parity_beyond_tolerance(ctx):
    pytest.importorskip("ctranslate2")
    from tiny_checkpoints import save_opus_mt_checkpoint, sentence_pairs

    from hf_l2mt.apps.export import loaders as export_loaders

    pairs = sentence_pairs(24, seed=1)
    model_dir = ctx.tmp / "model"
    save_opus_mt_checkpoint(model_dir, pairs)
    # A <pad> embedding moved by fine-tuning, converted by CTranslate2's own Marian loader, which starts decoding
    # from a zero vector (hf-l2mt export's starts from <pad>, as transformers does): an export that differs.
    ctx.monkeypatch.setattr(export_loaders, "EXPORT_LOADERS", {})
    weights = load_file(str(model_dir / "model.safetensors"))
    torch.manual_seed(0)
    pad_id = json.loads((model_dir / "config.json").read_text())["pad_token_id"]
    weights["model.shared.weight"][pad_id] = 3 * torch.randn(weights["model.shared.weight"].shape[1])
    save_file(weights, str(model_dir / "model.safetensors"), metadata={"format": "pt"})
    return export_setup(ctx, str(model_dir), probe_lines=[source for source, _ in pairs],
                        reference_lines=[target for _, target in pairs])


def average_setup(ctx, run, **settings):
    from hf_l2mt.apps.weights.average import AverageSettings, average_checkpoints

    return lambda: average_checkpoints(AverageSettings(run_dir=run, **settings))


@case(SystemExit, "--last: got 0; accepted: an integer >= 1")
def case_average_last_not_positive(ctx):
    return lambda: cli_main(["average", str(ctx.tmp / "run"), "--last", "0"])


@case(ValueError, "no-such-run' is not a directory; pass the output_dir of a run")
def case_average_run_dir_missing(ctx):
    return average_setup(ctx, str(ctx.tmp / "no-such-run"))


@case(ValueError, "holds no complete checkpoint-* folder; a run writes them with save_strategy")
def case_average_without_checkpoints(ctx):
    ctx.write("run/model.safetensors", b"a final model, no checkpoint-* folder")
    return average_setup(ctx, str(ctx.tmp / "run"))


@case(ValueError, "--last 3: ")
def case_average_fewer_checkpoints_than_last(ctx):
    return average_setup(ctx, ctx.run_dir(), last=3)


@case(ValueError, "average-last-1' exists; pass --overwrite to replace it, or choose another path")
def case_average_output_exists(ctx):
    run = ctx.run_dir()
    ctx.write("run/average-last-1/config.json", "{}")
    return average_setup(ctx, run, last=1)


@case(ValueError, "'model.shared.weight' has shape (24, 8) in checkpoint-4 but (24, 16) in checkpoint-2; accepted")
def case_average_checkpoints_of_different_shapes(ctx):
    run = ctx.run_dir()
    other = os.path.join(run, "checkpoint-4")
    shutil.copytree(os.path.join(run, "checkpoint-2"), other)
    weights = load_file(os.path.join(other, "model.safetensors"))
    weights["model.shared.weight"] = weights["model.shared.weight"][:, :8].contiguous()
    save_file(weights, os.path.join(other, "model.safetensors"), metadata={"format": "pt"})
    return average_setup(ctx, run, last=2)


@case(ValueError, "has no model.safetensors nor model.safetensors.index.json; accepted: checkpoints saved as")
def case_average_checkpoint_not_safetensors(ctx):
    run = ctx.run_dir()
    checkpoint = os.path.join(run, "checkpoint-2")
    weights = load_file(os.path.join(checkpoint, "model.safetensors"))
    os.remove(os.path.join(checkpoint, "model.safetensors"))
    torch.save(weights, os.path.join(checkpoint, "pytorch_model.bin"))
    return average_setup(ctx, run, last=1)


def recipe_averaging(ctx, *flags):
    """The en_de recipe with ``--average_last_checkpoints 3``; refused before the model is loaded."""
    argv = ["--output_dir", str(ctx.tmp / "run"), "--average_last_checkpoints", "3", *flags]
    return lambda: en_de.main(argv)


@case(SystemExit, "average_last_checkpoints: got 3, but save_strategy is 'no', so the run writes no checkpoint; ")
def case_recipe_average_without_checkpoints(ctx):
    return recipe_averaging(ctx, "--save_strategy", "no")


@case(SystemExit, "average_last_checkpoints: got 3, but save_total_limit=2 keeps fewer checkpoints; accepted: ")
def case_recipe_average_beyond_save_total_limit(ctx):
    return recipe_averaging(ctx)


@case(SystemExit, "average_last_checkpoints: got 3 with adapter='lora'; checkpoints of a LoRA run hold adapters")
def case_recipe_average_lora(ctx):
    return recipe_averaging(ctx, "--save_total_limit", "3", "--adapter", "lora", "--l2sp_lambda", "0")


# ---- Interpolation and merging ------------------------------------------------------------------


def weight_models(ctx) -> tuple[str, str]:
    """A tiny Marian base and a copy of it as the fine-tune, saved with their tokenizer."""
    from tiny_checkpoints import save_checkpoint

    base = save_checkpoint(ctx.tmp / "base")
    return base, save_checkpoint(ctx.tmp / "run")


def interpolate_call(run, base, **settings):
    from hf_l2mt.apps.weights.interpolate import interpolate

    return lambda: interpolate(run, base, [0.5], **settings)


@case(SystemExit, "--alpha: got 1.5; accepted: numbers from 0 (the base) to 1 (the fine-tune)")
def case_interpolate_alpha_out_of_range(ctx):
    return lambda: cli_main(["interpolate", str(ctx.tmp / "run"), "--base", str(ctx.tmp / "base"), "--alpha", "1.5"])


@case(ValueError, "no-such-base' is not a directory; accepted: a folder written by save_pretrained")
def case_interpolate_model_dir_missing(ctx):
    _, run = weight_models(ctx)
    return interpolate_call(run, str(ctx.tmp / "no-such-base"))


@case(ValueError, "has no model.safetensors nor model.safetensors.index.json; accepted: a model saved as safetensors")
def case_interpolate_not_safetensors(ctx):
    base, run = weight_models(ctx)
    weights = load_file(os.path.join(base, "model.safetensors"))
    os.remove(os.path.join(base, "model.safetensors"))
    torch.save(weights, os.path.join(base, "pytorch_model.bin"))
    return interpolate_call(run, base)


@case(ValueError, "'model.shared.weight' has shape (24, 8) in RUN_DIR ")
def case_interpolate_tensor_shapes_differ(ctx):
    base, run = weight_models(ctx)
    weights = load_file(os.path.join(run, "model.safetensors"))
    weights["model.shared.weight"] = weights["model.shared.weight"][:, :8].contiguous()
    save_file(weights, os.path.join(run, "model.safetensors"), metadata={"format": "pt"})
    return interpolate_call(run, base)


@case(ValueError, "'final_logits_bias' is in --base ")
def case_interpolate_tensor_missing(ctx):
    base, run = weight_models(ctx)
    weights = load_file(os.path.join(run, "model.safetensors"))
    del weights["final_logits_bias"]
    save_file(weights, os.path.join(run, "model.safetensors"), metadata={"format": "pt"})
    return interpolate_call(run, base)


@case(ValueError, "alpha-0.5' exists; pass --overwrite to replace it, or choose another path")
def case_interpolate_output_exists(ctx):
    base, run = weight_models(ctx)
    ctx.write("run/interpolated/alpha-0.5/config.json", "{}")
    return interpolate_call(run, base)


@case(SystemExit, "--max_general_drop: no held-out sets: no --test given, and ")
def case_interpolate_budget_without_sets(ctx):
    base, run = weight_models(ctx)
    return lambda: cli_main(["interpolate", run, "--base", base, "--max_general_drop", "1"])


@case(SystemExit, "--max_general_drop: none of the held-out sets (news) is general domain; accepted: --general_sets")
def case_interpolate_budget_without_general_set(ctx):
    base, run = weight_models(ctx)
    source, reference = ctx.write("news.en", "the house\n"), ctx.write("news.de", "house the\n")
    return lambda: cli_main(["interpolate", run, "--base", base, "--max_general_drop", "1",
                             "--test", f"news={source},{reference}"])


@case(SystemExit, "--min_gain_kept: got 90.0; accepted: a share from 0 to 1")
def case_interpolate_min_gain_kept_out_of_range(ctx):
    return lambda: cli_main(["interpolate", "run", "--base", "base", "--min_gain_kept", "90"])


@case(SystemExit, "interpolate_after: got 2.0; accepted: numbers from 0 (the base) to 1 (the fine-tune)")
def case_recipe_interpolate_after_out_of_range(ctx):
    return lambda: en_de.main(["--output_dir", str(ctx.tmp / "run"), "--interpolate_after", "2"])


@case(SystemExit, "interpolate_after: got 0.5 with adapter='lora' and model_name_or_path 'Helsinki-NLP/opus-mt-en-de'")
def case_recipe_interpolate_after_lora_hub_base(ctx):
    return lambda: en_de.main(["--output_dir", str(ctx.tmp / "run"), "--interpolate_after", "0.5", "--adapter", "lora",
                               "--l2sp_lambda", "0"])


@case(SystemExit, "--weights: got 1 weight(s) for 2 run(s); accepted: one per RUN_DIR")
def case_merge_weights_count(ctx):
    return lambda: cli_main(["merge", "a", "b", "--base", "base", "--weights", "1", "--output_dir", "merged"])


@case(SystemExit, "--density: got 0.0; accepted: a share above 0, at most 1")
def case_merge_density_out_of_range(ctx):
    return lambda: cli_main(["merge", "a", "--base", "base", "--method", "ties", "--density", "0",
                             "--output_dir", "merged"])


# ---- The tests ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def checkpoint_run(tmp_path_factory):
    """Builds, once and only when a case asks, a run folder with an L2-SP checkpoint at update 2."""
    made = []

    def build():
        if not made:
            run = tmp_path_factory.mktemp("checkpoint") / "run"
            tiny_train(tiny_marian(), str(run), max_steps=2, save_strategy="steps", save_steps=2)()
            made.append(run)
        return made[0]

    return build


def snapshot(folder) -> dict[str, bytes]:
    """Every file's bytes; a symbolic link by its target, since a broken or looping one cannot be read."""
    files = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            if os.path.islink(path):
                files[os.path.relpath(path, folder)] = os.readlink(path).encode()
                continue
            with open(path, "rb") as handle:
                files[os.path.relpath(path, folder)] = handle.read()
    return files


@pytest.mark.parametrize("name", list(CASES), ids=list(CASES))
def test_bad_input_is_reported_and_harms_no_file(name, tmp_path, monkeypatch, capsys, checkpoint_run):
    error, fragment, setup = CASES[name]
    call = setup(Context(tmp_path, monkeypatch, checkpoint_run))
    before = snapshot(tmp_path)
    with pytest.raises(error) as raised:
        call()
    message = str(raised.value)
    if error is SystemExit:
        assert raised.value.code == 2
        message = capsys.readouterr().err
    assert fragment in message
    after = snapshot(tmp_path)
    assert {path: after.get(path) for path in before} == before, "a file the user had was changed or removed"
    assert not [path for path in after if path.endswith((".tmp", ".incomplete"))], "a temporary file was left"


def documented_ids() -> list[str]:
    with open(DOC, encoding="utf-8") as handle:
        return re.findall(r"^\|\s*`([a-z0-9_]+)`\s*\|", handle.read(), flags=re.MULTILINE)


def test_every_documented_row_has_a_case_and_every_case_a_row():
    ids = documented_ids()
    assert len(ids) == len(set(ids)), "a row id appears twice in docs/errors.md"
    assert sorted(ids) == sorted(CASES)
    assert len(ids) >= 22
