import json
import logging
import warnings

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

from conftest import EOS, PAD, VOCAB, tiny_marian
from hf_l2mt.apps.demo.spm_tokenizer import train_marian_tokenizer
from hf_l2mt.evaluation.translate import (
    ModelDirectoryError, evaluate_files, load_translation_model, read_lines, report_scores, translate,
)
from hf_l2mt.tokenizer_warnings import without_sacremoses_recommendation

WORDS = "the house is small a dog barks cat sleeps red green blue big old new tree car sun moon day night".split()
SENTENCES = [
    "the dog barks",
    "a small red house is old",
    "sun",
    "the big green tree is new and the car is blue",
    "cat sleeps",
    "moon night day",
    "the old cat sleeps in the red car",
    "a tree",
]


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    """Word-level tokenizer whose ids match tiny_marian: </s> = EOS, <pad> = PAD, then <unk> and the words."""
    vocab = {"</s>": EOS, "<pad>": PAD, "<unk>": 2, **{word: 3 + i for i, word in enumerate(WORDS)}}
    assert len(vocab) == VOCAB
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", EOS)])
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Generation with a tiny model is overhead-bound: on a shared CPU, extra threads mostly wait for each other."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("opus-mt-tiny")
    tiny_marian(seed=3).save_pretrained(path)  # a seed whose random weights give varied outputs
    tiny_tokenizer().save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def loaded(model_dir):
    return load_translation_model(model_dir)


def one_by_one(sentences, model, tokenizer, **kwargs):
    return [translate([s], model, tokenizer, batch_size=1, progress=False, **kwargs)[0] for s in sentences]


def test_batched_greedy_output_is_in_input_order(loaded):
    model, tokenizer = loaded
    alone = one_by_one(SENTENCES, model, tokenizer, num_beams=1, max_new_tokens=8)
    assert len(set(alone)) > 4, "translations must differ, or a shuffled order would go unnoticed"

    batched = translate(SENTENCES, model, tokenizer, batch_size=3, num_beams=1, max_new_tokens=8, progress=False)

    assert batched == alone


def test_batch_size_does_not_change_beam_search_output(loaded):
    model, tokenizer = loaded
    settings = dict(num_beams=3, max_new_tokens=8, progress=False)
    reference = translate(SENTENCES, model, tokenizer, batch_size=1, **settings)
    for batch_size in (2, 5, 32):
        assert translate(SENTENCES, model, tokenizer, batch_size=batch_size, **settings) == reference, batch_size


def test_empty_input_gives_empty_output(loaded):
    model, tokenizer = loaded
    assert translate([], model, tokenizer) == []


def test_source_prefix_is_prepended(loaded):
    model, tokenizer = loaded
    with_prefix = translate(["dog barks"], model, tokenizer, source_prefix="the ", num_beams=1, max_new_tokens=8)
    assert with_prefix == translate(["the dog barks"], model, tokenizer, num_beams=1, max_new_tokens=8)


def test_too_long_sentences_are_truncated_with_a_warning(model_dir, caplog):
    model, tokenizer = load_translation_model(model_dir)
    tokenizer.model_max_length = 4
    with caplog.at_level(logging.WARNING, logger="hf_l2mt.evaluation.source_ids"):
        long = translate(["sun", "the house is small a dog"], model, tokenizer, num_beams=1, max_new_tokens=8)
    assert "1 source sentence(s) longer than model_max_length=4 tokens are truncated (first: #1)" in caplog.text
    assert long[1] == translate(["the house is"], model, tokenizer, num_beams=1, max_new_tokens=8)[0]


@pytest.fixture
def transformers_log(caplog):
    """transformers' records; its loggers do not propagate to the root logger that caplog listens to."""
    library = logging.getLogger("transformers")
    library.addHandler(caplog.handler)
    yield caplog
    library.removeHandler(caplog.handler)


def test_a_max_length_in_the_models_config_neither_warns_nor_changes_the_translations(model_dir, transformers_log):
    model, tokenizer = load_translation_model(model_dir)
    settings = dict(num_beams=1, max_new_tokens=8, progress=False)
    unlimited = translate(SENTENCES, model, tokenizer, **settings)
    model.generation_config.max_length = 3  # as opus-mt configs carry one (512)

    limited = translate(SENTENCES, model, tokenizer, batch_size=3, **settings)

    assert limited == unlimited
    assert max(len(tokenizer(text)["input_ids"]) for text in limited) > 3, "max_new_tokens, not max_length, rules"
    assert "seem to have been set" not in transformers_log.text
    assert model.generation_config.max_length == 3  # the model's own config is back


