"""Multilingual models (NLLB-200, M2M100, mBART-50) end to end on tiny models and tokenizers built here.

Each tokenizer is built offline with every language-code token its class adds; each model is a tiny
config. A run trains, evaluates, saves; the saved model is reloaded, evaluated and asked to translate.
Every ``generate`` call along the way is recorded: its first token after the decoder start must be
the target language's, which is what ``forced_bos_token_id`` in the generation config guarantees.
"""

import json
import string

import pytest
import sentencepiece as spm
import torch
from tiny_checkpoints import save_checkpoint, sentence_pairs, write_tsv
from transformers import (
    AutoTokenizer,
    GenerationMixin,
    M2M100Config,
    M2M100ForConditionalGeneration,
    M2M100Tokenizer,
    MBart50Tokenizer,
    MBartConfig,
    MBartForConditionalGeneration,
    NllbTokenizer,
)
from transformers.models.nllb.tokenization_nllb import FAIRSEQ_LANGUAGE_CODES as NLLB_CODES

from hf_l2mt.apps.cli import main as cli_main
from hf_l2mt.apps.recipes import en_de, nllb_en_de
from hf_l2mt.data import load_pairs, make_data_collator, preprocess_pairs
from hf_l2mt.data.language_codes import (
    NLLB_LANGUAGES,
    LanguageCodeError,
    prepare_translation_pair,
    set_tokenizer_languages,
    tokenizer_language_code,
)
from hf_l2mt.evaluation.translate import evaluate_files, load_translation_model, translate

TINY = [
    "--max_steps", "3", "--per_device_train_batch_size", "4", "--gradient_accumulation_steps", "1",
    "--per_device_eval_batch_size", "8", "--eval_strategy", "steps", "--eval_steps", "3", "--save_strategy", "no",
    "--logging_steps", "1", "--generation_num_beams", "1", "--generation_max_length", "8",
    "--max_source_length", "32", "--max_target_length", "32", "--warmup_steps", "0", "--learning_rate", "1e-2",
    "--use_cpu", "--disable_tqdm", "true", "--dataloader_num_workers", "0", "--report_to", "none",
]

# family → (tokenizer's code for en, for de, the token that marks German)
EXPECTED = {
    "nllb": ("eng_Latn", "deu_Latn", "deu_Latn"),
    "m2m100": ("en", "de", "__de__"),
    "mbart50": ("en_XX", "de_DE", "de_DE"),
}


def train_pieces(folder, texts):
    """A BPE SentencePiece model with fairseq's special ids (<s> 0, <pad> 1, </s> 2, <unk> 3)."""
    prefix = str(folder / "sentencepiece.bpe")
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(texts), model_prefix=prefix, model_type="bpe", vocab_size=60, bos_id=0, pad_id=1,
        eos_id=2, unk_id=3, character_coverage=1.0, hard_vocab_limit=False, num_threads=1, minloglevel=2,
    )
    return spm.SentencePieceProcessor(model_file=prefix + ".model"), prefix + ".model"


def build_tokenizer(kind, folder, texts):
    if kind == "nllb":
        # transformers 5 builds NLLB's BPE from a vocabulary; letters and "▁" cover the test sentences.
        letters = ["▁", *string.ascii_lowercase]
        return NllbTokenizer(vocab={"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3,
                                    **{letter: 4 + i for i, letter in enumerate(letters)}}, merges=[])
    pieces, model_file = train_pieces(folder, texts)
    if kind == "m2m100":
        vocab = folder / "vocab.json"
        vocab.write_text(json.dumps({pieces.id_to_piece(i): i for i in range(pieces.get_piece_size())}))
        return M2M100Tokenizer(vocab_file=str(vocab), spm_file=model_file)
    return MBart50Tokenizer(vocab=[(pieces.id_to_piece(i), pieces.get_score(i)) for i in range(pieces.get_piece_size())])


def build_model(kind, tokenizer):
    torch.manual_seed(3)
    # M2M100Tokenizer numbers its language tokens after its vocabulary and leaves them out of get_vocab().
    ids = [*tokenizer.get_vocab().values(), *getattr(tokenizer, "lang_code_to_id", {}).values()]
    sizes = dict(
        vocab_size=max(ids) + 1, d_model=16, encoder_layers=1, decoder_layers=1,
        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32,
        max_position_embeddings=64, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        bos_token_id=0, decoder_start_token_id=tokenizer.eos_token_id, forced_eos_token_id=tokenizer.eos_token_id,
    )
    if kind == "mbart50":
        return MBartForConditionalGeneration(MBartConfig(**sizes))
    return M2M100ForConditionalGeneration(M2M100Config(**sizes))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    return {
        "train": write_tsv(folder / "train.tsv", sentence_pairs(24, seed=0)),
        "general": write_tsv(folder / "general.tsv", sentence_pairs(4, seed=1)),
    }


