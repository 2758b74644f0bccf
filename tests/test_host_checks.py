"""host_check_steps > 1: a non-finite update is skipped on the device and read back every N updates, with
the weights a check every update leaves; the stop-signal agreement of several processes every N updates."""

from types import SimpleNamespace

import pytest
import torch
from conftest import make_args, params_of
from test_nonfinite import RecordWeights, build, poison_forward
from transformers import TrainerControl

from hf_l2mt.core.nonfinite import SKIPPED_METRIC, NonFiniteLossError
from hf_l2mt.core.preemption import PreemptionCallback

FUSED = {"optim": "adamw_torch_fused", "save_strategy": "no", "logging_steps": 100}


def reads_of(trainer) -> list[int]:
    """The updates after which the host read the device's verdicts (a check with something pending)."""
    reads, check = [], trainer.nonfinite.check

    def recording_check():
        if trainer.nonfinite._pending:
            reads.append(trainer.state.global_step + 1 if trainer.model.training else trainer.state.global_step)
        check()

    trainer.nonfinite.check = recording_check
    return reads


@pytest.mark.parametrize("l2sp_mode, accumulation", [("coupled", 1), ("decoupled", 1), ("coupled", 2)])
def test_skip_on_the_device_ends_with_the_weights_of_a_check_every_update(tmp_path, l2sp_mode, accumulation):
    finals, skipped = {}, {}
    for every in (1, 4):
        trainer = build(tmp_path / str(every), nonfinite_loss="skip", host_check_steps=every, l2sp_mode=l2sp_mode,
                        gradient_accumulation_steps=accumulation, per_device_train_batch_size=4 // accumulation,
                        **{**FUSED, "logging_steps": 3})
        poison_forward(trainer, bad_calls={2 * accumulation + 1})  # the first micro-batch of update 3
        trainer.train()
        finals[every] = params_of(trainer.model)
        skipped[every] = [row[SKIPPED_METRIC] for row in trainer.state.log_history if SKIPPED_METRIC in row]
        steps = {int(state["step"]) for state in trainer.optimizer.state.values()}
        assert steps == {5}  # 6 updates, one skipped: the optimizer's step count did not move in it
    for name, value in finals[1].items():
        assert torch.equal(finals[4][name], value), f"{name} differs from the run checked every update"
    assert skipped[1] == skipped[4] == [1, 1]


def test_stop_keeps_skipping_until_the_read_and_leaves_the_weights_before_the_bad_update(tmp_path):
    record = RecordWeights()
    trainer = build(tmp_path, callbacks=[record], host_check_steps=4, **FUSED)
    poison_forward(trainer, bad_calls={3})
    reads = reads_of(trainer)
    with pytest.raises(NonFiniteLossError, match=r"^step 3: the training loss is nan \(the update was not applied, "
                                                  r"nor the 1 after it before this check\); training stopped"):
        trainer.train()
    assert reads == [4]  # no read in updates 1 to 3
    assert sorted(record.after) == [1, 2, 3]  # update 4 raised before its optimizer step
    for name, before in record.after[2].items():
        assert torch.equal(trainer.model.get_parameter(name).detach(), before), f"{name} moved after update 2"
    assert {int(state["step"]) for state in trainer.optimizer.state.values()} == {2}


def test_the_host_reads_every_n_updates_and_at_the_last(tmp_path):
    trainer = build(tmp_path, host_check_steps=4, max_steps=10, **FUSED)
    reads = reads_of(trainer)
    trainer.train()
    assert reads == [4, 8, 10]


@pytest.mark.parametrize(
    "overrides, named",
    [
        ({"optim": "adamw_torch"}, r"optim='adamw_torch' \(AdamW without found_inf"),
        ({"optim": "adamw_torch_fused", "l1_lambda": 0.01}, r"l1_lambda=0.01 \(its soft threshold"),
        ({"optim": "sgd", "weight_decay": 0.1}, r"optim='sgd'.*decoupled weight decay with SGD"),
    ],
)
def test_settings_that_cannot_skip_on_the_device_are_refused_by_name(tmp_path, overrides, named):
    trainer = build(tmp_path, host_check_steps=2, **{"save_strategy": "no", **overrides})
    with pytest.raises(ValueError, match=rf"^host_check_steps=2: a NaN or infinite update is then skipped on the "
                                         rf"device, which these settings do not allow: .*{named}"):
        trainer.train()


@pytest.mark.parametrize("value", [0, -1, 1.5, True])
def test_host_check_steps_is_validated(tmp_path, value):
    with pytest.raises(ValueError, match=r"host_check_steps: got .*; accepted: an integer >= 1"):
        make_args(tmp_path, host_check_steps=value)


def test_processes_agree_on_a_stop_signal_every_n_updates_and_at_the_last():
    asked = []
    callback = PreemptionCallback(lambda value: asked.append(value) or value, every=3)
    callback.received = 15  # a signal arrived in update 1
    stops = []
    for step in range(1, 8):
        control = callback.on_step_end(None, SimpleNamespace(global_step=step, max_steps=7), TrainerControl())
        if control.should_training_stop:
            stops.append(step)
    assert asked == [15]  # one agreement, after update 3, not one per update
    assert stops == [3] and callback.stopped_at == 3
    quiet = PreemptionCallback(lambda value: asked.append(value) or value, every=3)
    asked.clear()
    for step in range(1, 8):
        quiet.on_step_end(None, SimpleNamespace(global_step=step, max_steps=7), TrainerControl())
    assert asked == [0, 0, 0]  # after updates 3, 6 and the last, 7
