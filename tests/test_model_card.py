import dataclasses

import pytest
import torch
from huggingface_hub import ModelCard
from transformers import Seq2SeqTrainingArguments

from conftest import make_args
from hf_l2mt import L2MTTrainingArguments
from hf_l2mt.apps.publish.model_card import build_model_card, redact_secrets, write_model_card
from hf_l2mt.core.fisher import save_fisher
from hf_l2mt.evaluation.metrics import score_translations

TOKEN = "hf_abcdefghijklmnopqrstuvwxyz012345"

REGULARIZATION = dict(
    weight_decay=0.01, weight_decay_mode="coupled", weight_decay_schedule="sigmoid", weight_decay_warmup_steps=7,
    weight_decay_sigmoid_k=0.5, weight_decay_sigmoid_t0=20.0, decay_embeddings=False,
    weight_decay_overrides=["lm_head=0.0"], l2sp_lambda=0.25, l2sp_mode="decoupled", l2sp_schedule="cosine",
    l2sp_warmup_steps=5, l2sp_sigmoid_k=0.3, l2sp_sigmoid_t0=10.0, l2sp_include_regex="encoder|decoder",
    l2sp_overrides=["encoder\\.=1.0", "decoder\\.=0.1"], anchor_dtype="bfloat16",
)


@pytest.fixture
def scores():
    return {
        "in_domain": score_translations(
            ["Das Haus ist klein .", "Der Hund bellt ."], ["Das Haus ist klein .", "Ein Hund bellt ."]
        ),
        "general": score_translations(["Guten Morgen", "Danke sehr"], ["Guten Tag", "Vielen Dank"]),
    }


def card_for(tmp_path, scores, **overrides):
    settings = dict(
        base_model="Helsinki-NLP/opus-mt-en-de", src_lang="en", tgt_lang="de",
        training_args=make_args(tmp_path / "opus-mt-en-de-medical", **REGULARIZATION), scores=scores,
        datasets=["wmt16"], command="accelerate launch train.py --l2sp_lambda 0.25",
    )
    settings.update(overrides)
    return build_model_card(**settings)


def test_metadata_has_language_pair_base_model_and_one_eval_result_per_set_and_metric(tmp_path, scores):
    card = ModelCard(str(card_for(tmp_path, scores)))  # parsed back from the text the Hub would get

    assert card.data.language == ["en", "de"]
    assert {"translation", "hf_l2mt"} <= set(card.data.tags)
    assert card.data.base_model == "Helsinki-NLP/opus-mt-en-de"
    assert card.data.datasets == ["wmt16"]
    assert card.data.model_name == "opus-mt-en-de-medical"
    found = {(r.dataset_name, r.metric_type): r for r in card.data.eval_results}
    assert set(found) == {(s, m) for s in ("in_domain", "general") for m in ("bleu", "chrf", "ter", "exact_match")}
    for (set_name, metric), result in found.items():
        assert result.task_type == "translation"
        # The card writes round(score, 2), read back exactly from YAML's shortest repr: at most half of 0.01 away
        # (plus a last-bit 1e-14 at a score of 100, which a tie at exactly x.xx5 would need). Another set's or
        # metric's score (these differ by whole BLEU/chrF/TER points) lies far outside.
        assert result.metric_value == pytest.approx(scores[set_name][metric], abs=0.005)
        assert result.metric_config == scores[set_name]["signatures"].get(metric)


def test_every_regularization_setting_and_training_hyperparameter_is_recorded(tmp_path, scores):
    card = card_for(tmp_path, scores)

    recorded = card.data.hf_l2mt
    # Every field L2MTTrainingArguments adds over Seq2SeqTrainingArguments (kl_*, l1_*, l2sp_fisher_* included).
    inherited = {f.name for f in dataclasses.fields(Seq2SeqTrainingArguments)}
    added = {f.name for f in dataclasses.fields(L2MTTrainingArguments)} - inherited
    assert {"kl_lambda", "l1_target", "l2sp_fisher_normalize"} <= added
    assert set(recorded["regularization"]) == added | {"weight_decay"}
    assert {name: recorded["regularization"][name] for name in REGULARIZATION} == REGULARIZATION
    assert recorded["training"]["learning_rate"] == 1e-2
    assert recorded["training"]["max_steps"] == 3
    assert recorded["training"]["per_device_train_batch_size"] == 4
    assert recorded["training"]["seed"] == 0
    for name in recorded["regularization"]:
        assert f"| `{name}` |" in card.text
    assert "| `l2sp_include_regex` | `encoder\\|decoder` |" in card.text  # "|" must not split the table
    assert "This run used L2-SP with l2sp_lambda = 0.25 (decoupled, cosine schedule)" in card.text


@dataclasses.dataclass
class ArgumentsWithAnExtraField(L2MTTrainingArguments):
    dropout_schedule: str = dataclasses.field(default="constant", metadata={"help": "A setting of a subclass."})


def test_a_subclass_extra_field_is_recorded_in_the_metadata_and_the_table(tmp_path, scores):
    args = ArgumentsWithAnExtraField(
        output_dir=str(tmp_path / "run"), dropout_schedule="linear", use_cpu=True, report_to=[], l2sp_lambda=0.1
    )
    card = card_for(tmp_path, scores, training_args=args)

    assert ModelCard(str(card)).data.hf_l2mt["regularization"]["dropout_schedule"] == "linear"
    assert "| `dropout_schedule` | `linear` |" in card.text


