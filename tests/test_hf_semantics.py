"""With every regularizer off, L2MTTrainer updates any model exactly as transformers' Trainer /
Seq2SeqTrainer does: same loss path, same gradient accumulation, same optimizer groups."""

import os

import pytest
import torch
from torch import nn
from transformers import GPT2Config, GPT2LMHeadModel, Seq2SeqTrainer, Trainer
from transformers.modeling_outputs import SequenceClassifierOutput

from conftest import PAD, T5_PAD, VOCAB, PadCollator, make_args, params_of, task_pairs, tiny_marian, tiny_t5
from hf_l2mt import L2MTTrainer
from hf_l2mt.core.loss import token_cross_entropy

GA = dict(per_device_train_batch_size=2, gradient_accumulation_steps=2, max_steps=3)


class TupleRegression(nn.Module):
    """A model as transformers' own trainer tests write them: ``forward`` without ``**kwargs``, a plain tuple out."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.linear = nn.Linear(3, 1)

    def forward(self, input_x, labels=None):
        y = self.linear(input_x).squeeze(-1)
        return (y,) if labels is None else (nn.functional.mse_loss(y, labels), y)


class Classifier(nn.Module):
    """A classifier whose ``forward`` takes no ``**kwargs`` and computes no loss (``compute_loss_func`` does)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Embedding(VOCAB, 8)
        self.head = nn.Linear(8, 3)

    def forward(self, input_ids, attention_mask=None, labels=None):  # labels named so the Trainer keeps them
        return SequenceClassifierOutput(logits=self.head(self.embed(input_ids).mean(1)))


def summed_ce(outputs, labels, num_items_in_batch=None):
    return token_cross_entropy(outputs.logits, labels, num_items_in_batch)


def tiny_gpt2():
    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config(vocab_size=VOCAB, n_positions=32, n_embd=16, n_layer=1, n_head=2,
                                      resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, pad_token_id=PAD,
                                      bos_token_id=0, eos_token_id=0))


def regression_rows():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(12, 3, generator=g)
    return [{"input_x": row, "labels": float(row.sum() * 2 + 1)} for row in x]


def classifier_rows():
    return [{"input_ids": p["input_ids"][:3], "labels": p["input_ids"][0] % 3} for p in task_pairs(12, min_len=3)]


def causal_rows():
    return [{"input_ids": p["input_ids"], "labels": p["input_ids"]} for p in task_pairs(12, seed=1)]


def stack(features):
    return {k: torch.stack([torch.as_tensor(f[k]) for f in features]) for k in features[0]}


class CausalCollator:
    """Right-pads input_ids with PAD (mask 0) and labels with -100."""

    def __call__(self, features):
        width = max(len(f["input_ids"]) for f in features)
        pad = lambda seq, value: list(seq) + [value] * (width - len(seq))  # noqa: E731
        return {
            "input_ids": torch.tensor([pad(f["input_ids"], PAD) for f in features]),
            "attention_mask": torch.tensor([pad([1] * len(f["input_ids"]), 0) for f in features]),
            "labels": torch.tensor([pad(f["labels"], -100) for f in features]),
        }


class WithDecoderInputs:
    """PadCollator plus the model's decoder inputs, so a ``compute_loss_func`` that never sees labels can run it."""

    def __init__(self, model, pad_id):
        self.model, self.pad = model, PadCollator(pad_id)

    def __call__(self, features):
        batch = self.pad(features)
        batch["decoder_input_ids"] = self.model.prepare_decoder_input_ids_from_labels(labels=batch["labels"])
        return batch


# name: (model factory, rows, collator factory, reference trainer class, reference extra kwargs).
# Marian and T5 return a per-micro-batch mean loss, so transformers' plain loss path makes accumulated updates
# k times too large; transformers' exact path for them is a summed loss through ``compute_loss_func``.
CASES = {
    "regression": (TupleRegression, regression_rows, lambda m: stack, Trainer, {}),
    "classifier_compute_loss_func": (Classifier, classifier_rows, lambda m: stack, Trainer,
                                     {"compute_loss_func": summed_ce}),
    "causal_lm": (tiny_gpt2, causal_rows, lambda m: CausalCollator(), Trainer, {}),
    "marian": (tiny_marian, lambda: task_pairs(12), lambda m: WithDecoderInputs(m, PAD), Seq2SeqTrainer,
               {"compute_loss_func": summed_ce}),
    "t5": (tiny_t5, lambda: task_pairs(12, eos=1), lambda m: WithDecoderInputs(m, T5_PAD), Seq2SeqTrainer,
           {"compute_loss_func": summed_ce}),
}


