"""``hf-l2mt export`` to CTranslate2, its parity check, and translation with the export.

Tiny Marian (SentencePiece tokenizer) and T5 (word-level tokenizer) models are trained a few steps
on the reversal task of tiny_checkpoints, so that their translations are not all alike.
"""

import json
import os
import shutil
import sys
from pathlib import Path

import pytest
import torch
from datasets import Dataset

pytest.importorskip("ctranslate2")

from conftest import EOS, PAD, make_args, tiny_marian, train_with  # noqa: E402
from tiny_checkpoints import (  # noqa: E402
    LOOPED, POSITIONS, save_checkpoint, save_looping_checkpoint, save_opus_mt_checkpoint, sentence_pairs,
    word_tokenizer,
)
from transformers import (  # noqa: E402
    AutoModelForSeq2SeqLM, AutoTokenizer, GenerationConfig, MarianMTModel, ProphetNetConfig,
)

from hf_l2mt.apps.export import loaders as export_loaders  # noqa: E402
from hf_l2mt.apps.cli import main as cli_main  # noqa: E402
from hf_l2mt.apps.export.convert import ExportError, ExportSettings, ParityError, convert, export_model  # noqa: E402
from hf_l2mt.evaluation import ctranslate2_options  # noqa: E402
from hf_l2mt.evaluation.ctranslate2_engine import ExportedModel, translate_with_export  # noqa: E402
from hf_l2mt.evaluation.forgetting import BASE, REPORT_FILE, RUN, build_report, save_report  # noqa: E402
from hf_l2mt.evaluation.metrics import score_translations  # noqa: E402
from hf_l2mt.evaluation.translate import load_translation_model, translate  # noqa: E402

T5_PREFIX = "reverse: "


