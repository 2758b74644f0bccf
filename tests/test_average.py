"""``hf-l2mt average``: the averaged weights are the mean of the last N complete checkpoints, computed by hand."""

import os
import shutil

import pytest
import torch
from conftest import make_args, marian, task_dataset, train_with
from safetensors.torch import load_file, save_file
from transformers import MarianMTModel

from hf_l2mt.apps.weights.average import AverageError, AverageSettings, average_checkpoints
from hf_l2mt.apps.cli import main as cli_main
from hf_l2mt.core.averaging import CheckpointShapeError, average_state_dicts


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A tiny Marian (attention key biases frozen) trained 8 steps, saving checkpoint-2, -4, -6 and -8."""
    output = tmp_path_factory.mktemp("run")
    args = make_args(output, max_steps=8, save_strategy="steps", save_steps=2, l2sp_lambda=0.1)
    train_with(marian(), task_dataset(32), args)
    return str(output)


def copy_run(run_dir, tmp_path) -> str:
    target = tmp_path / "run"
    shutil.copytree(run_dir, target)
    return str(target)


def test_average_is_the_mean_of_the_last_n_checkpoints(run_dir, tmp_path):
    target, used = average_checkpoints(AverageSettings(run_dir=run_dir, last=3, output_dir=str(tmp_path / "avg")))
    assert [os.path.basename(path) for path in used] == ["checkpoint-4", "checkpoint-6", "checkpoint-8"]
    saved = [load_file(os.path.join(path, "model.safetensors")) for path in used]
    averaged = MarianMTModel.from_pretrained(target)
    weights = averaged.state_dict()
    for name in saved[0]:
        by_hand = (saved[0][name].double() + saved[1][name].double() + saved[2][name].double()) / 3
        torch.testing.assert_close(weights[name], by_hand.float(), rtol=0, atol=0)
    changed = [name for name in saved[0] if not torch.equal(saved[0][name], saved[2][name])]
    assert changed, "the checkpoints should differ, or the mean is not tested"
    # Frozen weights did not move, so their mean is the weight itself, bit for bit.
    # (Sinusoidal position tables are frozen too but never saved: the model rebuilds them.)
    frozen = [name for name, param in marian().named_parameters() if not param.requires_grad and name in saved[2]]
    assert any(name.endswith("k_proj.bias") for name in frozen)
    for name in frozen:
        assert torch.equal(weights[name], saved[2][name])
    # Tied weights stay one tensor.
    assert averaged.lm_head.weight.data_ptr() == averaged.model.shared.weight.data_ptr()
    assert os.path.isfile(os.path.join(target, "config.json"))


def test_incomplete_checkpoint_is_skipped(run_dir, tmp_path):
    run = copy_run(run_dir, tmp_path)
    os.remove(os.path.join(run, "checkpoint-8", "trainer_state.json"))
    _, used = average_checkpoints(AverageSettings(run_dir=run, last=2))
    assert [os.path.basename(path) for path in used] == ["checkpoint-4", "checkpoint-6"]


def test_refuses_checkpoints_of_different_shapes(run_dir, tmp_path):
    run = copy_run(run_dir, tmp_path)
    path = os.path.join(run, "checkpoint-6", "model.safetensors")
    weights = load_file(path)
    weights["model.shared.weight"] = weights["model.shared.weight"][:, :8].contiguous()
    save_file(weights, path, metadata={"format": "pt"})
    expected = r"'model.shared.weight' has shape \(24, 16\) in checkpoint-8 but \(24, 8\) in checkpoint-6"
    with pytest.raises(CheckpointShapeError, match=expected):
        average_checkpoints(AverageSettings(run_dir=run, last=2))


def test_integer_buffers_must_agree():
    one, two = {"ids": torch.tensor([1, 2])}, {"ids": torch.tensor([1, 3])}
    assert torch.equal(average_state_dicts([one, one], ["a", "b"])["ids"], one["ids"])
    with pytest.raises(CheckpointShapeError, match="'ids' is an integer tensor that differs between a and b"):
        average_state_dicts([one, two], ["a", "b"])


def test_too_few_checkpoints_and_existing_output(run_dir, tmp_path):
    with pytest.raises(AverageError, match="--last 9: .* holds 4 complete checkpoint-\\* folder\\(s\\); accepted: "
                       "--last between 1 and 4"):
        average_checkpoints(AverageSettings(run_dir=run_dir, last=9, output_dir=str(tmp_path / "x")))
    (tmp_path / "taken").mkdir()
    with pytest.raises(AverageError, match="exists; pass --overwrite"):
        average_checkpoints(AverageSettings(run_dir=run_dir, last=2, output_dir=str(tmp_path / "taken")))


def test_cli_average(run_dir, tmp_path, capsys):
    output = tmp_path / "avg"
    cli_main(["average", run_dir, "--last", "2", "--output_dir", str(output)])
    assert "averaged 2 checkpoints (checkpoint-6, checkpoint-8)" in capsys.readouterr().out
    assert os.path.isfile(output / "model.safetensors")
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["average", run_dir, "--last", "0"])
    assert exit_info.value.code == 2
    assert "--last: got 0; accepted: an integer >= 1" in capsys.readouterr().err