def run(trainer_cls, make_model, rows, make_collator, tmp_path, extra=None, **overrides):
    model = make_model()
    args = make_args(tmp_path, **{**GA, **overrides})
    trainer = trainer_cls(model=model, args=args, train_dataset=rows(), data_collator=make_collator(model),
                          **(extra or {}))
    trainer.train()
    return trainer


@pytest.mark.parametrize("case", CASES)
def test_regularizers_off_equals_transformers_trainer_bit_for_bit(tmp_path, case):
    make_model, rows, make_collator, reference_cls, extra = CASES[case]
    reference = run(reference_cls, make_model, rows, make_collator, tmp_path / "ref", extra)
    ours_extra = {k: v for k, v in extra.items() if case not in ("marian", "t5")}
    ours = run(L2MTTrainer, make_model, rows, make_collator, tmp_path / "ours", ours_extra)
    expected, got = params_of(reference.model), params_of(ours.model)
    assert any(not torch.equal(p, q) for p, q in zip(expected.values(), params_of(make_model()).values()))
    for name in expected:
        assert torch.equal(expected[name], got[name]), name
    ref_losses = [row["loss"] for row in reference.state.log_history if "loss" in row]
    assert [row["loss"] for row in ours.state.log_history if "loss" in row] == ref_losses


def test_causal_lm_trains_on_the_models_own_next_token_loss(tmp_path):
    model = tiny_gpt2()
    batch = CausalCollator()(causal_rows()[:4])
    trainer = L2MTTrainer(model=model, args=make_args(tmp_path), data_collator=CausalCollator())
    with torch.no_grad():
        ours = trainer.compute_loss(model, dict(batch))
        own = model(**batch).loss
        unshifted = token_cross_entropy(model(**batch).logits, batch["labels"])
    assert float(ours) == float(own)
    # Computed without the shift, the loss is another number, not a rounding of the same one: the same shifted loss
    # through our own float32 cross-entropy (16 tokens, 24 words, |logit| ≤ 0.4: 27u a token on each side, and a
    # mean of 16) could differ by about 51u = 3e-6 of 3.2, far inside 1e-3; the unshifted one is 7 % away.
    assert float(unshifted) != pytest.approx(float(own), rel=1e-3)


def test_tuple_model_trains_evaluates_and_predicts_as_with_trainer(tmp_path):
    # Trainer, not Seq2SeqTrainer: 12 rows in evaluation batches of 8 make Seq2SeqTrainer's eval_loss the mean of
    # the two batch means (tests/test_trainer_parity.py), where Trainer and L2MTTrainer take the mean over rows.
    rows = regression_rows()
    results = []
    for trainer_cls in (Trainer, L2MTTrainer):
        trainer = trainer_cls(model=TupleRegression(), args=make_args(tmp_path / trainer_cls.__name__, **GA),
                              train_dataset=rows, eval_dataset=rows, data_collator=stack)
        trainer.train()
        results.append((trainer.evaluate()["eval_loss"], trainer.predict(rows).predictions))
    (theirs_loss, theirs_predictions), (ours_loss, ours_predictions) = results
    assert ours_loss == theirs_loss
    assert ours_predictions.shape == (12,) and (ours_predictions == theirs_predictions).all()


def test_encoder_decoder_returning_tuples_trains_and_evaluates_like_with_a_model_output(tmp_path):
    # T5 returns its cache even with use_cache=False (transformers 5.24), which no Trainer can gather as
    # predictions from a tuple; evaluation here is loss-only, and the outputs are checked directly.
    rows = task_pairs(8, eos=1)
    batch = PadCollator(T5_PAD)(rows[:4])
    results = []
    for return_dict in (True, False):
        model = tiny_t5()
        model.config.return_dict = return_dict
        trainer = L2MTTrainer(model=model, args=make_args(tmp_path / str(return_dict), prediction_loss_only=True,
                                                          **GA),
                              train_dataset=rows, eval_dataset=rows, data_collator=PadCollator(T5_PAD))
        trainer.train()
        model.eval()
        with torch.no_grad():
            loss, outputs = trainer.compute_loss(model, dict(batch), return_outputs=True)
        logits = outputs["logits"] if return_dict else outputs[1]
        if not return_dict:
            assert outputs[0] is loss  # transformers' prediction_step reads a tuple as (loss, logits, ...)
        results.append((params_of(model), trainer.evaluate()["eval_loss"], logits))
    (with_dict, loss_dict, logits_dict), (with_tuple, loss_tuple, logits_tuple) = results
    for name in with_dict:
        assert torch.equal(with_dict[name], with_tuple[name]), name
    assert loss_dict == loss_tuple
    assert torch.equal(logits_dict, logits_tuple)


