"""With every regularizer off, L2MTTrainer does what transformers' Trainer does where a transformers trainer test
(tests/trainer/test_trainer*.py, 5.x) found it did not: any iterable as the loader, a model's own
``load_state_dict`` on resume, training on through a NaN loss (``nonfinite_loss="continue"``), a resume equal to
Trainer's, ``eval_loss`` as the mean over examples (plain, batched metrics, iterable data), and no ``args``.
benchmarks/upstream_trainer_tests.py runs transformers' own tests against L2MTTrainer."""

import math
import os

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import IterableDataset
from transformers import Seq2SeqTrainer, Trainer, TrainerCallback

from conftest import PadCollator, make_args, params_of, task_pairs, tiny_marian
from hf_l2mt import L2MTTrainer, L2MTTrainingArguments
from hf_l2mt.core.nonfinite import NonFiniteLossError
from hf_l2mt.core.preflight import loads_its_own_way

EVAL_ROWS = 66  # not a multiple of per_device_eval_batch_size (8): the last batch holds 2 rows


class Regression(nn.Module):
    """transformers' RegressionModel: y = a·x + b, an MSE loss, tuples out."""

    def __init__(self, a=0.0, b=0.0):
        super().__init__()
        self.a = nn.Parameter(torch.tensor(a))
        self.b = nn.Parameter(torch.tensor(b))

    def forward(self, input_x, labels=None):
        y = input_x * self.a + self.b
        return (y,) if labels is None else (nn.functional.mse_loss(y, labels), y)


