"""A run resumed from a mid-run checkpoint ends where the uninterrupted run ends, anchor included."""

import os

import pytest
import torch
from safetensors.torch import load_file
from transformers import MarianMTModel

from conftest import PadCollator, StopAfter, assert_same_params, make_args, params_of, task_dataset, tiny_marian, train_with
from hf_l2mt import L2MTTrainer
from hf_l2mt.core.anchor import ANCHOR_FILE, AnchorError
from hf_l2mt.core.checkpoints import IncompleteCheckpointError

SETTINGS = dict(
    max_steps=6, save_strategy="steps", save_steps=3, lr_scheduler_type="linear", l2sp_lambda=0.5,
    l2sp_schedule="cosine", weight_decay=0.05, max_grad_norm=1.0,
)


@pytest.fixture
def base_dir(tmp_path):
    """A 'pretrained' checkpoint on disk, as a user's would be."""
    path = tmp_path / "base"
    tiny_marian(seed=7).save_pretrained(path)
    return path


def from_pretrained(path):
    return MarianMTModel.from_pretrained(path)


def test_fixed_position_tables_from_pretrained_are_frozen(base_dir, tmp_path):
    model = from_pretrained(base_dir)
    table = model.model.encoder.embed_positions.weight
    assert table.requires_grad  # transformers leaves it trainable after from_pretrained
    before = table.detach().clone()
    trainer = train_with(model, task_dataset(8), make_args(tmp_path / "run", max_steps=2, l2sp_lambda=0.1))
    assert not table.requires_grad and torch.equal(table, before)
    assert "model.encoder.embed_positions.weight" in trainer.frozen_position_tables
    assert "model.encoder.embed_positions.weight" not in trainer.anchor


@pytest.mark.parametrize("resume_model", ["base", "checkpoint"])
def test_resumed_run_equals_uninterrupted_run(base_dir, tmp_path, resume_model):
    data = task_dataset(16, seed=5)
    uninterrupted = from_pretrained(base_dir)
    train_with(uninterrupted, data, make_args(tmp_path / "full", **SETTINGS))

    first = train_with(from_pretrained(base_dir), data, make_args(tmp_path / "run", **SETTINGS))
    checkpoint = tmp_path / "run" / "checkpoint-3"
    assert (checkpoint / ANCHOR_FILE).is_file()

    # A new process would build a fresh model: from the base, or from the checkpoint folder itself.
    model = from_pretrained(base_dir if resume_model == "base" else checkpoint)
    resumed = train_with(model, data, make_args(tmp_path / "run", **SETTINGS), resume_from_checkpoint=str(checkpoint))

    assert_same_params(params_of(model), params_of(uninterrupted))
    base = params_of(from_pretrained(base_dir))
    for name, tensor in resumed.anchor.items():
        assert torch.equal(tensor, base[name]), f"anchor of {name} was not restored from the checkpoint"
    # The schedule continued from update 3: the logs of updates 4..6 match the first run's.
    tail = lambda trainer: [row["l2sp_lambda"] for row in trainer.state.log_history if "l2sp_lambda" in row][-3:]  # noqa: E731
    assert tail(resumed) == pytest.approx(tail(first))


def test_resume_true_takes_the_latest_checkpoint(base_dir, tmp_path):
    data = task_dataset(16, seed=5)
    uninterrupted = from_pretrained(base_dir)
    train_with(uninterrupted, data, make_args(tmp_path / "full", **SETTINGS))
    interrupted = L2MTTrainer(model=from_pretrained(base_dir), args=make_args(tmp_path / "run", **SETTINGS),
                              train_dataset=data, data_collator=PadCollator(), callbacks=[StopAfter(3)])
    interrupted.train()
    assert sorted(os.listdir(tmp_path / "run")) == ["checkpoint-3"]
    model = from_pretrained(base_dir)
    train_with(model, data, make_args(tmp_path / "run", **SETTINGS), resume_from_checkpoint=True)
    assert_same_params(params_of(model), params_of(uninterrupted))


def test_anchor_file_is_safetensors_with_one_entry_per_parameter(base_dir, tmp_path):
    model = from_pretrained(base_dir)
    train_with(model, task_dataset(8), make_args(tmp_path / "run", **{**SETTINGS, "max_steps": 3}))
    stored = load_file(tmp_path / "run" / "checkpoint-3" / ANCHOR_FILE)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert set(stored) == trainable
    # Marian ties lm_head to the shared embedding: one parameter, stored once.
    assert model.lm_head.weight is model.model.shared.weight and "lm_head.weight" not in stored


def test_resume_from_checkpoint_without_anchor_is_refused(base_dir, tmp_path):
    data = task_dataset(8)
    train_with(from_pretrained(base_dir), data, make_args(tmp_path / "run", **{**SETTINGS, "max_steps": 3}))
    checkpoint = tmp_path / "run" / "checkpoint-3"
    os.remove(checkpoint / ANCHOR_FILE)
    with pytest.raises(IncompleteCheckpointError, match=rf"checkpoint-3.*has no {ANCHOR_FILE}"):
        train_with(from_pretrained(base_dir), data, make_args(tmp_path / "run", **SETTINGS), resume_from_checkpoint=str(checkpoint))


def test_resume_with_anchor_of_another_shape_is_refused(base_dir, tmp_path):
    data = task_dataset(8)
    train_with(from_pretrained(base_dir), data, make_args(tmp_path / "run", **{**SETTINGS, "max_steps": 3}))
    checkpoint = tmp_path / "run" / "checkpoint-3"
    stored = load_file(checkpoint / ANCHOR_FILE)
    stored["model.shared.weight"] = torch.zeros(3, 3)
    from safetensors.torch import save_file

    save_file(stored, checkpoint / ANCHOR_FILE)
    with pytest.raises(AnchorError, match=r"anchor of 'model.shared.weight' has shape \(3, 3\)"):
        train_with(from_pretrained(base_dir), data, make_args(tmp_path / "run", **SETTINGS), resume_from_checkpoint=str(checkpoint))