def save_tiny_checkpoint(kind, folder, pieces_folder) -> str:
    """A tiny model of the family saved with its tokenizer in ``folder``, as a Hub checkpoint is."""
    texts = [text for pair in sentence_pairs(24, seed=0) for text in pair]
    tokenizer = build_tokenizer(kind, pieces_folder, texts)
    build_model(kind, tokenizer).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module", params=sorted(EXPECTED))
def checkpoint(request, tmp_path_factory):
    """``(kind, directory)`` of a tiny checkpoint of each family."""
    kind = request.param
    return kind, save_tiny_checkpoint(kind, tmp_path_factory.mktemp(kind), tmp_path_factory.mktemp("pieces"))


@pytest.fixture
def generated(monkeypatch):
    """Every tensor ``generate`` returns during the test, in order."""
    outputs, generate = [], GenerationMixin.generate

    def recording_generate(self, *args, **kwargs):
        output = generate(self, *args, **kwargs)
        outputs.append(output.detach().cpu())
        return output

    monkeypatch.setattr(GenerationMixin, "generate", recording_generate)
    return outputs


def assert_every_output_starts_in(outputs, start_id, language_id):
    assert outputs
    for output in outputs:
        assert output[:, 0].tolist() == [start_id] * len(output)
        assert output[:, 1].tolist() == [language_id] * len(output), "a translation starts in another language"


def test_a_run_saves_the_target_language_and_every_translation_before_and_after_reloading_starts_in_it(
    checkpoint, data, tmp_path, generated
):
    kind, base_dir = checkpoint
    src_code, tgt_code, tgt_token = EXPECTED[kind]
    out = tmp_path / "run"
    recipe = nllb_en_de if kind == "nllb" else en_de  # any recipe fine-tunes any checkpoint
    argv = ["--model_name_or_path", base_dir, "--train_source", data["train"],
            "--eval_sources", f"general={data['general']}", *TINY, "--output_dir", str(out)]
    assert load_translation_model(base_dir)[0].generation_config.forced_bos_token_id is None

    scores = recipe.main(argv)

    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    target_id = tokenizer.convert_tokens_to_ids(tgt_token)
    saved = json.loads((out / "generation_config.json").read_text(encoding="utf-8"))
    assert saved["forced_bos_token_id"] == target_id
    start_id = saved["decoder_start_token_id"]
    # evaluation during training, the final translations, and the starting model's in the forgetting report
    assert len(generated) >= 3
    assert_every_output_starts_in(generated, start_id, target_id)
    assert (out / "forgetting_report.json").is_file() and set(scores) == {"general"}

    generated.clear()
    model, reloaded = load_translation_model(str(out))
    assert (reloaded.src_lang, reloaded.tgt_lang) == (src_code, tgt_code)
    assert reloaded("the house")["input_ids"][0] == reloaded.convert_tokens_to_ids(
        "__en__" if kind == "m2m100" else src_code
    ), "a reloaded tokenizer marks sources with another language"
    sources = [line.split("\t")[0] for line in open(data["general"], encoding="utf-8").read().splitlines()[1:]]
    references = [line.split("\t")[1] for line in open(data["general"], encoding="utf-8").read().splitlines()[1:]]
    options = dict(num_beams=1, max_new_tokens=8, progress=False)
    first = translate(sources, model, reloaded, **options)
    again = evaluate_files(str(out), {"general": (sources, references)}, **options)
    assert again["general"]["bleu"] == pytest.approx(scores["general"]["bleu"])
    assert translate(sources, *load_translation_model(str(out)), **options) == first
    assert_every_output_starts_in(generated, start_id, target_id)


def test_without_the_forced_token_the_tiny_model_does_not_start_in_the_target_language(checkpoint, generated):
    """The check above can fail: the same model without ``forced_bos_token_id`` starts elsewhere."""
    kind, base_dir = checkpoint
    model, tokenizer = load_translation_model(base_dir)
    set_tokenizer_languages(tokenizer, "en", "de")
    translate(["the house is small", "a dog barks"], model, tokenizer, num_beams=1, max_new_tokens=4, progress=False)
    target_id = tokenizer.convert_tokens_to_ids(EXPECTED[kind][2])
    assert any(output[:, 1].tolist() != [target_id] * len(output) for output in generated)