def regression_rows(n=64, seed=0):
    """y = 2x + 3 plus noise, as transformers' RegressionDataset."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n).astype(np.float32)
    y = (2 * x + 3 + rng.normal(scale=0.1, size=n)).astype(np.float32)
    return [{"input_x": xi, "labels": yi} for xi, yi in zip(x, y)]


class Rows(IterableDataset):
    """The rows as an IterableDataset: no length, so the evaluation loop cannot know where the data ends."""

    def __init__(self, rows):
        self.rows = rows

    def __iter__(self):
        yield from self.rows


def trainers(tmp_path, **kwargs):
    """Trainer and L2MTTrainer, each with a fresh Regression(1.5, 2.5) and the same arguments."""
    return [cls(model=Regression(1.5, 2.5), args=make_args(tmp_path / cls.__name__), **kwargs)
            for cls in (Trainer, L2MTTrainer)]


# ---- eval_loss: the mean over examples ------------------------------------------------------------


def mean_of_batch_means(rows, batch_size=8):
    a, b = 1.5, 2.5
    means = [np.mean([(a * r["input_x"] + b - r["labels"]) ** 2 for r in rows[i:i + batch_size]])
             for i in range(0, len(rows), batch_size)]
    return float(np.mean(means))


@pytest.mark.parametrize("iterable", [False, True], ids=["dataset", "iterable_dataset"])
def test_eval_loss_is_trainers_mean_over_examples_not_seq2seq_trainers_mean_of_batch_means(tmp_path, iterable):
    rows = regression_rows(EVAL_ROWS)
    data = Rows(rows) if iterable else rows
    theirs, ours = trainers(tmp_path)
    expected = theirs.evaluate(data)["eval_loss"]
    assert ours.evaluate(data)["eval_loss"] == expected
    # What Seq2SeqTrainer reports, and why this test can fail: 8 full batches and one of 2 rows, each batch weighed
    # alike. Against the sum here: each batch mean is a float32 sum of 8 squares (8 u relative; the squares are the
    # same floats on both sides), then Seq2SeqTrainer takes the float32 mean of 72 repeats (72 u) and this test the
    # mean of 9 batch means (9 u): 89 u ≈ 5e-6. The two weightings differ by 4 % (0.481 against 0.503).
    plain = Seq2SeqTrainer(model=Regression(1.5, 2.5), args=make_args(tmp_path / "plain")).evaluate(data)["eval_loss"]
    assert plain == pytest.approx(mean_of_batch_means(rows), rel=89 * 2.0 ** -24, abs=0)
    assert abs(plain - expected) > 1e-2 * expected


def test_eval_loss_with_batch_eval_metrics_and_losses_given_to_compute_metrics(tmp_path):
    rows = regression_rows(EVAL_ROWS)
    seen = {}

    def metrics(name):
        def compute_metrics(prediction, compute_result):
            seen.setdefault(name, []).append(np.asarray(prediction.losses))
            return {"batches": len(seen[name])} if compute_result else None
        return compute_metrics

    results = {}
    for cls in (Trainer, L2MTTrainer):
        args = make_args(tmp_path / cls.__name__, batch_eval_metrics=True, include_for_metrics=["loss"])
        trainer = cls(model=Regression(1.5, 2.5), args=args, compute_metrics=metrics(cls.__name__))
        results[cls.__name__] = trainer.evaluate(rows)
    assert results["L2MTTrainer"]["eval_loss"] == results["Trainer"]["eval_loss"]
    assert results["L2MTTrainer"]["eval_batches"] == results["Trainer"]["eval_batches"] == 9
    # The last batch's loss reaches compute_metrics once per row it holds (2), not once per row of a full batch.
    assert [len(batch) for batch in seen["L2MTTrainer"]] == [len(batch) for batch in seen["Trainer"]] == [8] * 8 + [2]


def test_marian_eval_loss_weighs_each_batch_by_its_rows(tmp_path):
    # 12 pairs in batches of 8: a batch of 8 and one of 4. The loss of each batch is the token-level mean (both
    # trainers' eval path); the evaluation weighs them 8 : 4 as Trainer does, not 1 : 1.
    rows = task_pairs(12, seed=4)
    trainer = L2MTTrainer(model=tiny_marian(), args=make_args(tmp_path), data_collator=PadCollator())
    reported = trainer.evaluate(rows)["eval_loss"]
    batch_losses = []
    for batch in trainer.get_eval_dataloader(rows):
        loss, _, _ = trainer.prediction_step(trainer.model, batch, prediction_loss_only=True)
        batch_losses.append(float(loss))
    per_example = (8 * batch_losses[0] + 4 * batch_losses[1]) / 12
    per_batch = (batch_losses[0] + batch_losses[1]) / 2
    # The loop takes the float32 mean of 12 values, each a batch's loss: at most 12 u relative from the float64
    # sum here (Higham eq. 4.4); the two weightings differ by |l1 - l2| / 6, 2 % of the loss here (4.89 against 5.00).
    assert reported == pytest.approx(per_example, rel=12 * 2.0 ** -24, abs=0)
    assert abs(per_example - per_batch) > 1e3 * 12 * 2.0 ** -24 * per_example


def test_generated_predictions_keep_every_returned_sequence(tmp_path):
    # Seq2SeqTrainer's reason for its gather (transformers issue 25231): 12 sources with 2 sequences each are 24
    # predictions, none cut from the last batch. The loss alone takes Trainer's gather.
    rows = task_pairs(12, seed=4)
    args = make_args(tmp_path, predict_with_generate=True, generation_max_length=8)
    counts = []
    for cls in (Seq2SeqTrainer, L2MTTrainer):
        trainer = cls(model=tiny_marian(), args=args, data_collator=PadCollator())
        counts.append(len(trainer.predict(rows, num_beams=2, num_return_sequences=2).predictions))
    assert counts == [24, 24]


# ---- Loaders, resume, non-finite losses, no arguments -----------------------------------------------


class MultiLoader:
    """Two loaders one after the other: an iterable with a length, not a torch DataLoader."""

    def __init__(self, loaders):
        self.loaders = loaders

    def __len__(self):
        return sum(len(loader) for loader in self.loaders)

    def __iter__(self):
        for loader in self.loaders:
            yield from loader


def with_two_loaders(trainer_cls):
    class TwoLoaders(trainer_cls):
        def get_train_dataloader(self):
            return MultiLoader([super().get_train_dataloader(), super().get_train_dataloader()])

        def get_eval_dataloader(self, eval_dataset=None):
            return MultiLoader([super().get_eval_dataloader(eval_dataset), super().get_eval_dataloader(eval_dataset)])

    return TwoLoaders


def test_any_iterable_is_a_loader_as_with_trainer(tmp_path):
    rows = regression_rows(16)
    results = []
    for cls in (Trainer, L2MTTrainer):
        args = make_args(tmp_path / cls.__name__, max_steps=-1, num_train_epochs=1)
        trainer = with_two_loaders(cls)(model=Regression(), args=args, train_dataset=rows, eval_dataset=rows)
        trainer.train()
        results.append((params_of(trainer.model), trainer.state.global_step, trainer.evaluate()["eval_loss"]))
    (theirs, theirs_steps, theirs_loss), (ours, ours_steps, ours_loss) = results
    assert ours_steps == theirs_steps == 2 * 16 // 4
    assert all(torch.equal(ours[name], theirs[name]) for name in theirs)
    assert ours_loss == theirs_loss


class GrowingBuffer(nn.Module):
    """transformers' test_resume_batch_order model: a buffer of the row ids seen, which grows at every step,
    and its own ``load_state_dict`` that resizes the buffer to the checkpoint's."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.linear = nn.Linear(1, 1)
        self.register_buffer("seen", torch.empty(0, dtype=torch.long))

    def load_state_dict(self, state_dict, strict=True, assign=False):
        if "seen" in state_dict:
            self.seen = state_dict["seen"].clone()
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def forward(self, input_x, row, labels=None):
        self.seen = torch.cat([self.seen, row])
        y = self.linear(input_x[:, None]).squeeze(-1)
        return (y,) if labels is None else (nn.functional.mse_loss(y, labels), y)


