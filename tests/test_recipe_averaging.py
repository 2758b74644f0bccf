"""``average_last_checkpoints``: the final model is the mean of the last N checkpoints, scored and carded as such."""

import json
import os

import pytest
import torch
from safetensors.torch import load_file
from test_recipes import TINY
from tiny_checkpoints import save_checkpoint, sentence_pairs, write_tsv

import hf_l2mt.apps.recipes.runner
from hf_l2mt.apps.recipes import en_de
from hf_l2mt.evaluation.translate import translate


def with_flag(argv, flag, value):
    """``argv`` with ``flag`` set to ``value``, whether TINY sets it or not."""
    if flag in argv:
        index = argv.index(flag)
        return [*argv[:index + 1], value, *argv[index + 2:]]
    return [*argv, flag, value]


@pytest.fixture(scope="module")
def marian_dir(tmp_path_factory):
    return save_checkpoint(tmp_path_factory.mktemp("opus-mt-tiny"), "marian")


@pytest.fixture
def argv(tmp_path, marian_dir):
    train = write_tsv(tmp_path / "train.tsv", sentence_pairs(40, seed=0))
    general = write_tsv(tmp_path / "general.tsv", sentence_pairs(6, seed=1))
    settings = with_flag(with_flag(TINY, "--max_steps", "6"), "--save_strategy", "steps")
    return ["--model_name_or_path", marian_dir, "--train_source", train, "--eval_holdout", "4",
            "--eval_sources", f"general={general}", *settings, "--save_steps", "2",
            "--output_dir", str(tmp_path / "run")]


def test_final_model_is_the_mean_of_the_last_checkpoints(argv, tmp_path, monkeypatch):
    translated_with = []

    def recording_translate(texts, model, *args, **kwargs):
        translated_with.append({name: tensor.clone() for name, tensor in model.state_dict().items()})
        return translate(texts, model, *args, **kwargs)

    monkeypatch.setattr(hf_l2mt.apps.recipes.runner, "translate", recording_translate)
    scores = en_de.main([*argv, "--average_last_checkpoints", "2"])

    out = tmp_path / "run"
    four, six = (load_file(out / f"checkpoint-{step}" / "model.safetensors") for step in (4, 6))
    final, last = load_file(out / "model.safetensors"), load_file(out / "last" / "model.safetensors")
    assert any(not four[name].equal(six[name]) for name in six), "the checkpoints should differ"
    for name in six:
        by_hand = ((four[name].double() + six[name].double()) / 2).to(six[name].dtype)
        assert torch.equal(final[name], by_hand), name
        # The run ends at update 6: the unaveraged model kept in last/ is that of checkpoint-6.
        assert torch.equal(last[name], six[name]), name
    # The final translations (scores, forgetting report) are made with the averaged weights.
    assert len(translated_with) >= 2
    for weights in translated_with[:2]:
        for name in six:
            assert torch.equal(weights[name].cpu(), final[name]), name
    card = (out / "README.md").read_text(encoding="utf-8")
    assert ("mean of the weights of the last 2 checkpoints of the run (checkpoint-4, checkpoint-6; "
            "`average_last_checkpoints=2`)") in card
    assert "The model of the last update, not averaged, is in `last/`." in card
    assert json.loads((out / "scores.json").read_text(encoding="utf-8")) == scores
    assert os.path.isfile(out / "forgetting_report.json")
    assert os.path.isfile(out / "last" / "tokenizer_config.json")


@pytest.mark.parametrize("extra, message", [
    (["--save_strategy", "no"], ("average_last_checkpoints: got 2, but save_strategy is 'no', so the run writes "
                                 "no checkpoint; accepted: save_strategy 'steps' or 'epoch', or "
                                 "average_last_checkpoints 0")),
    (["--save_total_limit", "1"], ("average_last_checkpoints: got 2, but save_total_limit=1 keeps fewer checkpoints; "
                                   "accepted: save_total_limit >= 2, or average_last_checkpoints <= 1")),
    (["--average_last_checkpoints", "-1"], "average_last_checkpoints: got -1; accepted: an integer >= 0"),
])
def test_averaging_the_run_cannot_give_is_refused_before_training(argv, tmp_path, capsys, extra, message):
    with pytest.raises(SystemExit) as exit_info:
        en_de.main([*argv, "--average_last_checkpoints", "2", *extra])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "run" / "checkpoint-2")