def train_saved(path, pad_id, prefix="", zero_pad_embedding=False):
    """Train the model saved in ``path`` 200 steps on reversal pairs and save it back.

    ``zero_pad_embedding``: the ``<pad>`` embedding, where a Marian decoder starts, is zeroed after training, as
    in opus-mt checkpoints; training moves it (the tied output layer gives it a gradient). CTranslate2's own
    Marian converter is right only for the zeroed row; ``hf-l2mt export`` must be right for both.
    """
    model = AutoModelForSeq2SeqLM.from_pretrained(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    rows = [
        {"input_ids": tokenizer(prefix + source)["input_ids"], "labels": tokenizer(target)["input_ids"]}
        for source, target in sentence_pairs(64, seed=1)
    ]
    args = make_args(path / "run", max_steps=200, logging_steps=200)
    trainer = train_with(model, Dataset.from_list(rows), args, pad_id=pad_id)
    if zero_pad_embedding:
        with torch.no_grad():  # shared, encoder and decoder embeddings (one tensor or three, by version)
            for module in trainer.model.modules():
                if isinstance(module, torch.nn.Embedding) and module.num_embeddings == model.config.vocab_size:
                    module.weight[pad_id] = 0
    trainer.model.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def marian_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("marian")
    save_opus_mt_checkpoint(path, sentence_pairs(64, seed=1))
    return train_saved(path, AutoTokenizer.from_pretrained(path).pad_token_id, zero_pad_embedding=True)


@pytest.fixture(scope="module")
def moved_pad_dir(tmp_path_factory):
    """A Marian whose ``<pad>`` embedding (the decoder's start) training moved, as fine-tuning does; its
    generation config never generates ``<pad>`` (``bad_words_ids``), as opus-mt's and the recipes' do."""
    path = tmp_path_factory.mktemp("moved-pad")
    save_opus_mt_checkpoint(path, sentence_pairs(64, seed=1))
    train_saved(path, AutoTokenizer.from_pretrained(path).pad_token_id)
    model = MarianMTModel.from_pretrained(path)
    pad_id = model.config.pad_token_id
    assert model.get_input_embeddings().weight[pad_id].norm() > 0.1
    model.generation_config.bad_words_ids = [[pad_id]]
    model.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def t5_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("t5")
    save_checkpoint(path, "t5")
    return train_saved(path, pad_id=0, prefix=T5_PREFIX)


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    folder = tmp_path_factory.mktemp("probe")
    pairs = sentence_pairs(24, seed=7)
    (folder / "probe.src").write_text("".join(source + "\n" for source, _ in pairs), encoding="utf-8")
    (folder / "probe.ref").write_text("".join(target + "\n" for _, target in pairs), encoding="utf-8")
    return str(folder / "probe.src"), str(folder / "probe.ref")


def same_with_empty_translations(pytorch: list[str], exported: list[str]) -> None:
    """The same strings, in the same order, where some of PyTorch's translations are empty (its first token is
    ``</s>``, which the zeroed-<pad> model gives): CTranslate2's default ``min_decoding_length`` 1 forbids that."""
    assert exported == pytorch
    assert "" in pytorch and sum(bool(p) for p in pytorch) > len(pytorch) / 2


def test_float32_export_translates_as_pytorch(marian_dir, probe, tmp_path):
    output = tmp_path / "ct2"
    parity = export_model(ExportSettings(model_dir=marian_dir, probe=",".join(probe), output_dir=str(output),
                                         parity_tolerance=100))
    assert parity["scored_against"] == "references" and parity["sentences"] == 24
    info = json.loads((output / "hf_l2mt_export.json").read_text())
    assert info["quantization"] == "float32" and info["architecture"] == "MarianConfig"
    readme = (output / "README.md").read_text()
    assert f"identical hypotheses {parity['identical']:.1f} %" in readme and "ctranslate2.Translator" in readme
    # Small token-budget batches and a length limit that cuts translations: the same strings, in input order.
    sources = open(probe[0], encoding="utf-8").read().splitlines()
    model, tokenizer = load_translation_model(marian_dir)
    pytorch = translate(sources, model, tokenizer, num_beams=1, max_new_tokens=3, progress=False)
    exported = translate_with_export(sources, ExportedModel(str(output)), num_beams=1, max_new_tokens=3,
                                     max_batch_tokens=20)
    same_with_empty_translations(pytorch, exported)
    assert len(set(pytorch)) > 3, "a model that says one thing for every input tests nothing"


def test_marian_whose_pad_row_moved_translates_as_pytorch(moved_pad_dir, probe, tmp_path):
    """transformers starts Marian's decoder from the <pad> embedding, which fine-tuning moves: the float32
    export must start from the same row and give the same greedy hypotheses."""
    output = tmp_path / "ct2"
    parity = export_model(ExportSettings(model_dir=moved_pad_dir, probe=probe[0], output_dir=str(output),
                                         parity_tolerance=0, num_beams=1))
    assert parity["identical"] == 100.0 and parity["chrf_difference"] == 0.0
    sources = Path(probe[0]).read_text(encoding="utf-8").splitlines()
    model, tokenizer = load_translation_model(moved_pad_dir)
    pytorch = translate(sources, model, tokenizer, num_beams=1, max_new_tokens=64, progress=False)
    assert translate_with_export(sources, ExportedModel(str(output)), num_beams=1, max_new_tokens=64) == pytorch
    assert len(set(pytorch)) > 3, "a model that says one thing for every input tests nothing"


def test_suppressed_pad_stays_suppressed(moved_pad_dir, probe, tmp_path):
    """transformers never generates the tokens of ``bad_words_ids`` (<pad> here); with an output bias that makes
    <pad> the likeliest token everywhere, the export must still give PyTorch's translations."""
    model = MarianMTModel.from_pretrained(moved_pad_dir)
    with torch.no_grad():
        model.final_logits_bias[0, model.config.pad_token_id] = 100.0
    model_dir = tmp_path / "pad-favoured"
    model.save_pretrained(model_dir)
    AutoTokenizer.from_pretrained(moved_pad_dir).save_pretrained(model_dir)
    parity = export_model(ExportSettings(model_dir=str(model_dir), probe=probe[0], output_dir=str(tmp_path / "ct2"),
                                         parity_tolerance=0, num_beams=1))
    assert parity["identical"] == 100.0
    sources = Path(probe[0]).read_text(encoding="utf-8").splitlines()
    pytorch = translate(sources, *load_translation_model(str(model_dir)), num_beams=1, progress=False)
    assert all(pytorch), "<pad> suppressed, the model still says something"


def test_int8_export_reports_what_it_costs(marian_dir, probe, tmp_path, capsys):
    output = tmp_path / "ct2-int8"
    cli_main(["export", marian_dir, "--quantization", "int8", "--probe", probe[0], "--parity_tolerance", "100",
              "--output_dir", str(output)])
    printed = capsys.readouterr().out
    assert "identical hypotheses" in printed and "(scored against PyTorch's translations" in printed
    info = json.loads((output / "hf_l2mt_export.json").read_text())
    assert info["quantization"] == "int8" and 0 <= info["parity"]["identical"] <= 100


def test_t5_export_with_prefix(t5_dir, probe, tmp_path):
    parity = export_model(ExportSettings(model_dir=t5_dir, probe=probe[0], output_dir=str(tmp_path / "t5-ct2"),
                                         source_prefix=T5_PREFIX, num_beams=1))
    assert parity["identical"] == 100.0 and parity["chrf_difference"] == 0.0


def test_parity_beyond_tolerance_fails_and_writes_nothing(moved_pad_dir, probe, tmp_path, monkeypatch):
    """CTranslate2's own Marian loader starts the decoder from a zero vector: on a model whose <pad> row moved, it
    converts without complaint but translates differently, and the parity check refuses the export."""
    monkeypatch.setattr(export_loaders, "EXPORT_LOADERS", {})
    output = tmp_path / "ct2"
    with pytest.raises(ParityError, match=r"differs from PyTorch by more than --parity_tolerance 1.0 points; nothing "
                       r"was written:\nsentences +24\nidentical hypotheses \d+\.\d %"):
        export_model(ExportSettings(model_dir=moved_pad_dir, probe=probe[0], output_dir=str(output)))
    assert os.listdir(tmp_path) == []


def test_existing_output_needs_overwrite(marian_dir, probe, tmp_path):
    output = tmp_path / "ct2"
    output.mkdir()
    (output / "keep.txt").write_text("mine")
    settings = ExportSettings(model_dir=marian_dir, probe=probe[0], output_dir=str(output), parity_tolerance=100)
    with pytest.raises(ExportError, match="exists; pass --overwrite to replace it"):
        export_model(settings)
    assert (output / "keep.txt").read_text() == "mine"
    settings.overwrite = True
    export_model(settings)
    assert not (output / "keep.txt").exists() and (output / "model.bin").is_file()


def test_unsupported_architecture_lists_the_supported(probe, tmp_path):
    model_dir = tmp_path / "prophetnet"
    ProphetNetConfig(vocab_size=24, hidden_size=16, num_encoder_layers=1, num_decoder_layers=1).save_pretrained(model_dir)
    with pytest.raises(ExportError, match="holds a ProphetNetConfig, which CTranslate2's converter does not support; "
                       "accepted: .*MarianConfig.*T5Config"):
        export_model(ExportSettings(model_dir=str(model_dir), probe=probe[0], output_dir=str(tmp_path / "out")))


def adapter_dir(marian_dir, tmp_path):
    from peft import LoraConfig, get_peft_model

    base = MarianMTModel.from_pretrained(marian_dir)
    lora = LoraConfig(r=2, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    model = get_peft_model(base, lora)
    folder = tmp_path / "adapters"
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(marian_dir).save_pretrained(folder)
    return str(folder)


def test_peft_adapters_are_merged_before_export(marian_dir, probe, tmp_path):
    pytest.importorskip("peft")
    adapters = adapter_dir(marian_dir, tmp_path)
    parity = export_model(ExportSettings(model_dir=adapters, probe=probe[0], output_dir=str(tmp_path / "ct2"),
                                         parity_tolerance=100, num_beams=1))
    assert parity["chrf_difference"] == 0.0
    sources = open(probe[0], encoding="utf-8").read().splitlines()
    base_model, tokenizer = load_translation_model(marian_dir)
    base = translate(sources, base_model, tokenizer, num_beams=1, progress=False)
    merged = translate_with_export(sources, ExportedModel(str(tmp_path / "ct2")), num_beams=1)
    assert merged != base, "the adapters should change the translations, or merging is not tested"


def test_adapters_without_peft_are_refused(marian_dir, probe, tmp_path, monkeypatch):
    pytest.importorskip("peft")
    adapters = adapter_dir(marian_dir, tmp_path)
    monkeypatch.setitem(sys.modules, "peft", None)
    with pytest.raises(ImportError, match="peft is not installed; without peft only plain models can be exported"):
        export_model(ExportSettings(model_dir=adapters, probe=probe[0], output_dir=str(tmp_path / "ct2")))


def test_translate_and_evaluate_take_an_export(marian_dir, probe, tmp_path, capsys):
    export_dir = str(tmp_path / "ct2")
    export_model(ExportSettings(model_dir=marian_dir, probe=probe[0], output_dir=export_dir, parity_tolerance=100))
    capsys.readouterr()
    common = ["--input", probe[0], "--num_beams", "1", "--device", "cpu"]
    cli_main(["translate", marian_dir, *common])
    pytorch = capsys.readouterr().out
    cli_main(["translate", export_dir, *common, "--max_batch_tokens", "16", "--num_threads", "1"])
    same_with_empty_translations(pytorch.split("\n"), capsys.readouterr().out.split("\n"))
    scores = tmp_path / "scores.json"
    cli_main(["evaluate", export_dir, "--engine", "ctranslate2", "--test", f"probe={','.join(probe)}",
              "--device", "cpu", "--output_json", str(scores)])
    assert json.loads(scores.read_text())["probe"]["num_sentences"] == 24
    with pytest.raises(SystemExit):
        cli_main(["translate", export_dir, "--engine", "transformers", "--input", probe[0]])
    assert "is a CTranslate2 export (model.bin); accepted: --engine ctranslate2 or auto" in capsys.readouterr().err


def run_with_report(model_dir, folder, sets: dict) -> str:
    """A copy of ``model_dir`` with the forgetting_report.json a run writes: ``sets`` (name → pairs) with their
    sentences, the first one general domain."""
    shutil.copytree(model_dir, folder)
    references = {name: [target for _, target in pairs] for name, pairs in sets.items()}
    sources = {name: [source for source, _ in pairs] for name, pairs in sets.items()}
    report = build_report(references, {BASE: references, RUN: references}, [next(iter(sets))], sources=sources,
                          resamples=40)
    save_report(report, str(folder / REPORT_FILE))
    return str(folder)


def test_without_probe_the_run_s_held_out_sets_are_translated(marian_dir, tmp_path, capsys):
    sets = {"general": sentence_pairs(10, seed=11), "in_domain": sentence_pairs(14, seed=12)}
    run = run_with_report(marian_dir, tmp_path / "run", sets)
    output = tmp_path / "ct2"
    cli_main(["export", run, "--output_dir", str(output), "--parity_tolerance", "100"])
    parity = json.loads((output / "hf_l2mt_export.json").read_text())["parity"]
    assert parity["sentences"] == 24 and parity["scored_against"] == "references"
    sources = [source for pairs in sets.values() for source, _ in pairs]
    references = [target for pairs in sets.values() for _, target in pairs]
    pytorch = translate(sources, *load_translation_model(run), num_beams=4, progress=False)  # hf-l2mt translate's
    assert parity["pytorch_chrf"] == score_translations(pytorch, references)["chrf"]
    assert parity["decoding"]["beam_size"] == 4
    described = "the run's held-out sets in `forgetting_report.json` (general 10, in_domain 14 sentences)"
    assert f"Probe: {described}." in (output / "README.md").read_text()
    assert f"probe: {described}" in capsys.readouterr().out


def test_probe_files_come_before_the_run_s_held_out_sets(marian_dir, probe, tmp_path):
    run = run_with_report(marian_dir, tmp_path / "run", {"general": sentence_pairs(10, seed=11)})
    parity = export_model(ExportSettings(model_dir=run, probe=probe[0], output_dir=str(tmp_path / "ct2"),
                                         parity_tolerance=100))
    assert parity["sentences"] == 24 and parity["probe"] == f"`{probe[0]}`"


def test_without_probe_nor_report_nothing_is_converted(marian_dir, tmp_path):
    with pytest.raises(ValueError, match=r"--probe: none given, and '.*' has no forgetting_report.json with the run's "
                       r"held-out sentences .*; accepted: SOURCE_FILE\[,REFERENCE_FILE\]"):
        export_model(ExportSettings(model_dir=marian_dir, output_dir=str(tmp_path / "ct2")))
    assert os.listdir(tmp_path) == []


def test_a_looping_model_exports_and_translates_within_its_positions(tmp_path, probe, capsys):
    """A model that never ends a translation: the parity check, the engine and hf-l2mt translate all stop at the
    decoder's positions, which the export records for the engine, instead of failing past them."""
    model_dir = save_looping_checkpoint(tmp_path / "looping")
    output = tmp_path / "ct2"
    parity = export_model(ExportSettings(model_dir=model_dir, probe=probe[0], output_dir=str(output)))
    assert parity["identical"] == 100.0 and parity["decoding"]["beam_size"] == 4
    assert json.loads((output / "hf_l2mt_export.json").read_text())["decoder_positions"] == POSITIONS
    sources = Path(probe[0]).read_text(encoding="utf-8").splitlines()
    for num_beams in (1, 4):
        exported = translate_with_export(sources, ExportedModel(str(output)), num_beams=num_beams, max_new_tokens=128)
        assert exported == [LOOPED] * len(sources)
    capsys.readouterr()
    cli_main(["translate", str(output), "--input", probe[0], "--device", "cpu"])  # default flags
    assert capsys.readouterr().out.splitlines() == [LOOPED] * len(sources)


def test_beam_search_of_an_export_ends_where_pytorch_s_does(tmp_path, monkeypatch):
    """transformers (early_stopping=False) searches on past num_beams finished hypotheses while a running beam
    may still score higher; CTranslate2 stops after beam_size × patience. On this random Marian its default
    patience of 1 stops too early for about half of the sentences; the export's options give PyTorch's beams."""
    model_dir = tmp_path / "random"
    tiny_marian(seed=2).save_pretrained(model_dir)  # a seed on which the two stopping rules part ways
    word_tokenizer(PAD, EOS).save_pretrained(model_dir)
    output = tmp_path / "ct2"
    convert(str(model_dir), str(output), "float32")
    sources = [source for source, _ in sentence_pairs(40, seed=7)]
    model, tokenizer = load_translation_model(str(model_dir))
    pytorch = translate(sources, model, tokenizer, num_beams=4, max_new_tokens=12, progress=False)
    exported = ExportedModel(str(output))

    assert translate_with_export(sources, exported, num_beams=4, max_new_tokens=12) == pytorch
    monkeypatch.setattr(ctranslate2_options, "UNHURRIED_PATIENCE", 1.0)
    hurried = translate_with_export(sources, exported, num_beams=4, max_new_tokens=12)
    assert sum(a != b for a, b in zip(hurried, pytorch)) > len(sources) / 4, "the test must tell the two apart"


@pytest.mark.parametrize("generation, expected", [
    (None, {"length_penalty": 1.0, "patience": ctranslate2_options.UNHURRIED_PATIENCE, "max_decoding_length": 20,
            "min_decoding_length": 0}),
    ({"early_stopping": True, "length_penalty": 0.6, "forced_eos_token_id": 0, "min_length": 3},
     {"length_penalty": 0.6, "patience": 1.0, "max_decoding_length": 19, "min_decoding_length": 2}),
    (GenerationConfig(early_stopping="never", min_new_tokens=4, min_length=9),
     {"length_penalty": 1.0, "patience": ctranslate2_options.UNHURRIED_PATIENCE, "max_decoding_length": 20,
      "min_decoding_length": 4}),
])
def test_decoding_options_follow_the_generation_config(generation, expected):
    assert ctranslate2_options.decoding_options(generation, 3, 20) == {"beam_size": 3, **expected}
