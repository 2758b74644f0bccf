"""Each regularizer's update equals a reference loop written straight from its definition."""

import pytest
import torch
import torch.nn.functional as F
from transformers import Seq2SeqTrainer, Seq2SeqTrainingArguments

from conftest import (PadCollator, assert_same_params, make_args, marian, params_of, reordered_adamw_tolerance,
                      reordered_sgd_tolerance, reordered_tolerance, task_dataset, tiny_t5, T5_PAD, train_with)
from hf_l2mt.core.schedules import schedule_factor

LR = 1e-2
# Adam turns any gradient, however small, into a step of about lr. eps=1e-4 keeps float round-off
# (~1e-8) from becoming a step; every real gradient here is > 1e-3.
EPS = 1e-4
# The reference loop and the Trainer run the same batch through the same kernels; a gradient element differs
# by the roundings that are done elsewhere: the division by the token count, the penalty's gradient and its
# addition (3 terms, see conftest.reordered_sgd_tolerance).
ROUNDINGS = 3


def decays(name: str) -> bool:
    """transformers' default split, restated: no weight decay on biases and norm weights."""
    return "bias" not in name and "norm" not in name


def reference_run(model, dataset, steps, make_optimizer, l2sp_at=lambda t: 0.0, clip=0.0, before_step=None, pad_id=1):
    """Full-batch loop: mean token cross-entropy + (λ_t/2)·Σ‖θ−θ₀‖² through autograd."""
    anchor = {n: p.detach().clone() for n, p in model.named_parameters()}
    batch = PadCollator(pad_id)(list(dataset))
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    optimizer = make_optimizer(named)
    for t in range(steps):
        model.zero_grad()
        labels = batch["labels"]
        logits = model(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
            decoder_input_ids=model.prepare_decoder_input_ids_from_labels(labels=labels),
        ).logits
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), labels.reshape(-1), ignore_index=-100)
        lam = l2sp_at(t)
        if lam:
            loss = loss + lam / 2 * sum(((p - anchor[n]) ** 2).sum() for n, p in named)
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_([p for _, p in named], clip)
        if before_step is not None:
            with torch.no_grad():
                before_step(t, named, anchor)
        optimizer.step()
    return params_of(model)


def adamw(weight_decay=0.0, cls=torch.optim.AdamW):
    def make(named):
        return cls(
            [
                {"params": [p for n, p in named if decays(n)], "weight_decay": weight_decay},
                {"params": [p for n, p in named if not decays(n)], "weight_decay": 0.0},
            ],
            lr=LR, betas=(0.9, 0.999), eps=EPS,
        )

    return make


def sgd(named):
    return torch.optim.SGD([p for _, p in named], lr=LR)


@pytest.mark.parametrize("clip", [0.0, 0.05])
@pytest.mark.parametrize("optim, make_optimizer", [("sgd", sgd), ("adamw_torch", adamw())])
def test_coupled_l2sp_equals_penalty_in_the_loss(tmp_path, optim, make_optimizer, clip):
    data, lam, steps = task_dataset(4), 0.5, 3
    expected = reference_run(marian(), data, steps, make_optimizer, l2sp_at=lambda t: lam, clip=clip)
    model = marian()
    train_with(model, data, make_args(tmp_path, optim=optim, max_steps=steps, l2sp_lambda=lam, max_grad_norm=clip))
    assert_same_params(params_of(model), expected, **reordered_tolerance(optim, steps, ROUNDINGS))
    assert not torch.allclose(expected["model.shared.weight"], marian().model.shared.weight)


def test_coupled_l2sp_on_t5(tmp_path):
    data = task_dataset(4, eos=1)
    expected = reference_run(tiny_t5(), data, 3, adamw(), l2sp_at=lambda t: 0.5, clip=0.05, pad_id=T5_PAD)
    model = tiny_t5()
    train_with(model, data, make_args(tmp_path, l2sp_lambda=0.5, max_grad_norm=0.05), pad_id=T5_PAD)
    assert_same_params(params_of(model), expected, **reordered_adamw_tolerance(3, ROUNDINGS))