def test_compute_loss_func_with_a_model_without_kwargs_keeps_transformers_detection(tmp_path):
    trainer = L2MTTrainer(model=Classifier(), args=make_args(tmp_path), compute_loss_func=summed_ce)
    assert trainer.model_accepts_loss_kwargs is False


def test_optimizer_groups_are_transformers_decay_then_no_decay_even_when_empty(tmp_path):
    # GPT-2's first parameter is an embedding (decay); a model whose first parameter is a bias must still give
    # decay first. TupleRegression: weight (decay) then bias; flip the names' order with a bias-first module.
    class BiasFirst(nn.Module):
        def __init__(self):
            super().__init__()
            self.bias = nn.Parameter(torch.zeros(1))
            self.weight = nn.Parameter(torch.ones(3))

        def forward(self, input_x, labels=None):
            y = input_x @ self.weight + self.bias
            return (y,) if labels is None else (nn.functional.mse_loss(y, labels), y)

    for model_cls in (BiasFirst, TupleRegression):
        args = make_args(tmp_path, weight_decay=0.1)
        ours = L2MTTrainer(model=model_cls(), args=args).create_optimizer()
        theirs = Trainer(model=model_cls(), args=args).create_optimizer()
        assert [len(g["params"]) for g in ours.param_groups] == [len(g["params"]) for g in theirs.param_groups]
        assert [g["weight_decay"] for g in ours.param_groups] == [g["weight_decay"] for g in theirs.param_groups]
    frozen_bias = TupleRegression()
    frozen_bias.linear.bias.requires_grad_(False)
    groups = L2MTTrainer(model=frozen_bias, args=make_args(tmp_path)).create_optimizer().param_groups
    assert [len(g["params"]) for g in groups] == [1, 0]


@pytest.mark.parametrize("direction", ["transformers_to_ours", "ours_to_transformers"])
def test_optimizer_state_carries_between_trainer_and_l2mt_trainer(tmp_path, direction):
    make_model, rows, make_collator, _, _ = CASES["causal_lm"]
    first, second = (Trainer, L2MTTrainer) if direction == "transformers_to_ours" else (L2MTTrainer, Trainer)
    saved = run(first, make_model, rows, make_collator, tmp_path / "first", weight_decay=0.1,
                save_strategy="steps", save_steps=3)
    checkpoint = os.path.join(tmp_path / "first", "checkpoint-3")
    state = torch.load(os.path.join(checkpoint, "optimizer.pt"), weights_only=True)
    model = make_model()
    trainer = second(model=model, args=make_args(tmp_path / "second", weight_decay=0.1),
                     train_dataset=rows(), data_collator=make_collator(model))
    optimizer = trainer.create_optimizer()
    optimizer.load_state_dict(state)
    loaded = optimizer.state_dict()
    assert [len(g["params"]) for g in loaded["param_groups"]] == [len(g["params"]) for g in state["param_groups"]]
    for index, param_state in state["state"].items():
        assert torch.equal(loaded["state"][index]["exp_avg"], param_state["exp_avg"])
    assert saved.state.global_step == 3


def test_ready_made_optimizer_is_used_when_no_regularizer_needs_the_hooks(tmp_path):
    make_model, rows, make_collator, _, _ = CASES["causal_lm"]
    results = []
    for trainer_cls in (Trainer, L2MTTrainer):
        model = make_model()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
        trainer = trainer_cls(model=model, args=make_args(tmp_path / trainer_cls.__name__, **GA),
                              train_dataset=rows(), data_collator=make_collator(model),
                              optimizers=(optimizer, scheduler))
        trainer.train()
        assert trainer.optimizer.optimizer is optimizer  # accelerate wraps it, and it is the one given
        results.append(params_of(model))
    for name in results[0]:
        assert torch.equal(results[0][name], results[1][name]), name


@pytest.mark.parametrize("setting, named", [({"l2sp_lambda": 0.1}, "l2sp_lambda=0.1"),
                                            ({"weight_decay": 0.01}, "weight_decay=0.01"),
                                            ({"l1_lambda": 1e-3}, "l1_lambda=0.001")])
def test_ready_made_optimizer_is_refused_when_a_regularizer_needs_the_hooks(tmp_path, setting, named):
    model = tiny_gpt2()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match=rf"optimizers: .*{named}.*args\.optim"):
        L2MTTrainer(model=model, args=make_args(tmp_path, **setting), optimizers=(optimizer, None))