def test_loading_a_marian_model_does_not_recommend_sacremoses(tmp_path, recwarn):
    train_marian_tokenizer(SENTENCES * 4, str(tmp_path), vocab_size=40)
    tiny_marian().save_pretrained(tmp_path)
    recwarn.clear()

    _, tokenizer = load_translation_model(str(tmp_path))

    assert type(tokenizer).__name__ == "MarianTokenizer"
    assert not [str(w.message) for w in recwarn if "sacremoses" in str(w.message)]


def test_only_the_sacremoses_recommendation_is_silenced(recwarn):
    with without_sacremoses_recommendation():
        warnings.warn("Recommended: pip install sacremoses.")
        warnings.warn("translate: something the user should know")
    assert [str(w.message) for w in recwarn] == ["translate: something the user should know"]


def test_bad_arguments_name_the_flag(loaded):
    model, tokenizer = loaded
    with pytest.raises(ValueError, match="batch_size=0; accepted: an integer >= 1"):
        translate(["sun"], model, tokenizer, batch_size=0)
    with pytest.raises(ValueError, match="single string"):
        translate("the sun", model, tokenizer)
    with pytest.raises(ValueError, match=r"texts\[1\] is a int"):
        translate(["sun", 3], model, tokenizer)


def test_missing_model_directory_is_named(tmp_path):
    missing = tmp_path / "no-such-run"
    with pytest.raises(ModelDirectoryError, match=f"'{missing}' does not exist"):
        load_translation_model(str(missing))
    with pytest.raises(ModelDirectoryError, match=f"'{tmp_path}' has no config.json"):
        load_translation_model(str(tmp_path))


def test_evaluate_files_scores_each_set_and_reports_them(model_dir, loaded, tmp_path):
    model, tokenizer = loaded
    settings = dict(num_beams=1, max_new_tokens=8)
    own_output = translate(SENTENCES[:4], model, tokenizer, **settings)
    (tmp_path / "test.en").write_text("\n".join(SENTENCES[:4]) + "\n", encoding="utf-8")
    (tmp_path / "test.de").write_text("\n".join(own_output) + "\n", encoding="utf-8")

    scores = evaluate_files(
        model_dir,
        {"in_domain": (tmp_path / "test.en", tmp_path / "test.de"), "general": (SENTENCES[4:], ["x y z"] * 4)},
        progress=False, **settings,
    )

    assert scores["in_domain"]["exact_match"] == 100.0
    assert scores["in_domain"]["bleu"] == pytest.approx(100.0)
    assert scores["general"]["exact_match"] == 0.0
    table = report_scores(scores, json_path=str(tmp_path / "scores.json"))
    lines = table.splitlines()
    assert lines[0].split() == ["set", "BLEU", "chrF", "TER", "exact", "match", "sentences"]
    assert lines[1].split() == ["in_domain", "100.00", "100.00", "0.00", "100.00", "4"]
    assert lines[2].split()[0] == "general"
    saved = json.loads((tmp_path / "scores.json").read_text())
    assert saved["general"]["signatures"] == scores["general"]["signatures"]


def test_evaluate_files_rejects_mismatched_files_before_loading(tmp_path):
    (tmp_path / "test.en").write_text("a\nb\nc\n", encoding="utf-8")
    (tmp_path / "test.de").write_text("a\nb\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"'in_domain'.*test.en has 3 sentences and .*test.de has 2"):
        evaluate_files(str(tmp_path / "never-loaded"), {"in_domain": (tmp_path / "test.en", tmp_path / "test.de")})


def test_read_lines_names_the_file_and_byte_of_bad_utf8(tmp_path):
    path = tmp_path / "test.de"
    path.write_bytes("Grüße\r\nok\n".encode() + b"\xff\n")
    with pytest.raises(ValueError, match=f"{path}: not valid UTF-8 at byte 12"):
        read_lines(str(path))
    path.write_bytes("Grüße\r\n\nok".encode())
    assert read_lines(str(path)) == ["Grüße", "", "ok"]
