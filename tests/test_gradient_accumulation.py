"""One update with k micro-batches equals one with the whole batch: the loss is the mean over all
non-ignored target tokens of the update, whatever the micro-batches hold."""

import pytest
import torch
import torch.nn.functional as F

from conftest import (PadCollator, assert_same_params, make_args, marian, params_of, reordered_sgd_tolerance, task_dataset,
                      tiny_marian, tiny_t5, T5_PAD, train_with)

# Accumulated and full-batch updates sum each gradient in another order: 8 targets of at most 9 tokens (72 terms),
# each through sums at most 32 wide (the feed-forward layers). SGD: see conftest.reordered_sgd_tolerance.
TERMS = 72 + 32
from hf_l2mt.core.loss import token_cross_entropy


def test_token_loss_is_sum_over_tokens_divided_by_update_token_count():
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 7)
    labels = torch.tensor([[1, 2, 3, -100, -100], [4, 5, 6, 0, 1]])
    expected = F.cross_entropy(logits.reshape(-1, 7), labels.reshape(-1), ignore_index=-100, reduction="sum") / 20
    assert token_cross_entropy(logits, labels, num_items_in_batch=20) == pytest.approx(float(expected))
    # Without a count it is this batch's token mean, like the models' own loss.
    assert token_cross_entropy(logits, labels) == pytest.approx(
        float(F.cross_entropy(logits.reshape(-1, 7), labels.reshape(-1), ignore_index=-100))
    )


def test_label_smoothing_matches_torch_definition():
    torch.manual_seed(1)
    logits, labels = torch.randn(3, 4, 9), torch.randint(0, 9, (3, 4))
    labels[0, 2:] = -100
    expected = F.cross_entropy(logits.reshape(-1, 9), labels.reshape(-1), ignore_index=-100, label_smoothing=0.1)
    assert token_cross_entropy(logits, labels, label_smoothing=0.1) == pytest.approx(float(expected))


@pytest.mark.parametrize("extra", [{}, {"l2sp_lambda": 0.5}, {"l2sp_lambda": 0.5, "l2sp_mode": "decoupled"},
                                   {"label_smoothing_factor": 0.1, "weight_decay": 0.1}])
def test_accumulated_update_equals_full_batch_update_with_ragged_targets(tmp_path, extra):
    # Targets of 2 to 9 tokens: micro-batches hold different numbers of tokens.
    data = task_dataset(8, seed=3, min_len=1, max_len=8)
    full = marian()
    train_with(full, data, make_args(tmp_path / "full", optim="sgd", per_device_train_batch_size=8, max_steps=3, max_grad_norm=0.5, **extra))
    accumulated = marian()
    train_with(accumulated, data, make_args(
        tmp_path / "acc", optim="sgd", per_device_train_batch_size=2, gradient_accumulation_steps=4, max_steps=3,
        max_grad_norm=0.5, **extra,
    ))
    assert_same_params(params_of(accumulated), params_of(full), **reordered_sgd_tolerance(3, TERMS))


def test_accumulation_is_exact_for_t5_too(tmp_path):
    data = task_dataset(8, seed=4, min_len=1, max_len=8, eos=1)
    full, accumulated = tiny_t5(), tiny_t5()
    train_with(full, data, make_args(tmp_path / "f", optim="sgd", per_device_train_batch_size=8, max_steps=2),
               pad_id=T5_PAD)
    train_with(accumulated, data, make_args(tmp_path / "a", optim="sgd", per_device_train_batch_size=4,
                                            gradient_accumulation_steps=2, max_steps=2), pad_id=T5_PAD)
    assert_same_params(params_of(accumulated), params_of(full), **reordered_sgd_tolerance(2, TERMS))


def test_logged_loss_is_the_update_mean(tmp_path):
    data = task_dataset(8, seed=3, min_len=1, max_len=8)
    model = tiny_marian()
    batch = PadCollator()(list(data))
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                       decoder_input_ids=model.prepare_decoder_input_ids_from_labels(labels=batch["labels"])).logits
    expected = float(token_cross_entropy(logits, batch["labels"]))
    trainer = train_with(model, data, make_args(tmp_path, per_device_train_batch_size=2, gradient_accumulation_steps=4, max_steps=1))
    # 37 target tokens, |logit| ≤ 5.2, mean cross-entropy 5.27. The micro-batches pad to other lengths: each logit
    # goes through sums at most 32 wide, 32 · 5.2u ≈ 166u, which moves a token's cross-entropy by ≤ 2 · 166u:
    # 63u of the mean. Each log-softmax over 24 words is off by (24 + 2 + 10.4) u ≈ 37u on each side: 14u of the
    # mean. The non-negative terms are summed in another order: 37 tokens, 4 micro-batch sums added up and 4
    # divisions by the token count instead of 1, on both sides 2 · (37 + 4 + 2) u = 86u. In all ≈ 165u ≈ 1e-5;
    # a mean of the micro-batch means, or a sum of them, is off by percents.
    assert trainer.state.log_history[0]["loss"] == pytest.approx(expected, rel=1e-5)


def test_any_auto_seq2seq_model_trains_exactly(tmp_path):
    """BART, loaded through AutoModelForSeq2SeqLM from a saved config, gets the same exact accumulation."""
    from transformers import AutoConfig, AutoModelForSeq2SeqLM, BartConfig

    config = BartConfig(
        vocab_size=24, d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, max_position_embeddings=32,
        dropout=0.0, attention_dropout=0.0, activation_dropout=0.0, init_std=0.5,
        pad_token_id=1, bos_token_id=0, eos_token_id=2, decoder_start_token_id=2,
    )
    config.save_pretrained(tmp_path / "bart")

    def build():
        torch.manual_seed(0)
        model = AutoModelForSeq2SeqLM.from_config(AutoConfig.from_pretrained(tmp_path / "bart"))
        for name, param in model.named_parameters():
            if name.endswith("k_proj.bias"):
                param.requires_grad_(False)
        return model

    data = task_dataset(8, seed=6, min_len=1, max_len=8, eos=2)
    full, accumulated = build(), build()
    train_with(full, data, make_args(tmp_path / "f", optim="sgd", per_device_train_batch_size=8, max_steps=2,
                                     l2sp_lambda=0.3))
    train_with(accumulated, data, make_args(tmp_path / "a", optim="sgd", per_device_train_batch_size=4,
                                            gradient_accumulation_steps=2, max_steps=2, l2sp_lambda=0.3))
    assert_same_params(params_of(accumulated), params_of(full), **reordered_sgd_tolerance(2, TERMS))
    assert not torch.equal(params_of(full)["model.shared.weight"], params_of(build())["model.shared.weight"])