def test_resume_loads_what_the_models_own_load_state_dict_takes(tmp_path):
    rows = [{**r, "row": i} for i, r in enumerate(regression_rows(16))]
    settings = dict(max_steps=6, save_strategy="steps", save_steps=1)
    full = L2MTTrainer(model=GrowingBuffer(), args=make_args(tmp_path / "full", **settings), train_dataset=rows)
    full.train()
    checkpoint = str(tmp_path / "full" / "checkpoint-3")
    resumed = {}
    for cls in (Trainer, L2MTTrainer):
        trainer = cls(model=GrowingBuffer(), args=make_args(tmp_path / cls.__name__, **settings), train_dataset=rows)
        trainer.train(resume_from_checkpoint=checkpoint)
        resumed[cls.__name__] = trainer.model
    assert loads_its_own_way(GrowingBuffer()) and not loads_its_own_way(tiny_marian())
    assert full.model.seen.shape == (6 * 4,)
    for model in resumed.values():
        assert torch.equal(model.seen, full.model.seen)
        assert torch.equal(model.linear.weight, full.model.linear.weight)


def test_resumed_run_equals_trainers_resumed_run(tmp_path):
    rows = regression_rows(32)
    settings = dict(max_steps=6, save_strategy="steps", save_steps=3, lr_scheduler_type="linear", max_grad_norm=1.0)
    first = Trainer(model=Regression(), args=make_args(tmp_path / "first", **settings), train_dataset=rows)
    first.train()
    states = {}
    for cls in (Trainer, L2MTTrainer):
        trainer = cls(model=Regression(), args=make_args(tmp_path / cls.__name__, **settings), train_dataset=rows)
        trainer.train(resume_from_checkpoint=str(tmp_path / "first" / "checkpoint-3"))
        states[cls.__name__] = (params_of(trainer.model), trainer.state.log_history)
    (theirs, theirs_log), (ours, ours_log) = states["Trainer"], states["L2MTTrainer"]
    assert all(torch.equal(ours[name], theirs[name]) for name in theirs)
    # Ours logs the regularizers' strengths beside Trainer's values (l2sp_lambda 0, weight_decay 0); timings differ.
    timed = ("train_runtime", "train_samples_per_second", "train_steps_per_second")
    assert len(ours_log) == len(theirs_log)
    for mine, row in zip(ours_log, theirs_log):
        assert {k: mine[k] for k in row if k not in timed} == {k: v for k, v in row.items() if k not in timed}
    assert all(torch.equal(ours[name], p) for name, p in params_of(first.model).items())


