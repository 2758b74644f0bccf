"""L2-SP for LoRA in the merged weights: (λ/2)·Σ‖s·B·A‖², its gradient against autograd, and in the Trainer."""

import pytest
import torch

from conftest import (FLOAT32_ROUNDOFF, PadCollator, assert_same_params, make_args, reordered_adamw_tolerance,
                      task_dataset, tiny_marian, train_with)
from hf_l2mt import L2MTTrainer
from hf_l2mt.core.regularizers.lora_l2sp import LoraPair, add_lora_l2sp_grad_, lora_l2sp_penalty, lora_pairs

pytest.importorskip("peft", reason="LoRA needs the lora extra (peft)")

LORA = dict(adapter="lora", lora_r=2, lora_alpha=6.0)


def random_pair(out_features=5, in_features=7, rank=3, scaling=1.7, seed=0):
    generator = torch.Generator().manual_seed(seed)
    a = torch.randn(rank, in_features, generator=generator, dtype=torch.float64, requires_grad=True)
    b = torch.randn(out_features, rank, generator=generator, dtype=torch.float64, requires_grad=True)
    return LoraPair("layer", a, b, scaling)


def test_gradient_equals_autograd_of_the_merged_penalty():
    pairs = [random_pair(seed=0), random_pair(4, 9, 2, 0.5, seed=1)]
    strength = 0.3
    reference = sum(0.5 * strength * (p.scaling * p.lora_B @ p.lora_A).pow(2).sum() for p in pairs)
    reference.backward()
    expected = [(p.lora_A.grad.clone(), p.lora_B.grad.clone()) for p in pairs]
    previous = [(torch.full_like(p.lora_A, 0.25), torch.full_like(p.lora_B, -1.0)) for p in pairs]
    for pair, (grad_a, grad_b) in zip(pairs, previous):
        pair.lora_A.grad, pair.lora_B.grad = grad_a.clone(), grad_b.clone()
    add_lora_l2sp_grad_(pairs, strength)
    for pair, (want_a, want_b), (was_a, was_b) in zip(pairs, expected, previous):
        torch.testing.assert_close(pair.lora_A.grad, was_a + want_a)
        torch.testing.assert_close(pair.lora_B.grad, was_b + want_b)
    # The penalty is computed in float32 from float64 matrices: A and B rounded (4u through each Gram product), Gram
    # sums of at most 9 and 5 terms, their product, a sum of r² = 9 terms, s² and the sum over 2 pairs: about 30u
    # times κ = Σ|Gram products| / ‖s·B·A‖² = 1.6 (measured) ≈ 47u = 2.8e-6 of the float64 reference. A missing s²
    # (×0.25 or ×2.9) or ½ is far outside.
    assert lora_l2sp_penalty(pairs, strength) == pytest.approx(reference.item(), rel=3e-6)


def test_gradient_of_an_unused_matrix_is_the_penalty_gradient():
    pair = random_pair()
    (0.5 * (pair.scaling * pair.lora_B @ pair.lora_A).pow(2).sum()).backward()
    want_a, want_b = pair.lora_A.grad.clone(), pair.lora_B.grad.clone()
    pair.lora_A.grad, pair.lora_B.grad = None, None
    add_lora_l2sp_grad_([pair], 1.0)
    torch.testing.assert_close(pair.lora_A.grad, want_a)
    torch.testing.assert_close(pair.lora_B.grad, want_b)


def test_pairs_of_a_wrapped_marian_are_every_adapted_matrix_with_its_scale(tmp_path):
    from hf_l2mt.core.lora import wrap_with_lora

    model = wrap_with_lora(tiny_marian(), make_args(tmp_path, **LORA))
    pairs = lora_pairs(model)
    # 1 encoder layer (4 attention projections + fc1 + fc2) + 1 decoder layer (2 x 4 projections + fc1 + fc2)
    assert len(pairs) == 6 + 10
    assert {p.scaling for p in pairs} == {6.0 / 2}
    assert all(p.lora_A.shape[0] == 2 and p.lora_B.shape[1] == 2 for p in pairs)


class PenaltyInLoss(L2MTTrainer):
    """The reference: the merged-weight penalty added to the loss, differentiated by autograd."""

    strength = 0.0

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        loss = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        penalty = sum(0.5 * self.strength * (p.scaling * p.lora_B @ p.lora_A).pow(2).sum()
                      for p in lora_pairs(model))
        return loss + penalty


