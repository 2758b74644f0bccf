"""Token-budget batches: within the budget, every pair once per epoch, reproducible, resumable."""

import random

import pytest

from conftest import (PadCollator, StopAfter, assert_same_params, make_args, params_of, task_dataset, tiny_marian,
                      train_with)
from hf_l2mt import L2MTTrainer
from hf_l2mt.core.batching import TokenBudgetBatchSampler, cut_batches, pair_lengths


def lengths_of(n, seed=0):
    rng = random.Random(seed)
    return [rng.choice([1, 2, 3, 5, 8, 13, 40]) for _ in range(n)]


def test_batches_stay_within_the_budget_and_cover_every_pair_once():
    lengths = lengths_of(500)
    sampler = TokenBudgetBatchSampler(lengths, max_tokens=64, seed=3)
    batches = list(sampler)
    assert sorted(i for batch in batches for i in batch) == list(range(500))
    for batch in batches:
        assert len(batch) * max(lengths[i] for i in batch) <= 64
    assert len(batches) == len(sampler)


def test_a_pair_longer_than_the_budget_forms_a_batch_of_its_own():
    assert cut_batches([1, 1, 30, 100], max_tokens=20) == [2, 1, 1]
    sampler = TokenBudgetBatchSampler([100, 1, 1], max_tokens=20)
    assert sorted(map(len, sampler)) == [1, 2]


def test_padding_is_far_below_fixed_size_batches():
    lengths = lengths_of(2000)
    budget = 32 * 8
    padded = sum(len(b) * max(lengths[i] for i in b) for b in TokenBudgetBatchSampler(lengths, budget))
    order = list(range(2000))
    random.Random(0).shuffle(order)
    fixed = sum(32 * max(lengths[i] for i in order[s:s + 32]) for s in range(0, 2000, 32))
    assert 1 - sum(lengths) / padded < 0.1 < 1 - sum(lengths) / fixed


def test_order_is_reproducible_per_seed_and_epoch():
    lengths = lengths_of(300)
    a, b = TokenBudgetBatchSampler(lengths, 48, seed=1), TokenBudgetBatchSampler(lengths, 48, seed=1)
    assert list(a) == list(b)
    a.set_epoch(1)
    assert list(a) != list(b) and len(list(a)) == len(list(b))
    assert list(TokenBudgetBatchSampler(lengths, 48, seed=2)) != list(b)


def test_lengths_come_from_the_length_column_or_the_longer_side():
    rows = task_dataset(6, seed=1)
    assert pair_lengths(rows) == [max(len(r["input_ids"]), len(r["labels"])) for r in rows]
    with_column = rows.add_column("length", [7] * 6)
    assert pair_lengths(with_column) == [7] * 6
    with pytest.raises(ValueError, match="max_tokens_per_batch: training pair 0 has no 'input_ids'"):
        pair_lengths([{"text": "a"}])


@pytest.mark.parametrize("value", [0, -5, 2.5, True])
def test_bad_budget_is_refused(tmp_path, value):
    with pytest.raises(ValueError, match=f"max_tokens_per_batch: got {value!r}; accepted: an integer >= 1"):
        make_args(tmp_path, max_tokens_per_batch=value)


def test_trainer_uses_token_budget_batches(tmp_path):
    data = task_dataset(40, seed=2, min_len=1, max_len=12)
    args = make_args(tmp_path, max_tokens_per_batch=30, max_steps=-1, num_train_epochs=1)
    trainer = train_with(tiny_marian(), data, args)
    loader = trainer.get_train_dataloader()
    seen = [batch["labels"] for batch in loader]
    assert trainer.state.global_step == len(loader) == len(TokenBudgetBatchSampler(pair_lengths(data), 30))
    assert sum(int((labels != -100).sum()) for labels in seen) == sum(len(r["labels"]) for r in data)


def test_resumed_run_sees_the_same_batches(tmp_path):
    data = task_dataset(48, seed=4, min_len=1, max_len=12)
    settings = dict(max_tokens_per_batch=36, max_steps=-1, num_train_epochs=2, save_strategy="steps", save_steps=5,
                    l2sp_lambda=0.3, lr_scheduler_type="linear")
    full = tiny_marian()
    train_with(full, data, make_args(tmp_path / "full", **settings))

    first = L2MTTrainer(model=tiny_marian(), args=make_args(tmp_path / "run", **settings), train_dataset=data,
                        data_collator=PadCollator(), callbacks=[StopAfter(5)])
    first.train()
    resumed_model = tiny_marian()
    train_with(resumed_model, data, make_args(tmp_path / "run", **settings),
               resume_from_checkpoint=str(tmp_path / "run" / "checkpoint-5"))
    assert_same_params(params_of(resumed_model), params_of(full))


def test_group_by_length_reads_the_length_column_into_a_list(tmp_path):
    # transformers passes datasets' lazy Column to LengthGroupedSampler, which reads it pair by pair.
    data = task_dataset(30, seed=5, min_len=1, max_len=12)
    data = data.add_column("length", [max(len(r["input_ids"]), len(r["labels"])) for r in data]).shuffle(seed=3)
    args = make_args(tmp_path, train_sampling_strategy="group_by_length", max_steps=-1, num_train_epochs=1)
    trainer = L2MTTrainer(model=tiny_marian(), args=args, train_dataset=data, data_collator=PadCollator())
    sampler = trainer._get_train_sampler()
    assert type(sampler.lengths) is list
    assert sampler.lengths == [data[i]["length"] for i in range(len(data))]
    assert sorted(sampler) == list(range(len(data)))
