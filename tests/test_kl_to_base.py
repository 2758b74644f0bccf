"""KL to the base model: the term's value and gradient, accumulation, logging and resume."""

import pytest
import torch

from conftest import (PadCollator, assert_same_params, make_args, marian, params_of, reordered_sgd_tolerance,
                      reordered_tolerance, task_dataset, tiny_marian, train_with)
from hf_l2mt.core.regularizers.kl import token_kl_sum
from hf_l2mt.core.schedules import schedule_factor
from regularizer_reference import adamw, forward, kl_per_token, reference_run, sgd


def test_token_kl_sum_is_the_sum_over_target_tokens_of_kl_base_to_model():
    torch.manual_seed(0)
    logits, base = torch.randn(2, 4, 7), torch.randn(2, 4, 7)
    labels = torch.tensor([[3, 2, -100, -100], [1, 1, 5, 6]])
    # Both sides take float32 log-softmaxes of the same rows of 7 logits, |logit / T| ≤ 2.4: each log-probability
    # is off by at most (7 + 2 + 4.8) u ≈ 14u (the exponentials' sum, the log, the shift by the max), so a
    # log-ratio differs between the sides by ≤ 4 · 14u = 56u, and Σ_v p·56u over 6 tokens is 336u absolute
    # against a KL sum ≥ 1.04 before T² (T = 2; T² is exact): 323u relative. exp(log p) against softmax adds
    # 15u times κ = Σ|p·log-ratio| / KL ≤ 2.9 (measured), 44u; the sums of 7 and 6 terms on both sides 2·13·κ =
    # 75u; the mean times 6, 2u. In all ≈ 445u = 2.7e-5. A missing T² (×4), the reverse KL, counting the 2
    # ignored positions or a mean for a sum are all off by 25% or more.
    for temperature in (1.0, 2.0):
        expected = 6 * kl_per_token(logits, base, labels, temperature)
        assert float(token_kl_sum(logits, base, labels, temperature)) == pytest.approx(float(expected), rel=3e-5)
    # Identical log-probabilities: each term exp(t)·(t − t) is exactly 0.
    assert float(token_kl_sum(base, base, labels)) == 0.0


@pytest.mark.parametrize("optim, make_optimizer, temperature, schedule", [
    ("sgd", sgd, 1.0, "linear"), ("adamw_torch", adamw, 2.0, "constant"),
])
def test_kl_update_equals_autograd_through_a_frozen_copy_of_the_base(tmp_path, optim, make_optimizer, temperature,
                                                                     schedule):
    data, lam, steps = task_dataset(4), 2.0, 3

    def kl(t, logits, batch, named, anchor, base):
        with torch.no_grad():
            base_logits = forward(base, batch)
        return lam * schedule_factor(schedule, t, steps) * kl_per_token(logits, base_logits, batch["labels"], temperature)

    expected = reference_run(marian(), data, steps, make_optimizer, extra_loss=kl)
    model = marian()
    trainer = train_with(model, data, make_args(tmp_path, optim=optim, max_steps=steps, kl_lambda=lam,
                                                kl_temperature=temperature, kl_schedule=schedule))
    # The reference computes the KL with other operations: each logit's gradient goes through a softmax over the
    # 24-word vocabulary, plus a few roundings (32 terms).
    assert_same_params(params_of(model), expected, **reordered_tolerance(optim, steps, terms=32))
    assert not torch.allclose(expected["model.shared.weight"], marian().model.shared.weight)
    logged = [row["kl_lambda"] for row in trainer.state.log_history if "kl_lambda" in row]
    assert logged == pytest.approx([lam * schedule_factor(schedule, t, steps) for t in range(steps)])