def test_kl_l1_and_ewc_runs_state_their_settings(tmp_path, scores):
    fisher = save_fisher({"w": torch.ones(2)}, str(tmp_path / "base_fisher.safetensors"))
    args = make_args(
        tmp_path / "run", l2sp_lambda=0.5, l2sp_fisher_path=fisher, l2sp_fisher_normalize="none", kl_lambda=0.2,
        kl_temperature=2.0, kl_schedule="linear", l1_lambda=0.003, l1_target="zero",
    )
    card = card_for(tmp_path, scores, training_args=args)

    recorded = ModelCard(str(card)).data.hf_l2mt["regularization"]
    expected = dict(l2sp_fisher_path="base_fisher.safetensors", l2sp_fisher_normalize="none", kl_lambda=0.2,
                    kl_temperature=2.0, kl_schedule="linear", l1_lambda=0.003, l1_target="zero")
    assert {name: recorded[name] for name in expected} == expected
    for name, value in expected.items():
        assert f"| `{name}` | `{value}` |" in card.text
    assert str(tmp_path) not in card.text  # the Fisher's local path is shortened to its file name
    assert (
        "It also used EWC (the L2-SP penalty weighted by the Fisher in `base_fisher.safetensors`, "
        "l2sp_fisher_normalize = none); KL to the base model (kl_lambda = 0.2, kl_temperature = 2, linear "
        "schedule); L1 (l1_lambda = 0.003, towards zero)." in card.text
    )


def test_body_shows_scores_with_their_signatures(tmp_path, scores):
    text = card_for(tmp_path, scores).text

    general = scores["general"]
    numbers = " | ".join(f"{general[metric]:.2f}" for metric in ("bleu", "chrf", "ter", "exact_match"))
    assert f"| general | {numbers} | 2 |" in text
    for set_name in scores:
        for metric, signature in scores[set_name]["signatures"].items():
            assert signature in text
    assert "## Limitations" in text


def test_tokens_in_the_command_are_redacted(tmp_path, scores):
    command = (
        f"HF_TOKEN={TOKEN} accelerate launch train.py --hub_token {TOKEN} --push_to_hub --max_new_tokens 128 "
        f"--hub_model_id me/model --token={TOKEN}"
    )
    card = card_for(tmp_path, scores, command=command)
    path = write_model_card(str(tmp_path), card)

    written = open(path, encoding="utf-8").read()
    assert TOKEN not in written and "abcdefghijklmnop" not in written
    assert "HF_TOKEN=*** accelerate launch train.py --hub_token *** --push_to_hub --max_new_tokens 128" in written
    assert "--hub_model_id me/model --token=***" in written


def test_redact_secrets_keeps_ordinary_flags():
    assert redact_secrets("--max_new_tokens 128 --tokenizer_name opus --pad_to_multiple_of 8") == (
        "--max_new_tokens 128 --tokenizer_name opus --pad_to_multiple_of 8"
    )
    assert redact_secrets(f"see https://x.org/?t={TOKEN} now") == "see https://x.org/?t=*** now"


def test_local_paths_become_relative(tmp_path, scores):
    base = tmp_path / "checkpoints" / "opus-mt-en-de"
    base.mkdir(parents=True)
    data = tmp_path / "medical.en-de.tsv"
    data.write_text("a\tb\n")
    command = f"python {tmp_path}/train.py --model_name_or_path {base} --output_dir={tmp_path}/out"

    card = card_for(tmp_path, scores, base_model=str(base), datasets=[str(data), "wmt16"], command=command)

    assert str(tmp_path) not in str(card)
    assert card.data.base_model is None  # a local name is no Hub repository
    assert card.data.datasets == ["wmt16"]
    assert "the local checkpoint `opus-mt-en-de`" in card.text
    assert "`medical.en-de.tsv` (local)" in card.text
    assert "python train.py --model_name_or_path opus-mt-en-de --output_dir=out" in card.text


def test_bad_scores_and_language_codes_are_rejected(tmp_path, scores):
    incomplete = {"in_domain": {key: value for key, value in scores["in_domain"].items() if key != "chrf"}}
    with pytest.raises(ValueError, match=r"scores\['in_domain'\] has no number for chrf"):
        card_for(tmp_path, incomplete)
    with pytest.raises(ValueError, match="tgt_lang='German'"):
        card_for(tmp_path, scores, tgt_lang="German")
    with pytest.raises(ValueError, match="training_args is a dict; accepted: L2MTTrainingArguments"):
        card_for(tmp_path, scores, training_args={"l2sp_lambda": 0.1})


def test_a_model_without_scores_says_so(tmp_path):
    card = card_for(tmp_path, {})
    assert card.data.eval_results is None
    assert "No evaluation scores were recorded" in card.text


def test_write_replaces_readme_atomically_and_keeps_it_on_failure(tmp_path, scores, monkeypatch):
    card = card_for(tmp_path, scores)
    readme = tmp_path / "README.md"
    readme.write_text("my notes")

    assert write_model_card(str(tmp_path), card) == str(readme)
    assert readme.read_text(encoding="utf-8") == str(card)
    assert not (tmp_path / "README.md.tmp").exists()

    def half_written(self, path):
        open(path, "w").write("---\ntruncated")
        raise OSError("disk full")

    monkeypatch.setattr(ModelCard, "save", half_written)
    with pytest.raises(OSError, match="disk full"):
        write_model_card(str(tmp_path), card_for(tmp_path, {}))
    assert readme.read_text(encoding="utf-8") == str(card)

    with pytest.raises(ValueError, match="missing.*is not a directory"):
        write_model_card(str(tmp_path / "missing"), card)