def adapter_weights(trainer):
    return {n: p.detach().clone() for n, p in trainer.model.named_parameters() if "lora_" in n}


def test_trainer_update_equals_penalty_in_the_loss(tmp_path):
    data = task_dataset(12, seed=3)
    settings = dict(LORA, optim="sgd", learning_rate=0.5, max_steps=3)
    added = train_with(tiny_marian(), data, make_args(tmp_path / "a", lora_l2sp_lambda=2.0, **settings))
    reference = PenaltyInLoss
    reference.strength = 2.0
    in_loss = train_with(tiny_marian(), data, make_args(tmp_path / "b", **settings), trainer_cls=reference)
    plain = train_with(tiny_marian(), data, make_args(tmp_path / "c", **settings))
    got, want, without = adapter_weights(added), adapter_weights(in_loss), adapter_weights(plain)
    # The two runs differ in how the penalty's gradient associates: s²·(BᵀB)·A against autograd's s·Bᵀ·(s·B·A),
    # sums at most 32 wide (the feed-forward layers) plus the rank's 2, and the addition to the task gradient: 36
    # roundings of each step, which here is of the weights' own size (they reach 5.6 in 3 steps at lr 0.5), so
    # 3 · 36 u relative; the task gradients (absolute sums < 1, see reordered_sgd_tolerance) add lr · 34 u a step.
    # Doubling the penalty's gradient, or dropping its s², moves some weight by 5 or more (measured).
    tolerance = dict(rtol=3 * 36 * FLOAT32_ROUNDOFF, atol=3 * 0.5 * 34 * FLOAT32_ROUNDOFF)
    for name in want:
        torch.testing.assert_close(got[name], want[name], **tolerance)
    assert any(not torch.allclose(got[n], without[n]) for n in want), "the penalty changed nothing"
    logged = [row for row in added.state.log_history if "lora_l2sp_penalty" in row]
    assert logged and logged[-1]["lora_l2sp_lambda"] == 2.0
    # Logged after the last update by the same function from the same weights: the same float.
    assert logged[-1]["lora_l2sp_penalty"] == lora_l2sp_penalty(lora_pairs(added.model), 2.0)


def test_gradient_accumulation_stays_exact(tmp_path):
    data = task_dataset(16, seed=4)
    settings = dict(LORA, lora_l2sp_lambda=1.0, max_steps=3, max_grad_norm=1.0)
    whole = train_with(tiny_marian(), data, make_args(tmp_path / "whole", per_device_train_batch_size=4, **settings))
    accumulated = train_with(tiny_marian(), data, make_args(tmp_path / "acc", per_device_train_batch_size=2,
                                                            gradient_accumulation_steps=2, **settings))
    # AdamW: each gradient sums in another order 4 targets of at most 8 tokens (32 terms), each through sums at most
    # 32 wide (the feed-forward layers), over 3 steps: atol 1.1e-3. The penalty added once per micro-batch instead
    # of once per update moves the adapter weights by 0.025 (measured), 20 times more.
    assert_same_params(adapter_weights(accumulated), adapter_weights(whole),
                       **reordered_adamw_tolerance(3, terms=32 + 32))


def test_a_larger_strength_keeps_the_merged_weights_closer_to_the_pretrained_ones(tmp_path):
    data = task_dataset(12, seed=3)
    distances = []
    # SGD, so that each update follows the gradient's size rather than its sign (Adam).
    for strength in (0.0, 10.0, 30.0):
        trainer = train_with(tiny_marian(), data, make_args(tmp_path / str(strength), lora_l2sp_lambda=strength,
                                                            optim="sgd", learning_rate=0.01, max_steps=4, **LORA))
        distances.append(2 * lora_l2sp_penalty(lora_pairs(trainer.model), 1.0))
    assert 0 < distances[2] < distances[1] < distances[0]


def test_cost_benchmark_runs_every_variant_at_toy_size(capsys):
    from benchmarks import lora_l2sp_cost

    summary = lora_l2sp_cost.main(["--vocab_size", "32", "--d_model", "16", "--layers", "1", "--rank", "2",
                                   "--batch_size", "2", "--seq_len", "4", "--warmup", "1", "--steps", "1",
                                   "--rounds", "1"])
    assert set(summary["median_step_s"]) == {"lora", "lora_l2sp", "autograd"}
    assert summary["ratio_to_lora"]["lora"] == 1.0 and summary["adapter_params"] > 0
    assert "lora_l2sp" in capsys.readouterr().out
