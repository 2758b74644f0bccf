"""What the regularizers do to a run: groups, logged metrics, strong anchoring, learning."""

import logging

import pytest
import torch

from conftest import logged_sum_rtol, make_args, marian, params_of, task_dataset, tiny_marian, tiny_t5, T5_PAD, train_with
from hf_l2mt import L2MTTrainer
from hf_l2mt.core.trainer import optimizer as trainer_optimizer
from hf_l2mt.core.param_groups import build_param_groups


def groups_of(model, tmp_path, **kwargs):
    trainer = L2MTTrainer(model=model, args=make_args(tmp_path, **kwargs), train_dataset=task_dataset(4))
    return {g.name: g for g in build_param_groups(model, trainer.args, trainer.get_decay_parameter_names(model))}


def test_default_groups_follow_transformers_split(tmp_path):
    groups = groups_of(tiny_t5(), tmp_path, weight_decay=0.1, l2sp_lambda=0.2)
    assert set(groups) == {"decay", "no_decay"}
    # T5 has no linear biases: no_decay holds its layer norms and, by transformers' name rule, the
    # relative_attention_bias table.
    assert all("layer_norm" in n or "relative_attention_bias" in n for n in groups["no_decay"].names)
    assert any(n.endswith("final_layer_norm.weight") for n in groups["no_decay"].names)
    assert "shared.weight" in groups["decay"].names
    assert groups["decay"].weight_decay == 0.1 and groups["no_decay"].weight_decay == 0.0
    assert groups["decay"].l2sp_lambda == groups["no_decay"].l2sp_lambda == 0.2


def test_decay_embeddings_off_moves_embeddings_to_no_decay(tmp_path):
    groups = groups_of(tiny_marian(), tmp_path, weight_decay=0.1, decay_embeddings=False)
    assert "model.shared.weight" in groups["no_decay"].names


def test_overrides_give_groups_their_own_strengths(tmp_path):
    groups = groups_of(
        tiny_marian(), tmp_path, weight_decay=0.1, l2sp_lambda=0.2,
        weight_decay_overrides=[r"decoder\.=0.0"], l2sp_overrides=[r"encoder\.=1.5", r"decoder\.=0.05"],
    )
    enc = next(g for name, g in groups.items() if name.startswith("decay") and "encoder" in name)
    dec = next(g for name, g in groups.items() if name.startswith("decay[weight_decay"))
    assert enc.l2sp_lambda == 1.5 and enc.weight_decay == 0.1
    assert dec.weight_decay == 0.0 and dec.l2sp_lambda == 0.05
    assert all(n.startswith("model.decoder.") for n in dec.names)
    # Every trainable parameter is in exactly one group.
    names = [n for g in groups.values() for n in g.names]
    assert sorted(names) == sorted(n for n, p in tiny_marian().named_parameters() if p.requires_grad)


def test_include_regex_narrows_l2sp_and_the_anchor(tmp_path):
    model = tiny_marian()
    trainer = train_with(model, task_dataset(4), make_args(tmp_path, max_steps=1, l2sp_lambda=0.3, l2sp_include_regex=r"^model\.decoder\."))
    assert trainer.anchor and all(n.startswith("model.decoder.") for n in trainer.anchor)


def test_group_table_is_logged_at_start(tmp_path, caplog, monkeypatch):
    monkeypatch.setattr(trainer_optimizer, "LOGGED_GROUP_LAYOUTS", set())  # as in a fresh process
    with caplog.at_level(logging.INFO, logger="hf_l2mt"):
        train_with(tiny_marian(), task_dataset(4), make_args(tmp_path, max_steps=1, weight_decay=0.1, l2sp_lambda=0.2))
    table = next(r.getMessage() for r in caplog.records if "parameter groups" in r.getMessage())
    assert "group" in table and "tensors" in table and "weight_decay" in table and "l2sp_lambda" in table
    assert "decay" in table and "no_decay" in table and "total" in table


def test_group_table_is_logged_once_per_layout_in_a_process(tmp_path, caplog, monkeypatch):
    """The demo trains five copies of one model: one table, not five; another split of the parameters gets its own."""
    monkeypatch.setattr(trainer_optimizer, "LOGGED_GROUP_LAYOUTS", set())
    runs = [dict(l2sp_lambda=0.0), dict(l2sp_lambda=0.1), dict(l2sp_lambda=10.0), dict(l2sp_include_regex=r"decoder")]
    with caplog.at_level(logging.INFO, logger="hf_l2mt"):
        for index, settings in enumerate(runs):
            train_with(tiny_marian(), task_dataset(4), make_args(tmp_path / str(index), max_steps=1, **settings))
    tables = [r.getMessage() for r in caplog.records if r.getMessage().startswith("parameter groups")]
    assert len(tables) == 2
    assert "[no l2sp]" not in tables[0] and "[no l2sp]" in tables[1]


def test_logged_penalty_and_distance_count_tied_weights_once(tmp_path):
    model = marian()
    trainer = train_with(model, task_dataset(4), make_args(tmp_path, max_steps=3, l2sp_lambda=0.7))
    start = params_of(marian())
    unique = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert model.lm_head.weight is model.model.shared.weight and "lm_head.weight" not in unique
    sq = sum(float(((p.detach() - start[n]) ** 2).sum()) for n, p in unique.items())
    last = trainer.state.log_history[-2]
    # marian(): 40 trainable tensors, the largest of 512 elements; a difference and a square per term. The
    # square root halves that relative error and adds one rounding, which the λ/2's 2 roundings cover.
    rel = logged_sum_rtol(tensors=40, largest=512, roundings_per_term=2)
    assert last["l2sp_penalty"] == pytest.approx(0.7 / 2 * sq, rel=rel)
    assert last["l2sp_distance"] == pytest.approx(sq**0.5, rel=rel)
    assert last["l2sp_lambda"] == 0.7 and last["weight_decay"] == 0.0


