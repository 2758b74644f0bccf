"""L1 to zero or to the anchor: the soft threshold, where it enters the update, logging, validation."""

import pytest
import torch

from conftest import assert_same_params, logged_sum_rtol, make_args, marian, params_of, reordered_adamw_tolerance, task_dataset, train_with
from hf_l2mt.core.regularizers.l1 import soft_threshold_
from regularizer_reference import LR, adamw, decays, reference_run


def test_soft_threshold_by_hand():
    weights = torch.tensor([0.5, -0.05, 0.02, -0.3])
    soft_threshold_([weights], None, 0.1)
    assert weights.tolist() == pytest.approx([0.4, 0.0, 0.0, -0.2])
    weights, anchor = torch.tensor([1.5, 0.95, 1.02, 0.7]), torch.ones(4)
    soft_threshold_([weights], [anchor], 0.1)
    assert weights.tolist() == pytest.approx([1.4, 1.0, 1.0, 0.8])


@pytest.mark.parametrize("target, lam", [("anchor", 0.05), ("zero", 5.0)])
def test_l1_is_a_soft_threshold_after_each_optimizer_step(tmp_path, target, lam):
    data = task_dataset(4)

    def threshold(t, named, anchor):
        for n, p in named:
            if target == "anchor":
                offset = p - anchor[n]
                p.copy_(anchor[n] + offset.sign() * (offset.abs() - LR * lam).clamp(min=0))
            elif decays(n):
                p.copy_(p.sign() * (p.abs() - LR * lam).clamp(min=0))

    expected = reference_run(marian(), data, 3, adamw, after_step=threshold)
    model = marian()
    trainer = train_with(model, data, make_args(tmp_path, l1_lambda=lam, l1_target=target))
    # The threshold is applied with other operations than the reference loop's: about 3 roundings per step.
    assert_same_params(params_of(model), expected, **reordered_adamw_tolerance(3, terms=3))
    start = params_of(marian())
    trained = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
    if target == "anchor":
        # Adam moves every coordinate by about lr per update, so some end within the threshold of the anchor.
        assert any(bool((p == start[n]).any()) for n, p in trained.items())
        distance = sum(float((p - start[n]).abs().sum()) for n, p in trained.items())
    else:
        # Weights within lr·λ₁ of zero become exactly zero; biases and norm weights are not thresholded.
        assert bool((trained["model.shared.weight"] == 0).any())
        # fc1.bias starts at zero and moves about lr per update, less than the threshold: it stays untouched.
        assert bool((trained["model.encoder.layers.0.fc1.bias"] != 0).all())
        distance = sum(float(p.abs().sum()) for n, p in trained.items() if decays(n))
    # At most marian()'s 40 trainable tensors, the largest of 512 elements; one rounding per term (the
    # difference; the absolute value is exact).
    rel = logged_sum_rtol(tensors=40, largest=512, roundings_per_term=1)
    assert trainer.state.log_history[-2]["l1_penalty"] == pytest.approx(lam * distance, rel=rel)


def test_threshold_larger_than_a_step_keeps_every_weight_exactly_at_the_anchor(tmp_path):
    model = marian()
    start = params_of(marian())
    # One Adam update moves a coordinate by about lr; a threshold of 2·lr takes it back every time.
    train_with(model, task_dataset(8), make_args(tmp_path, max_steps=4, l1_lambda=2.0, weight_decay=0.0))
    for name, param in model.named_parameters():
        assert torch.equal(param.detach(), start[name]), name


@pytest.mark.parametrize("flag, value, accepted", [
    ("l1_lambda", -0.1, "a finite number >= 0"), ("l1_target", "origin", "'anchor', 'zero'"),
])
def test_bad_l1_arguments_are_refused(tmp_path, flag, value, accepted):
    with pytest.raises(ValueError, match=rf"{flag}: got {value!r}; accepted: {accepted}"):
        make_args(tmp_path, **{flag: value})
