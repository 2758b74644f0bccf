"""``interpolate_after``: a recipe run ends with the models between its start and its end, scored on its sets."""

import json
import os

import pytest
import torch
from safetensors.torch import load_file
from test_recipes import TINY
from tiny_checkpoints import save_checkpoint, sentence_pairs, write_tsv

from hf_l2mt.apps.cli import main as cli_main
from hf_l2mt.apps.recipes import en_de
from hf_l2mt.evaluation import translation_cache


@pytest.fixture
def argv(tmp_path):
    base = save_checkpoint(tmp_path / "opus-mt-tiny", "marian")
    train = write_tsv(tmp_path / "train.tsv", sentence_pairs(24, seed=0))
    general = write_tsv(tmp_path / "general.tsv", sentence_pairs(4, seed=1))
    return ["--model_name_or_path", base, "--train_source", train, "--eval_holdout", "4",
            "--eval_sources", f"general={general}", *TINY, "--output_dir", str(tmp_path / "run")]


def test_a_run_ends_with_its_interpolated_models_and_their_scores(argv, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_L2MT_CACHE", str(tmp_path / "cache"))
    en_de.main([*argv, "--interpolate_after", "0.5"])
    root = tmp_path / "run" / "interpolated"
    start = load_file(tmp_path / "opus-mt-tiny" / "model.safetensors")
    end = load_file(tmp_path / "run" / "model.safetensors")
    half = load_file(root / "alpha-0.5" / "model.safetensors")
    assert load_file(root / "base" / "model.safetensors").keys() == start.keys()
    for name, tensor in half.items():
        # Both round the exact mean once to float32 (one ulp apart at most where exponents differ by more than 29).
        torch.testing.assert_close(tensor, start[name] / 2 + end[name] / 2, rtol=2.0 ** -23, atol=0)
    scores = json.loads((root / "interpolation_scores.json").read_text())
    assert [row["alpha"] for row in scores["rows"]] == [0.0, 0.5, 1.0]
    assert scores["report"]["general_sets"] == ["general"]
    assert os.path.isfile(root / "base" / "tokenizer_config.json")

    # A budget afterwards, with the run's generation settings: the alpha folder is kept and nothing is translated.
    def no_translation(*args, **kwargs):
        raise AssertionError("translated again: the cache missed")

    monkeypatch.setattr(translation_cache, "translate", no_translation)
    cli_main(["interpolate", str(tmp_path / "run"), "--base", str(root / "base"), "--alpha", "0.5",
              "--max_general_drop", "100", "--batch_size", "8", "--num_beams", "1", "--max_new_tokens", "10"])
    assert (root / "chosen.json").is_file()


def test_interpolate_after_out_of_range_is_refused_before_training(argv, tmp_path, capsys):
    with pytest.raises(SystemExit) as raised:
        en_de.main([*argv, "--interpolate_after", "2"])
    assert raised.value.code == 2
    assert "interpolate_after: got 2.0; accepted: numbers from 0 (the base) to 1 (the fine-tune)" in capsys.readouterr().err
    assert not (tmp_path / "run" / "model.safetensors").exists()
