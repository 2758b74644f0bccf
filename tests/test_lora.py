"""LoRA through PEFT: which matrices get adapters, bad settings, resume, saving, translating and publishing."""

import json

import pytest
import torch
from transformers import AutoModelForSeq2SeqLM, MarianMTModel

from conftest import (
    PadCollator, StopAfter, assert_same_params, make_args, task_dataset, tiny_marian, tiny_t5, train_with,
)
from hf_l2mt import L2MTTrainer
from hf_l2mt.core import lora
from hf_l2mt.core.lora import LoraSetupError, wrap_with_lora
from hf_l2mt.evaluation.translate import load_translation_model, translate
from hub_server import TOKEN, fake_hub  # noqa: F401 (fake_hub is a fixture)
from test_translate import SENTENCES, tiny_tokenizer

peft = pytest.importorskip("peft", reason="LoRA needs the lora extra (peft)")

LORA = dict(adapter="lora", lora_r=2, lora_alpha=4.0)


def adapted_suffixes(model) -> set[str]:
    return {name.rsplit(".lora_A", 1)[0].rsplit(".", 1)[-1] for name, _ in model.named_parameters() if ".lora_A." in name}


def test_marian_defaults_adapt_attention_and_feed_forward_and_freeze_the_rest(tmp_path):
    model = wrap_with_lora(tiny_marian(), make_args(tmp_path, **LORA))
    assert adapted_suffixes(model) == {"q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(".lora_A." in n or ".lora_B." in n for n in trainable)


def test_t5_defaults_adapt_q_k_v_o_wi_wo(tmp_path):
    model = wrap_with_lora(tiny_t5(), make_args(tmp_path, **LORA))
    assert adapted_suffixes(model) == {"q", "k", "v", "o", "wi", "wo"}


def test_modules_to_save_stay_trainable(tmp_path):
    model = wrap_with_lora(tiny_marian(), make_args(tmp_path, lora_modules_to_save=["lm_head"], **LORA))
    assert any("lm_head" in n and p.requires_grad for n, p in model.named_parameters())


def test_target_modules_that_match_nothing_list_the_linear_layers(tmp_path):
    with pytest.raises(LoraSetupError, match=r"lora_target_modules: 'query' match\(es\) no module of MarianMTModel; "
                                             r"its linear layers are: .*q_proj.*fc1"):
        wrap_with_lora(tiny_marian(), make_args(tmp_path, lora_target_modules=["query"], **LORA))


def test_a_module_peft_cannot_adapt_is_refused(tmp_path):
    with pytest.raises(LoraSetupError, match=r"adapter: PEFT cannot put LoRA on MarianMTModel .*final_layer_norm"):
        wrap_with_lora(tiny_marian(), make_args(tmp_path, lora_target_modules=["final_layer_norm"], **LORA))


def test_a_model_type_without_defaults_needs_target_modules(tmp_path):
    model = tiny_marian()
    model.config.model_type = "custom"
    with pytest.raises(LoraSetupError, match=r"lora_target_modules: no default for model_type 'custom'"):
        wrap_with_lora(model, make_args(tmp_path, **LORA))


def test_a_rank_larger_than_the_matrix_is_refused(tmp_path):
    # d_model = 16: the 16 x 16 attention projections allow ranks up to 16.
    with pytest.raises(LoraSetupError, match=r"lora_r: got 17, but model.encoder.layers.0.self_attn.k_proj is 16x16, so B·A has rank at most 16; accepted: an integer from 1 to 16"):
        wrap_with_lora(tiny_marian(), make_args(tmp_path, adapter="lora", lora_r=17))


@pytest.mark.parametrize("flag, value, accepted", [
    ("lora_r", 0, "an integer >= 1"), ("lora_alpha", -1.0, "a finite number > 0"),
    ("lora_dropout", 1.0, r"a number in \[0, 1\)"), ("lora_l2sp_lambda", -0.5, "a finite number >= 0"),
])
def test_bad_lora_values_name_the_flag(tmp_path, flag, value, accepted):
    with pytest.raises(ValueError, match=rf"{flag}: got {value!r}; accepted: {accepted}"):
        make_args(tmp_path, **{**LORA, flag: value})


def test_l2sp_lambda_with_lora_is_refused_with_the_merged_penalty_offered(tmp_path):
    with pytest.raises(ValueError, match=r"l2sp_lambda: got 0.1 .* with adapter='lora'.*lora_l2sp_lambda > 0"):
        make_args(tmp_path, l2sp_lambda=0.1, **LORA)


def test_lora_settings_without_the_adapter_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"lora_l2sp_lambda: set, but adapter is 'none'"):
        make_args(tmp_path, lora_l2sp_lambda=0.1)


def test_lora_without_peft_installed_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setattr(lora, "peft_installed", lambda: False)
    with pytest.raises(ValueError, match=r"adapter: 'lora' needs PEFT, which is not installed; pip install "
                                         r"'hf-l2mt\[lora\]'"):
        make_args(tmp_path, **LORA)