def test_coupled_weight_decay_equals_torch_adam(tmp_path):
    data = task_dataset(4)
    expected = reference_run(marian(), data, 3, adamw(0.3, cls=torch.optim.Adam))
    model = marian()
    train_with(model, data, make_args(tmp_path, weight_decay=0.3, weight_decay_mode="coupled"))
    assert_same_params(params_of(model), expected, **reordered_adamw_tolerance(3, ROUNDINGS))


def test_decoupled_weight_decay_equals_torch_adamw(tmp_path):
    data = task_dataset(4)
    expected = reference_run(marian(), data, 3, adamw(0.3))
    model = marian()
    train_with(model, data, make_args(tmp_path, weight_decay=0.3, weight_decay_mode="decoupled"))
    assert_same_params(params_of(model), expected, **reordered_adamw_tolerance(3, ROUNDINGS))


def test_decoupled_weight_decay_with_sgd_is_applied_by_the_trainer(tmp_path):
    data, wd = task_dataset(4), 0.3

    def shrink(t, named, anchor):
        for n, p in named:
            if decays(n):
                p.mul_(1 - LR * wd)

    expected = reference_run(marian(), data, 3, sgd, before_step=shrink)
    model = marian()
    train_with(model, data, make_args(tmp_path, optim="sgd", weight_decay=wd))
    assert_same_params(params_of(model), expected, **reordered_sgd_tolerance(3, ROUNDINGS))


def test_decoupled_l2sp_equals_adamw_plus_pre_update_move_to_anchor(tmp_path):
    data, lam = task_dataset(4), 2.0

    def move(t, named, anchor):
        for n, p in named:
            p.sub_(LR * lam * (p - anchor[n]))

    expected = reference_run(marian(), data, 4, adamw(), before_step=move)
    model = marian()
    train_with(model, data, make_args(tmp_path, max_steps=4, l2sp_lambda=lam, l2sp_mode="decoupled"))
    assert_same_params(params_of(model), expected, **reordered_adamw_tolerance(4, ROUNDINGS))


@pytest.mark.parametrize("schedule", ["linear", "cosine", "sigmoid"])
def test_update_t_uses_the_schedule_value_at_t(tmp_path, schedule):
    data, lam, steps = task_dataset(4), 3.0, 4
    kwargs = {"sigmoid_k": 1.5, "sigmoid_t0": 1.0} if schedule == "sigmoid" else {}
    at = lambda t: lam * schedule_factor(schedule, t, steps, warmup_steps=1, **kwargs)  # noqa: E731
    expected = reference_run(marian(), data, steps, sgd, l2sp_at=at)
    model = marian()
    args = make_args(
        tmp_path, optim="sgd", max_steps=steps, l2sp_lambda=lam, l2sp_schedule=schedule, l2sp_warmup_steps=1,
        l2sp_sigmoid_k=kwargs.get("sigmoid_k"), l2sp_sigmoid_t0=kwargs.get("sigmoid_t0"),
    )
    trainer = train_with(model, data, args)
    assert_same_params(params_of(model), expected, **reordered_sgd_tolerance(steps, ROUNDINGS))
    logged = [row["l2sp_lambda"] for row in trainer.state.log_history if "l2sp_lambda" in row]
    assert logged == pytest.approx([at(t) for t in range(steps)])


def test_lambda_zero_trains_exactly_like_plain_seq2seq_trainer(tmp_path):
    data = task_dataset(8)
    plain = marian()
    plain_args = Seq2SeqTrainingArguments(
        output_dir=str(tmp_path / "plain"), per_device_train_batch_size=4, max_steps=4, learning_rate=LR,
        report_to=[], save_strategy="no", seed=0, use_cpu=True, disable_tqdm=True, weight_decay=0.01,
        max_grad_norm=1.0, adam_epsilon=1e-4,
    )
    Seq2SeqTrainer(model=plain, args=plain_args, train_dataset=data, data_collator=PadCollator()).train()
    ours = marian()
    train_with(ours, data, make_args(
        tmp_path / "ours", max_steps=4, lr_scheduler_type="linear", weight_decay=0.01, max_grad_norm=1.0,
        optim=plain_args.optim,
    ))
    assert_same_params(params_of(ours), params_of(plain))
