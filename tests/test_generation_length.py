"""Generation never runs past the decoder's positions: a model of 8 positions that never says </s>, through every
path that generates (translate, the CLI's translate and evaluate, the forgetting report, the trainer's evaluation).
The CTranslate2 export of the same model is checked in test_export.py."""

import json
import logging

import pytest
import torch
from transformers import GPT2Config, GenerationConfig, Seq2SeqTrainer

from conftest import EOS, PAD, PadCollator, make_args, task_dataset, tiny_t5
from hf_l2mt import L2MTTrainer
from hf_l2mt.apps.cli import main
from hf_l2mt.core import generation_length
from hf_l2mt.core.generation_length import capped_generate_kwargs, decoder_positions
from hf_l2mt.evaluation.translate import load_translation_model, translate
from tiny_checkpoints import LOOP_WORD, LOOPED, POSITIONS, looping_marian, save_looping_checkpoint, word_tokenizer

SOURCES = ["the dog barks", "a cat sleeps", "sun", "the big green tree is new"]
CAP_LOGGER = "hf_l2mt.core.generation_length"


@pytest.fixture(autouse=True)
def nothing_said_yet(monkeypatch):
    """Each test starts with no cap reported in this process, so that what it says is its own."""
    monkeypatch.setattr(generation_length, "_reported", set())


@pytest.fixture(scope="module")
def looping_dir(tmp_path_factory):
    return save_looping_checkpoint(tmp_path_factory.mktemp("looping"))


def cap_messages(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == CAP_LOGGER]



def test_decoder_positions_of_each_kind_of_model():
    assert decoder_positions(looping_marian().config) == POSITIONS
    assert decoder_positions(tiny_t5().config) is None  # relative positions: no table to run past
    assert decoder_positions(GPT2Config(n_positions=16)) is None  # decoder-only: left alone


def test_the_cap_is_exactly_what_the_position_table_holds():
    model = looping_marian().eval()
    inputs = word_tokenizer(PAD, EOS)(["the dog"], return_tensors="pt")
    assert model.generate(**inputs, max_new_tokens=POSITIONS, num_beams=1).shape[1] == 1 + POSITIONS
    with pytest.raises(IndexError):  # what every path did before the cap
        model.generate(**inputs, max_new_tokens=POSITIONS + 1, num_beams=1)


def test_translate_caps_a_looping_model_and_says_so_once(looping_dir, caplog):
    model, tokenizer = load_translation_model(looping_dir)
    with caplog.at_level(logging.WARNING, logger=CAP_LOGGER):
        greedy = translate(SOURCES, model, tokenizer, num_beams=1, max_new_tokens=128, progress=False)
        beams = translate(SOURCES, model, tokenizer, num_beams=4, max_new_tokens=128, batch_size=3, progress=False)
    assert greedy == beams == [LOOPED] * len(SOURCES)
    assert cap_messages(caplog) == [
        f"{looping_dir}: generating at most {POSITIONS} new tokens, not 128: its decoder embeds {POSITIONS} "
        "positions, and a longer translation (one that loops) would run past them"
    ]


def test_within_the_positions_nothing_is_capped_nor_said(looping_dir, caplog):
    model, tokenizer = load_translation_model(looping_dir)
    with caplog.at_level(logging.WARNING, logger=CAP_LOGGER):
        short = translate(SOURCES, model, tokenizer, num_beams=1, max_new_tokens=3, progress=False)
        full = translate(SOURCES, model, tokenizer, num_beams=1, max_new_tokens=POSITIONS, progress=False)
    assert short == [" ".join([LOOP_WORD] * 2)] * len(SOURCES) and full == [LOOPED] * len(SOURCES)
    assert cap_messages(caplog) == []


def test_cli_translate_writes_every_line(looping_dir, tmp_path, capsys):
    lines = [SOURCES[i % len(SOURCES)] for i in range(200)]
    (tmp_path / "in.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    main(["translate", looping_dir, "--input", str(tmp_path / "in.txt"), "--device", "cpu"])  # default flags
    assert capsys.readouterr().out.splitlines() == [LOOPED] * len(lines)


def test_cli_evaluate_and_the_forgetting_report_score_a_looping_model(looping_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_L2MT_CACHE", str(tmp_path / "cache"))
    (tmp_path / "t.en").write_text("\n".join(SOURCES) + "\n", encoding="utf-8")
    (tmp_path / "t.de").write_text("\n".join(SOURCES) + "\n", encoding="utf-8")
    test_set = f"general={tmp_path / 't.en'},{tmp_path / 't.de'}"
    main(["evaluate", looping_dir, "--test", test_set, "--device", "cpu", "--output_json", str(tmp_path / "s.json")])
    with open(tmp_path / "s.json", encoding="utf-8") as handle:
        assert json.load(handle)["general"]["num_sentences"] == len(SOURCES)

    main(["evaluate", looping_dir, "--base", looping_dir, "--test", test_set, "--device", "cpu",
          "--bootstrap_resamples", "100"])
    capsys.readouterr()
    with open(f"{looping_dir}/forgetting_report.json", encoding="utf-8") as handle:
        sentences = json.load(handle)["sets"]["general"]["sentences"]
    assert sentences["translations"]["run"] == [LOOPED] * len(SOURCES)


def test_capped_generate_kwargs_keep_the_kind_of_length_they_were_given():
    model = looping_marian()
    model.generation_config = GenerationConfig(max_length=100)
    assert capped_generate_kwargs(model, {"max_length": 128, "num_beams": 2}) == {"max_length": 1 + POSITIONS,
                                                                                   "num_beams": 2}
    assert capped_generate_kwargs(model, {}) == {"max_length": 1 + POSITIONS}  # the generation config's 100
    assert capped_generate_kwargs(model, {"max_new_tokens": 50}) == {"max_new_tokens": POSITIONS}
    within = {"max_length": POSITIONS}
    assert capped_generate_kwargs(model, within) is within


def predictions(trainer_cls, tmp_path, generation_max_length: int):
    args = make_args(tmp_path / trainer_cls.__name__, predict_with_generate=True,
                     generation_max_length=generation_max_length, generation_num_beams=1,
                     per_device_eval_batch_size=4)
    trainer = trainer_cls(model=looping_marian(), args=args, data_collator=PadCollator())
    return trainer.predict(task_dataset(6, seed=1)).predictions


def test_trainer_evaluation_is_capped_where_seq2seq_trainer_crashes(tmp_path, caplog):
    within = predictions(Seq2SeqTrainer, tmp_path, generation_max_length=1 + POSITIONS)
    assert (predictions(L2MTTrainer, tmp_path, generation_max_length=1 + POSITIONS) == within).all()
    with pytest.raises(IndexError):
        predictions(Seq2SeqTrainer, tmp_path, generation_max_length=128)

    with caplog.at_level(logging.WARNING, logger=CAP_LOGGER):
        capped = predictions(L2MTTrainer, tmp_path, generation_max_length=128)

    assert (capped == within).all()
    assert [f"not {128 - 1}:" in message for message in cap_messages(caplog)] == [True]