@pytest.mark.parametrize("mode, lam", [("coupled", 1e4), ("decoupled", 100.0)])
def test_huge_lambda_keeps_weights_at_the_anchor(tmp_path, mode, lam):
    data, lr, steps = task_dataset(8), 1e-2, 40
    start = params_of(tiny_marian())
    distance = lambda m: sum(float(((p - start[n]) ** 2).sum()) for n, p in params_of(m).items()) ** 0.5  # noqa: E731
    free = tiny_marian()
    train_with(free, data, make_args(tmp_path / "free", max_steps=steps, learning_rate=lr))
    held = tiny_marian()
    # Decoupled with lr * lambda = 1 puts theta back on theta_0 before every update.
    train_with(held, data, make_args(tmp_path / "held", max_steps=steps, learning_rate=lr, l2sp_lambda=lam, l2sp_mode=mode))
    one_adam_step = lr * sum(p.numel() for p in held.parameters() if p.requires_grad) ** 0.5
    assert distance(free) > 5 * one_adam_step
    assert distance(held) < one_adam_step


@pytest.mark.parametrize("build, pad_id, eos", [(tiny_marian, 1, 0), (tiny_t5, T5_PAD, 1)])
def test_training_loss_falls_on_reversal_task(tmp_path, build, pad_id, eos):
    data = task_dataset(64, seed=2, task="reverse", eos=eos)
    trainer = train_with(build(), data, make_args(tmp_path, max_steps=60, per_device_train_batch_size=16,
                                                   learning_rate=3e-3, logging_steps=10, l2sp_lambda=0.01), pad_id=pad_id)
    losses = [row["loss"] for row in trainer.state.log_history if "loss" in row]
    assert losses[-1] < 0.7 * losses[0]


@pytest.mark.parametrize("mode", ["coupled", "decoupled"])
def test_bfloat16_anchor_is_the_rounded_start_and_regularizes(tmp_path, mode):
    data, lam = task_dataset(8), 5.0
    start = params_of(marian())
    trainer = train_with(marian(), data, make_args(tmp_path / "bf16", max_steps=5, l2sp_lambda=lam, l2sp_mode=mode,
                                                    anchor_dtype="bfloat16"))
    assert all(t.dtype == torch.bfloat16 for t in trainer.anchor.values())
    for name, tensor in trainer.anchor.items():
        assert torch.equal(tensor, start[name].to(torch.bfloat16))
    fp32, free = marian(), marian()
    train_with(fp32, data, make_args(tmp_path / "fp32", max_steps=5, l2sp_lambda=lam, l2sp_mode=mode))
    train_with(free, data, make_args(tmp_path / "free", max_steps=5))
    gap = lambda a, b: sum(float(((a[n] - b[n]) ** 2).sum()) for n in a) ** 0.5  # noqa: E731
    ours = params_of(trainer.model)
    # bfloat16 keeps 8 bits of mantissa: the run stays with the float32-anchored one, not the unregularized one.
    assert gap(ours, params_of(fp32)) < 0.2 * gap(ours, params_of(free))


def test_with_overrides_each_group_logs_the_strength_it_got(tmp_path):
    # Linear schedules over 3 updates: the last logged update (t = 2) used the factor 1 − 2/3.
    trainer = train_with(tiny_marian(), task_dataset(4), make_args(
        tmp_path, max_steps=3, weight_decay=0.1, l2sp_lambda=0.2, l2sp_schedule="linear", weight_decay_schedule="linear",
        weight_decay_overrides=[r"decoder\.=0.0"], l2sp_overrides=[r"encoder\.=1.5"], l2sp_include_regex="coder",
    ))
    last = trainer.state.log_history[-2]
    factor = 1 - 2 / 3
    expected_l2sp = {f"l2sp_lambda/{g.name}": g.l2sp_lambda * factor for g in trainer.regularized_groups}
    expected_wd = {f"weight_decay/{g.name}": g.weight_decay * factor for g in trainer.regularized_groups}
    assert {k: v for k, v in last.items() if k.startswith("l2sp_lambda/")} == pytest.approx(expected_l2sp)
    assert {k: v for k, v in last.items() if k.startswith("weight_decay/")} == pytest.approx(expected_wd)
    assert last["l2sp_lambda/decay[l2sp encoder\\.]"] == pytest.approx(1.5 * factor)
    assert last["weight_decay/decay[weight_decay decoder\\.]"] == 0.0
    # The plain keys keep meaning the base strength times its schedule.
    assert last["l2sp_lambda"] == pytest.approx(0.2 * factor) and last["weight_decay"] == pytest.approx(0.1 * factor)
    # Parameters outside l2sp_include_regex form groups of their own name, with λ = 0.
    assert {g.l2sp_lambda for g in trainer.regularized_groups if g.name.endswith("[no l2sp]")} == {0.0}
    assert len({g.name for g in trainer.regularized_groups}) == len(trainer.regularized_groups)


def test_without_overrides_no_per_group_strengths_are_logged(tmp_path):
    trainer = train_with(tiny_marian(), task_dataset(4), make_args(tmp_path, max_steps=2, l2sp_lambda=0.2))
    assert not [k for row in trainer.state.log_history for k in row if "/" in k]