def test_resuming_a_lora_run_without_peft_names_the_extra(tmp_path, monkeypatch):
    train_with(tiny_marian(), task_dataset(8), make_args(tmp_path / "run", max_steps=2, save_strategy="steps",
                                                         save_steps=2, **LORA))
    checkpoint = tmp_path / "run" / "checkpoint-2"
    assert (checkpoint / "adapter_config.json").is_file()
    monkeypatch.setattr(lora, "peft_installed", lambda: False)
    trainer = L2MTTrainer(model=tiny_marian(), args=make_args(tmp_path / "run", max_steps=4), train_dataset=task_dataset(8))
    with pytest.raises(LoraSetupError, match=r"resume_from_checkpoint: .*checkpoint-2' \(a LoRA adapter\) needs "
                                             r"PEFT.*hf-l2mt\[lora\]"):
        trainer.train(resume_from_checkpoint=str(checkpoint))


def test_resuming_a_lora_checkpoint_as_a_full_run_is_refused(tmp_path):
    train_with(tiny_marian(), task_dataset(8), make_args(tmp_path / "run", max_steps=2, save_strategy="steps",
                                                         save_steps=2, **LORA))
    trainer = L2MTTrainer(model=tiny_marian(), args=make_args(tmp_path / "run", max_steps=4), train_dataset=task_dataset(8))
    with pytest.raises(LoraSetupError, match=r"holds a LoRA adapter .* but adapter is 'none'; resume it with "
                                             r"adapter='lora'"):
        trainer.train(resume_from_checkpoint=str(tmp_path / "run" / "checkpoint-2"))


def test_resumed_lora_run_equals_uninterrupted_run(tmp_path):
    data = task_dataset(16, seed=5)
    settings = dict(LORA, max_steps=6, save_strategy="steps", save_steps=3, lr_scheduler_type="linear",
                    weight_decay=0.05, lora_l2sp_lambda=0.5, max_grad_norm=1.0)
    uninterrupted = train_with(tiny_marian(), data, make_args(tmp_path / "full", **settings))
    first = L2MTTrainer(model=tiny_marian(), args=make_args(tmp_path / "run", **settings), train_dataset=data,
                        data_collator=PadCollator(), callbacks=[StopAfter(3)])
    first.train()
    resumed = train_with(tiny_marian(), data, make_args(tmp_path / "run", **settings),
                         resume_from_checkpoint=str(tmp_path / "run" / "checkpoint-3"))
    assert_same_params(dict(resumed.model.named_parameters()), dict(uninterrupted.model.named_parameters()))


@pytest.fixture
def base_dir(tmp_path):
    path = tmp_path / "base"
    tiny_marian(seed=3).save_pretrained(path)
    tiny_tokenizer().save_pretrained(path)
    return path


@pytest.fixture
def lora_run(tmp_path, base_dir):
    args = make_args(tmp_path / "run", max_steps=4, learning_rate=0.05, lora_save_merged=True, **LORA)
    trainer = L2MTTrainer(model=MarianMTModel.from_pretrained(base_dir), args=args, processing_class=tiny_tokenizer(),
                          train_dataset=task_dataset(16, task="reverse"), data_collator=PadCollator())
    trainer.train()
    trainer.save_model()
    return trainer


