"""A NaN/inf loss, penalty or weight stops the run (or skips the update) and leaves the checkpoints intact."""

import hashlib
import math
import os

import pytest
import torch
from transformers import TrainerCallback

from conftest import PadCollator, make_args, params_of, task_dataset, tiny_marian
from hf_l2mt import L2MTTrainer
from hf_l2mt.core.nonfinite import SKIPPED_METRIC, NonFiniteLossError

SETTINGS = dict(
    max_steps=6, save_strategy="steps", save_steps=2, save_total_limit=1, l2sp_lambda=0.5, weight_decay=0.05,
    max_grad_norm=1.0,
)


def build(tmp_path, callbacks=(), **overrides):
    args = make_args(tmp_path / "run", **{**SETTINGS, **overrides})
    return L2MTTrainer(
        model=tiny_marian(), args=args, train_dataset=task_dataset(32, seed=3), data_collator=PadCollator(),
        callbacks=list(callbacks),
    )


def poison_forward(trainer, bad_calls: set[int], value=math.nan):
    """Make the logits of the given training forward passes (counted from 1) ``value``."""
    calls = {"n": 0}

    def hook(module, inputs, output):
        if not module.training:
            return output
        calls["n"] += 1
        return output * value if calls["n"] in bad_calls else output

    trainer.model.lm_head.register_forward_hook(hook)


def digests(folder):
    return {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in sorted(os.listdir(folder))}


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_nonfinite_loss_stops_naming_the_step_and_keeps_the_last_checkpoint(tmp_path, value):
    trainer = build(tmp_path)
    poison_forward(trainer, bad_calls={3}, value=value)
    saved = {}

    class Snapshot(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            saved.update(digests(tmp_path / "run" / "checkpoint-2"))

    trainer.add_callback(Snapshot())
    with pytest.raises(NonFiniteLossError, match=r"^step 3: the training loss is (nan|inf) \(the update was not applied\); training stopped"):
        trainer.train()
    assert sorted(os.listdir(tmp_path / "run")) == ["checkpoint-2"]
    assert digests(tmp_path / "run" / "checkpoint-2") == saved
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters()), "the bad update reached the weights"


class RecordWeights(TrainerCallback):
    def __init__(self):
        self.after = {}

    def on_step_end(self, args, state, control, model=None, **kwargs):
        self.after[state.global_step] = params_of(model)


def test_skip_drops_the_whole_update_and_counts_it(tmp_path, caplog):
    record = RecordWeights()
    trainer = build(tmp_path, callbacks=[record], nonfinite_loss="skip", gradient_accumulation_steps=2,
                    per_device_train_batch_size=2)
    poison_forward(trainer, bad_calls={5})  # the first micro-batch of update 3
    trainer.train()

    for name, before in record.after[2].items():
        assert torch.equal(record.after[3][name], before), f"{name} moved in the skipped update"
        assert not torch.equal(record.after[4][name], before) or not trainer.model.get_parameter(name).requires_grad
    adam_steps = {int(state["step"]) for state in trainer.optimizer.state.values()}
    assert adam_steps == {SETTINGS["max_steps"] - 1}
    logged = [row[SKIPPED_METRIC] for row in trainer.state.log_history if SKIPPED_METRIC in row]
    assert logged == [0, 0, 1, 1, 1, 1]
    assert "step 3: the training loss is nan; update skipped" in caplog.text
    assert all(math.isfinite(row["loss"]) for row in trainer.state.log_history if "loss" in row)


def test_skipped_count_continues_after_resume(tmp_path):
    trainer = build(tmp_path, nonfinite_loss="skip", save_total_limit=None)
    poison_forward(trainer, bad_calls={1, 4})
    trainer.train()
    first = [row[SKIPPED_METRIC] for row in trainer.state.log_history if SKIPPED_METRIC in row]
    assert first == [1, 1, 1, 2, 2, 2]
    resumed = build(tmp_path, nonfinite_loss="skip", save_total_limit=None)
    poison_forward(resumed, bad_calls={2})  # update 4 of the run resumed at 2
    resumed.train(resume_from_checkpoint=str(tmp_path / "run" / "checkpoint-2"))
    assert [row[SKIPPED_METRIC] for row in resumed.state.log_history if SKIPPED_METRIC in row] == [1, 1, 1, 2, 2, 2]


def test_nonfinite_penalty_stops_whatever_nonfinite_loss_says(tmp_path):
    trainer = build(tmp_path, nonfinite_loss="skip", max_grad_norm=0.0)

    class PoisonAnchor(TrainerCallback):
        # The anchor is taken at the first training step, so it is poisoned before the first optimizer step.
        def on_pre_optimizer_step(self, args, state, control, **kwargs):
            if state.global_step == 0:
                trainer.anchor["model.shared.weight"][2, 0] = math.inf

    trainer.add_callback(PoisonAnchor())
    with pytest.raises(NonFiniteLossError, match=r"^step 1: the L2-SP penalty is (inf|nan)"):
        trainer.train()
    assert not (tmp_path / "run").exists() or os.listdir(tmp_path / "run") == []


def test_no_checkpoint_is_written_with_nonfinite_weights(tmp_path):
    trainer = build(tmp_path, l2sp_lambda=0.0, logging_steps=100)

    class PoisonWeights(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kwargs):
            if state.global_step == 4:
                with torch.no_grad():
                    model.model.encoder.layers[0].fc1.weight[0, 0] = math.nan

    trainer.add_callback(PoisonWeights())
    with pytest.raises(NonFiniteLossError, match=r"^step 4: parameter 'model.encoder.layers.0.fc1.weight' holds NaN"):
        trainer.train()
    assert sorted(os.listdir(tmp_path / "run")) == ["checkpoint-2"]


def test_nonfinite_loss_value_is_validated(tmp_path):
    with pytest.raises(ValueError, match=r"nonfinite_loss: got 'ignore'; accepted: 'stop', 'skip', 'continue'"):
        make_args(tmp_path, nonfinite_loss="ignore")