class PoisonStep(TrainerCallback):
    """Turns the input of update ``step`` into NaN, as a diverging run would: the loss, then the weights, are NaN."""

    def __init__(self, trainer, step):
        self.step = step
        trainer.model.register_forward_pre_hook(self.hook, with_kwargs=True)
        self.state = None

    def on_step_begin(self, args, state, control, **kwargs):
        self.state = state

    def hook(self, module, args, kwargs):
        if module.training and self.state.global_step + 1 == self.step:
            return args, {**kwargs, "input_x": kwargs["input_x"] * math.nan}
        return None


def nan_run(cls, tmp_path, **overrides):
    args = make_args(tmp_path / cls.__name__, max_steps=5, save_strategy="steps", save_steps=5, optim="sgd",
                     **overrides)
    trainer = cls(model=Regression(), args=args, train_dataset=regression_rows(32))
    trainer.add_callback(PoisonStep(trainer, step=2))
    trainer.train()
    return trainer


@pytest.mark.parametrize("nan_filter", [True, False])
def test_continue_trains_through_a_nan_loss_as_trainer_does(tmp_path, nan_filter):
    theirs = nan_run(Trainer, tmp_path, logging_nan_inf_filter=nan_filter)
    ours = nan_run(L2MTTrainer, tmp_path, logging_nan_inf_filter=nan_filter, nonfinite_loss="continue")
    theirs_losses = [row["loss"] for row in theirs.state.log_history if "loss" in row]
    ours_losses = [row["loss"] for row in ours.state.log_history if "loss" in row]
    np.testing.assert_array_equal(ours_losses, theirs_losses)  # NaN where NaN
    assert all(map(math.isfinite, ours_losses)) == nan_filter
    for name, p in params_of(theirs.model).items():
        torch.testing.assert_close(params_of(ours.model)[name], p, rtol=0, atol=0, equal_nan=True)
    assert math.isnan(ours.model.a.item())  # the update was applied, NaN and all
    assert os.path.isdir(tmp_path / "L2MTTrainer" / "checkpoint-5")  # written with NaN weights, as Trainer writes it


def test_stop_is_still_the_default(tmp_path):
    with pytest.raises(NonFiniteLossError, match=r"^step 2: the training loss is nan"):
        nan_run(L2MTTrainer, tmp_path)


def test_no_arguments_gives_trainers_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    theirs = Trainer(Regression()).args.to_dict()
    for ours in (L2MTTrainer(Regression()), L2MTTrainer(Regression(), None), L2MTTrainer(model=Regression())):
        assert isinstance(ours.args, L2MTTrainingArguments)
        mine = ours.args.to_dict()
        assert {key: mine[key] for key in theirs} == theirs
        assert mine["output_dir"] == "tmp_trainer"


# ---- The callback list ------------------------------------------------------------------------------


def callback_names(trainer):
    return [type(callback).__name__ for callback in trainer.callback_handler.callbacks]


def test_callback_list_is_trainers_before_and_after_a_run_and_holds_the_stop_handler_while_it_runs(tmp_path):
    """transformers' tests and users' scripts compare the list by name; the stop-signal callback joins it for a run."""
    rows = regression_rows(16)
    theirs, ours = trainers(tmp_path, train_dataset=rows)
    assert callback_names(ours) == callback_names(theirs)

    class Recorder(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            during.append(callback_names(ours))

    during = []
    ours.add_callback(Recorder)
    ours.args.max_steps = 1
    ours.train()
    assert during and "PreemptionCallback" in during[0]
    assert callback_names(ours) == [*callback_names(theirs), "Recorder"]