def test_an_unknown_code_stops_the_run_before_training_and_lists_the_close_matches(data, tmp_path, capsys):
    base_dir = save_tiny_checkpoint("nllb", tmp_path / "nllb", tmp_path)
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as raised:
        cli_main(["train", "nllb_en_de", "--model_name_or_path", base_dir, "--train_source", data["train"],
                  "--eval_sources", f"general={data['general']}", "--tgt_lang", "deu", *TINY,
                  "--output_dir", str(out)])
    assert raised.value.code == 2
    err = capsys.readouterr().err
    assert "tgt_lang='deu' is not a language code of NllbTokenizer; close matches: deu_Latn" in err
    assert not (out / "model.safetensors").exists()


def test_preprocess_marks_sources_and_targets_with_their_language_tokens(checkpoint, data):
    kind, base_dir = checkpoint
    src_code, tgt_code, tgt_token = EXPECTED[kind]
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    pairs = load_pairs(data["general"], "en", "de")
    tokenized = preprocess_pairs(pairs, tokenizer, "en", "de", max_source_length=32, max_target_length=32)
    src_id = tokenizer.convert_tokens_to_ids("__en__" if kind == "m2m100" else src_code)
    tgt_id = tokenizer.convert_tokens_to_ids(tgt_token)
    assert {row[0] for row in tokenized["input_ids"]} == {src_id}
    assert {row[0] for row in tokenized["labels"]} == {tgt_id}
    assert (tokenizer.src_lang, tokenizer.tgt_lang) == (src_code, tgt_code)
    batch = make_data_collator(tokenizer)([{**row} for row in tokenized.remove_columns("length")])
    assert batch["labels"][:, 0].tolist() == [tgt_id] * len(tokenized)


@pytest.mark.parametrize("kind, requested, expected", [
    ("nllb", "de", "deu_Latn"), ("nllb", "de-AT", "deu_Latn"), ("nllb", "deu_Latn", "deu_Latn"),
    ("nllb", "zh-Hant", "zho_Hant"), ("nllb", "ar", "arb_Arab"), ("nllb", "no", "nob_Latn"),
    ("m2m100", "de", "de"), ("m2m100", "pt-BR", "pt"), ("m2m100", "ast", "ast"),
    ("mbart50", "de", "de_DE"), ("mbart50", "en_US", "en_XX"), ("mbart50", "zh", "zh_CN"),
])
def test_corpus_codes_map_to_each_tokenizer_codes(kind, requested, expected, tmp_path):
    tokenizer = build_tokenizer(kind, tmp_path, ["the house is small", "das haus ist klein"] * 5)
    assert tokenizer_language_code(tokenizer, requested) == expected


@pytest.mark.parametrize("kind, requested, message", [
    ("nllb", "deu", "tgt_lang='deu' is not a language code of NllbTokenizer; close matches: deu_Latn;"),
    ("nllb", "zh", "tgt_lang='zh' names several languages of NllbTokenizer: zho_Hans, zho_Hant; add the script"),
    ("m2m100", "deu", "tgt_lang='deu' is not a language code of M2M100Tokenizer; close matches: de;"),
    ("mbart50", "deu", "tgt_lang='deu' is not a language code of MBart50Tokenizer; close matches: de_DE;"),
    ("mbart50", "xx", "close matches: none; accepted: one of its 52 codes (ar_AR, cs_CZ, de_DE, en_XX, …)"),
])
def test_unknown_codes_name_the_flag_the_code_and_the_close_matches(kind, requested, message, tmp_path):
    tokenizer = build_tokenizer(kind, tmp_path, ["the house is small", "das haus ist klein"] * 5)
    with pytest.raises(LanguageCodeError) as raised:
        tokenizer_language_code(tokenizer, requested)
    assert message in str(raised.value)


def test_every_nllb_language_of_the_iso_table_is_one_of_nllbs_codes():
    languages = {code.split("_")[0] for code in NLLB_CODES}
    assert sorted(code for code, language in NLLB_LANGUAGES.items() if language not in languages) == []


def test_a_model_of_one_language_pair_is_left_as_it_was(tmp_path):
    marian_dir = save_checkpoint(tmp_path / "marian", "marian")
    model, tokenizer = load_translation_model(marian_dir)
    before = model.generation_config.to_dict()
    prepare_translation_pair(model, tokenizer, "en", "de")
    assert model.generation_config.to_dict() == before
    assert set_tokenizer_languages(tokenizer, "en", "xx") is None
