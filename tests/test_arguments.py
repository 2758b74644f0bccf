"""Bad values raise an error naming the field, the value and what is accepted."""

import math

import pytest
from transformers import HfArgumentParser

from conftest import make_args, task_dataset, tiny_marian, train_with
from hf_l2mt import L2MTTrainingArguments
from hf_l2mt.core.preflight import check_warmups
from hf_l2mt.core.schedules import SCHEDULED_TERMS
from hf_l2mt.core.training_args import added_fields

BAD = [
    ("l2sp_lambda", -0.1, r"l2sp_lambda: got -0.1; accepted: a finite number >= 0"),
    ("l2sp_lambda", math.nan, r"l2sp_lambda: got nan; accepted: a finite number >= 0"),
    ("l2sp_lambda", math.inf, r"l2sp_lambda: got inf; accepted"),
    ("weight_decay", -1.0, r"weight_decay: got -1.0; accepted: a finite number >= 0"),
    ("weight_decay_mode", "adamw", r"weight_decay_mode: got 'adamw'; accepted: 'decoupled', 'coupled'"),
    ("l2sp_mode", "both", r"l2sp_mode: got 'both'; accepted: 'decoupled', 'coupled'"),
    ("l2sp_schedule", "exponential", r"l2sp_schedule: got 'exponential'; accepted: 'constant', 'linear', 'cosine', 'sigmoid'"),
    ("weight_decay_schedule", "step", r"weight_decay_schedule: got 'step'; accepted"),
    ("anchor_dtype", "float16", r"anchor_dtype: got 'float16'; accepted: 'float32', 'bfloat16'"),
    ("l2sp_warmup_steps", -3, r"l2sp_warmup_steps: got -3; accepted: an integer >= 0"),
    ("l2sp_sigmoid_k", 0.0, r"l2sp_sigmoid_k: got 0.0; accepted: a finite number > 0"),
    ("l2sp_include_regex", "decoder[", r"l2sp_include_regex: 'decoder\[' is not a valid regular expression"),
    ("l2sp_overrides", ["encoder"], r"l2sp_overrides: entry 'encoder' is not of the form REGEX=VALUE"),
    ("l2sp_overrides", ["encoder=-2"], r"l2sp_overrides: got '-2' in 'encoder=-2'; accepted: a finite number >= 0"),
    ("weight_decay_overrides", ["(=0.1"], r"weight_decay_overrides: '\(' is not a valid regular expression"),
]


@pytest.mark.parametrize("field, value, message", BAD, ids=[f"{f}={v}" for f, v, _ in BAD])
def test_bad_value_is_rejected_with_field_value_and_accepted(tmp_path, field, value, message):
    with pytest.raises(ValueError, match=message):
        make_args(tmp_path, **{field: value})


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("l2sp_overrides", [r"^encoderr\.=1.0"], r"l2sp_overrides: regex '\^encoderr\\\\.' matches no trainable parameter of MarianMTModel; names look like: model.shared.weight"),
        ("weight_decay_overrides", [r"layer_norm=0.5"], r"weight_decay_overrides: regex 'layer_norm' matches no trainable decayed \(not bias/norm\) parameter"),
        ("l2sp_include_regex", "nothing_like_this", r"l2sp_include_regex: regex 'nothing_like_this' matches no trainable parameter"),
    ],
)
def test_regex_that_matches_nothing_is_an_error(tmp_path, field, value, message):
    with pytest.raises(ValueError, match=message):
        train_with(tiny_marian(), task_dataset(4), make_args(tmp_path, max_steps=1, l2sp_lambda=0.1, **{field: value}))


def test_trainer_refuses_plain_training_arguments(tmp_path):
    from transformers import Seq2SeqTrainingArguments

    from hf_l2mt import L2MTTrainer

    with pytest.raises(TypeError, match="args: L2MTTrainer needs L2MTTrainingArguments, got Seq2SeqTrainingArguments"):
        L2MTTrainer(model=tiny_marian(), args=Seq2SeqTrainingArguments(output_dir=str(tmp_path), report_to=[]))


def test_arguments_parse_from_the_command_line():
    from transformers import HfArgumentParser

    from hf_l2mt import L2MTTrainingArguments

    (args,) = HfArgumentParser(L2MTTrainingArguments).parse_args_into_dataclasses([
        "--output_dir", "out", "--l2sp_lambda", "0.1", "--l2sp_mode", "decoupled", "--l2sp_schedule", "sigmoid",
        "--l2sp_overrides", r"encoder\.=1.0", r"decoder\.=0.2", "--weight_decay_mode", "coupled", "--report_to", "none",
    ])
    assert (args.l2sp_lambda, args.l2sp_mode, args.l2sp_schedule) == (0.1, "decoupled", "sigmoid")
    assert args.l2sp_overrides == [r"encoder\.=1.0", r"decoder\.=0.2"] and args.weight_decay_mode == "coupled"


STRENGTH = {"weight_decay": ("weight_decay", 0.01), "l2sp": ("l2sp_lambda", 0.1), "kl": ("kl_lambda", 0.1)}


@pytest.mark.parametrize("term", SCHEDULED_TERMS)
def test_every_scheduled_term_in_use_must_warm_up_before_the_run_ends(tmp_path, term):
    flag, strength = STRENGTH[term]
    args = make_args(tmp_path, **{flag: strength, f"{term}_warmup_steps": 4})
    with pytest.raises(ValueError, match=rf"{term}_warmup_steps: got 4, but the run has 3 updates.*fewer than 3"):
        check_warmups(args, 3)
    check_warmups(args, 5)
    # A term that is off is not checked: its warmup changes nothing.
    check_warmups(make_args(tmp_path, **{flag: 0.0, f"{term}_warmup_steps": 4}), 3)


def test_help_lists_the_choices_that_post_init_accepts(tmp_path):
    parser = HfArgumentParser(L2MTTrainingArguments)
    help_text = " ".join(parser.format_help().split())
    for option in added_fields(L2MTTrainingArguments):
        if "choices" in option.metadata:
            assert f"--{option.name} {{{','.join(option.metadata['choices'])}}}" in help_text
            for choice in option.metadata["choices"]:
                make_args(tmp_path, **{option.name: choice})
    assert "--l2sp_fisher_normalize {mean,none}" in help_text
    assert "--kl_schedule {constant,linear,cosine,sigmoid}" in help_text
    with pytest.raises(SystemExit):
        parser.parse_args_into_dataclasses(["--output_dir", str(tmp_path), "--l1_target", "middle"])
