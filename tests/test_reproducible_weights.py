"""One command run twice, each time in a fresh process, writes the same weights, bit for bit, on every path that
makes weights: LoRA's adapters, a weight the starting checkpoint lacks, the average of a run's checkpoints, and the
models ``hf-l2mt interpolate`` and ``hf-l2mt merge`` write.

torch seeds a fresh process from the operating system, so a weight drawn before anything seeds differs from run
to run. The demo, which builds its models from a config, is checked by ``tests/test_demo_reproducible.py``.
"""

import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file, save_file

from tiny_checkpoints import save_checkpoint, sentence_pairs, write_tsv

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# A weight removed from the starting checkpoint: from_pretrained draws it at random.
DROPPED = "model.encoder.layers.0.fc1.weight"
FLAGS = [
    "--max_steps", "3", "--per_device_train_batch_size", "4", "--learning_rate", "1e-2", "--warmup_steps", "0",
    "--eval_strategy", "no", "--logging_steps", "1", "--generation_num_beams", "1", "--generation_max_length", "8",
    "--max_source_length", "16", "--max_target_length", "16", "--max_eval_samples", "2", "--use_cpu",
    "--disable_tqdm", "true", "--dataloader_num_workers", "0", "--report_to", "none", "--seed", "0",
]


def hf_l2mt(*argv) -> None:
    """``hf-l2mt ARGV`` in a new interpreter, as a user runs it."""
    result = subprocess.run([sys.executable, "-m", "hf_l2mt.apps.cli", *map(str, argv)], capture_output=True,
                            text=True, env={**os.environ, "PYTHONPATH": ROOT}, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]


def assert_same_weights(first, second) -> dict:
    a, b = load_file(first), load_file(second)
    assert a.keys() == b.keys()
    different = [name for name in a if not torch.equal(a[name], b[name])]
    assert not different, f"{len(different)} of {len(a)} tensors differ, e.g. {different[0]}"
    return a


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("inputs")
    base = save_checkpoint(root / "base", "marian")
    weights = load_file(os.path.join(base, "model.safetensors"))
    lacking = save_checkpoint(root / "lacking", "marian")
    save_file({name: tensor for name, tensor in weights.items() if name != DROPPED},
              os.path.join(lacking, "model.safetensors"), metadata={"format": "pt"})
    train = write_tsv(root / "train.tsv", sentence_pairs(24, seed=0))
    return {"base": base, "lacking": lacking, "train": train}


def train_twice(inputs, tmp_path, base, *flags) -> list:
    runs = [tmp_path / "first", tmp_path / "second"]
    for run in runs:
        hf_l2mt("train", "en_de", "--model_name_or_path", base, "--train_source", inputs["train"],
                "--eval_sources", f"general={inputs['train']}", *FLAGS, "--output_dir", run, *flags)
    return runs


def test_lora_adapters_are_the_same_in_two_processes(inputs, tmp_path):
    first, second = train_twice(inputs, tmp_path, inputs["base"], "--adapter", "lora", "--l2sp_lambda", "0")
    adapters = assert_same_weights(first / "adapter_model.safetensors", second / "adapter_model.safetensors")
    assert any(".lora_A." in name for name in adapters)
    assert all(tensor.abs().sum() > 0 for name, tensor in adapters.items() if ".lora_B." in name), "B never trained"


def test_full_fine_tune_from_a_checkpoint_lacking_a_weight_and_its_averages_are_the_same(inputs, tmp_path):
    first, second = train_twice(inputs, tmp_path, inputs["lacking"], "--save_strategy", "steps", "--save_steps", "1",
                                "--save_total_limit", "3", "--average_last_checkpoints", "2")
    model = assert_same_weights(first / "model.safetensors", second / "model.safetensors")  # the mean of 2 and 3
    assert DROPPED in model
    assert_same_weights(first / "last" / "model.safetensors", second / "last" / "model.safetensors")
    for run in (first, second):
        hf_l2mt("average", run, "--last", "3")
    assert_same_weights(first / "average-last-3" / "model.safetensors", second / "average-last-3" / "model.safetensors")


def shifted_copy(base, path, seed) -> str:
    """``base`` with every weight moved by seeded noise: a stand-in for a fine-tune of it."""
    save_checkpoint(path, "marian")
    generator = torch.Generator().manual_seed(seed)
    weights = load_file(os.path.join(base, "model.safetensors"))
    moved = {name: t + 0.1 * torch.randn(t.shape, generator=generator, dtype=t.dtype) for name, t in weights.items()}
    save_file(moved, os.path.join(path, "model.safetensors"), metadata={"format": "pt"})
    return str(path)


def test_interpolated_and_merged_models_are_the_same_in_two_processes(inputs, tmp_path):
    tuned = [shifted_copy(inputs["base"], tmp_path / f"tuned{seed}", seed) for seed in (1, 2)]
    for attempt in ("first", "second"):
        hf_l2mt("interpolate", tuned[0], "--base", inputs["base"], "--alpha", "0.3", "0.7",
                "--output_dir", tmp_path / attempt / "interpolated")
        hf_l2mt("merge", *tuned, "--base", inputs["base"], "--method", "ties", "--output_dir", tmp_path / attempt / "ties")
    written = ["interpolated/alpha-0.3", "interpolated/alpha-0.7", "ties"]
    for folder in written:
        model = assert_same_weights(tmp_path / "first" / folder / "model.safetensors",
                                    tmp_path / "second" / folder / "model.safetensors")
        assert not torch.equal(model["model.shared.weight"],
                               load_file(os.path.join(inputs["base"], "model.safetensors"))["model.shared.weight"])