def test_a_run_saves_an_adapter_peft_loads_and_a_merged_model_that_translates_the_same(lora_run, base_dir, tmp_path):
    run = tmp_path / "run"
    assert (run / "adapter_model.safetensors").is_file() and not (run / "model.safetensors").exists()
    config = json.loads((run / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(base_dir) and config["r"] == 2

    with_adapter = peft.PeftModel.from_pretrained(MarianMTModel.from_pretrained(base_dir), str(run)).eval()
    merged = AutoModelForSeq2SeqLM.from_pretrained(run / "merged").eval()
    base = MarianMTModel.from_pretrained(base_dir).eval()
    tokenizer = tiny_tokenizer()
    batch = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    generated = lambda model: model.generate(**batch, num_beams=2, max_new_tokens=8).tolist()  # noqa: E731
    assert generated(merged) == generated(with_adapter)
    assert generated(base) != generated(with_adapter), "the adapter changed nothing"

    kwargs = dict(batch_size=3, num_beams=2, max_new_tokens=8, progress=False)
    from_merged = translate(SENTENCES, merged, tokenizer, **kwargs)
    for folder in (run, run / "merged"):  # hf-l2mt translate / evaluate take either
        model, folder_tokenizer = load_translation_model(str(folder))
        assert translate(SENTENCES, model, folder_tokenizer, **kwargs) == from_merged, folder


def test_an_adapter_is_pushed_alone_and_only_with_a_hub_base(fake_hub, lora_run, tmp_path):
    from hf_l2mt.apps.publish.hub import push_to_hub

    run = tmp_path / "run"
    with pytest.raises(ValueError, match=r"LoRA adapter whose adapter_config.json names the local base model .*"
                                         r"base_model_name_or_path"):
        push_to_hub(str(run), "someone/lora-en-de", token=TOKEN)
    config = json.loads((run / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = "Helsinki-NLP/opus-mt-en-de"
    (run / "adapter_config.json").write_text(json.dumps(config))
    push_to_hub(str(run), "someone/lora-en-de", token=TOKEN)
    committed = set(fake_hub.committed)
    assert {"adapter_config.json", "adapter_model.safetensors"} <= committed
    assert not any(name.startswith(("merged/", "checkpoint-")) for name in committed)
    del config["base_model_name_or_path"]
    (run / "adapter_config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"adapter_config.json names no base model"):
        push_to_hub(str(run), "someone/lora-en-de", token=TOKEN)


def test_model_card_records_the_adapter_and_its_base(tmp_path):
    from hf_l2mt.apps.publish.model_card import build_model_card

    args = make_args(tmp_path / "run", lora_target_modules=["q_proj", "v_proj"], lora_l2sp_lambda=0.2, **LORA)
    card = str(build_model_card(base_model="Helsinki-NLP/opus-mt-en-de", src_lang="en", tgt_lang="de",
                                training_args=args, scores={}))
    assert "library_name: peft" in card and "base_model: Helsinki-NLP/opus-mt-en-de" in card
    assert "lora_r = 2, lora_alpha = 4, lora_dropout = 0, on q_proj, v_proj" in card
    assert "lora_l2sp_lambda = 0.2" in card
    assert "| `adapter` | `lora` |" in card


def test_the_en_de_recipe_trains_saves_and_scores_an_adapter_from_command_line_flags(tmp_path):
    from hf_l2mt.apps.recipes import en_de
    from test_recipes import TINY
    from tiny_checkpoints import save_checkpoint, sentence_pairs, write_tsv

    base = save_checkpoint(tmp_path / "opus-mt-tiny", "marian")
    train, general = write_tsv(tmp_path / "train.tsv", sentence_pairs(40, seed=0)), write_tsv(tmp_path / "g.tsv", sentence_pairs(6, seed=1))
    out = tmp_path / "lora-run"
    # en_de sets l2sp_lambda = 0.1, which LoRA replaces by lora_l2sp_lambda (the merged-weight L2-SP).
    argv = ["--model_name_or_path", base, "--train_source", train, "--eval_sources", f"general={general}", *TINY,
            "--output_dir", str(out), "--adapter", "lora", "--lora_r", "4", "--lora_target_modules", "q_proj", "v_proj",
            "--l2sp_lambda", "0", "--lora_l2sp_lambda", "0.1", "--lora_save_merged", "true"]
    scores = en_de.main(argv)
    assert scores["general"]["num_sentences"] == 6
    config = json.loads((out / "adapter_config.json").read_text())
    assert (config["r"], sorted(config["target_modules"]), config["base_model_name_or_path"]) == (
        4, ["q_proj", "v_proj"], base)
    assert (out / "merged" / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()
    card = (out / "README.md").read_text(encoding="utf-8")
    assert "## Adapter" in card and "lora_r = 4" in card
    model, tokenizer = load_translation_model(str(out))
    assert len(translate(["the dog barks"], model, tokenizer, num_beams=1, max_new_tokens=5, progress=False)) == 1


def test_kl_to_base_with_lora_measures_from_the_base_model(tmp_path):
    trainer = train_with(tiny_marian(), task_dataset(8), make_args(tmp_path, kl_lambda=0.5, max_steps=3, **LORA))
    logged = [row["kl_to_base"] for row in trainer.state.log_history if "kl_to_base" in row]
    # B starts at zero, so the first update's model is the base; the adapters then move it away.
    assert logged[0] == 0.0 and all(value > 0 for value in logged[1:])


def test_hf_l2mt_translate_and_evaluate_take_an_adapter_folder(lora_run, tmp_path, capsys):
    from hf_l2mt.apps.cli import main

    run = tmp_path / "run"
    source, reference = tmp_path / "test.en", tmp_path / "test.de"
    source.write_text("".join(f"{s}\n" for s in SENTENCES[:3]))
    reference.write_text("".join(f"{s}\n" for s in SENTENCES[:3]))
    options = ["--num_beams", "1", "--max_new_tokens", "8", "--device", "cpu"]
    main(["translate", str(run), "--input", str(source), *options])
    from_adapter = capsys.readouterr().out
    main(["translate", str(run / "merged"), "--input", str(source), *options])
    assert capsys.readouterr().out == from_adapter and from_adapter.count("\n") == 3
    main(["evaluate", str(run), "--test", f"t={source},{reference}", *options])
    from hf_l2mt.evaluation.metrics import score_translations

    expected = score_translations(from_adapter.splitlines(), SENTENCES[:3])
    row = capsys.readouterr().out.splitlines()[1].split()
    assert row[:3] == ["t", f"{expected['bleu']:.2f}", f"{expected['chrf']:.2f}"] and row[-1] == "3"