def test_kl_to_base_is_zero_at_the_first_update_then_the_per_token_kl(tmp_path):
    data = task_dataset(4)
    one_step = tiny_marian()
    train_with(one_step, data, make_args(tmp_path / "one", max_steps=1, kl_lambda=0.5))
    batch = PadCollator()(list(data))
    with torch.no_grad():
        expected = kl_per_token(forward(one_step, batch), forward(tiny_marian(), batch), batch["labels"])

    trainer = train_with(tiny_marian(), data, make_args(tmp_path / "two", max_steps=2, kl_lambda=0.5))
    first, second = [row["kl_to_base"] for row in trainer.state.log_history if "kl_to_base" in row]
    # The model is the base before the first update: the same weights through the same operations give the same
    # logits, and each term exp(t)·(t − t) is exactly 0.
    assert first == 0.0
    # 26 target tokens, vocabulary 24, |logit| ≤ 3.8, KL per token 1.08 with κ = Σ|p·log-ratio| / KL = 1.4
    # (measured). The logits of both sides go through sums at most 32 wide, 32 · 3.8u ≈ 120u each, which moves a
    # log-ratio by ≤ 4 · 120u: 445u of the KL. Each log-probability is off by (24 + 2 + 8) u = 34u, 4 · 34u = 126u
    # of the KL; exp(log p) against softmax 34u · κ = 48u; the sums of 24 and 26 terms on both sides 2 · 50 · κ =
    # 141u; mean against sum / count, 2u. In all ≈ 760u = 4.5e-5, within 1e-4; a KL from the wrong step's
    # weights or the wrong token count is off by percents.
    assert second == pytest.approx(float(expected), rel=1e-4) and second > 1e-3


def test_accumulated_update_equals_full_batch_update_with_kl(tmp_path):
    data = task_dataset(8, seed=3, min_len=1, max_len=8)  # micro-batches hold different numbers of tokens
    settings = dict(optim="sgd", max_steps=3, max_grad_norm=0.5, kl_lambda=1.0, l2sp_lambda=0.2)
    full, accumulated = marian(), marian()
    train_with(full, data, make_args(tmp_path / "full", per_device_train_batch_size=8, **settings))
    train_with(accumulated, data, make_args(tmp_path / "acc", per_device_train_batch_size=2,
                                            gradient_accumulation_steps=4, **settings))
    # Each gradient is summed in another order: 8 targets of at most 9 tokens (72 terms), each through sums at
    # most 32 wide (the feed-forward layer), for the task loss and the KL alike.
    assert_same_params(params_of(accumulated), params_of(full), **reordered_sgd_tolerance(3, terms=72 + 32))


def test_resumed_kl_run_equals_uninterrupted_run(tmp_path):
    """Only KL is on: the anchor (the base's weights) is still saved and restored, not re-taken at resume."""
    data = task_dataset(16, seed=5)
    settings = dict(max_steps=6, save_strategy="steps", save_steps=3, kl_lambda=1.0, kl_schedule="cosine",
                    lr_scheduler_type="linear")
    uninterrupted = tiny_marian()
    train_with(uninterrupted, data, make_args(tmp_path / "full", **settings))
    train_with(tiny_marian(), data, make_args(tmp_path / "run", **settings))
    model = tiny_marian()
    train_with(model, data, make_args(tmp_path / "run", **settings),
               resume_from_checkpoint=str(tmp_path / "run" / "checkpoint-3"))
    assert_same_params(params_of(model), params_of(uninterrupted))


@pytest.mark.parametrize("flag, value, accepted", [
    ("kl_lambda", -1.0, "a finite number >= 0"), ("kl_temperature", 0.0, "a finite number > 0"),
    ("kl_schedule", "step", "'constant', 'linear', 'cosine', 'sigmoid'"), ("kl_warmup_steps", -2, "an integer >= 0"),
])
def test_bad_kl_arguments_are_refused(tmp_path, flag, value, accepted):
    with pytest.raises(ValueError, match=rf"{flag}: got {value!r}; accepted: {accepted}"):
        make_args(tmp_path, **{flag: value})
