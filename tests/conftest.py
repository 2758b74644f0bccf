"""Tiny models built from configs and tiny token-id data: every test here runs offline."""

import math
import random

import torch
from datasets import Dataset
from transformers import MarianConfig, MarianMTModel, T5Config, T5ForConditionalGeneration, TrainerCallback

# Tiny models run fastest on one thread, and pytest-xdist runs one worker per core.
torch.set_num_threads(1)

VOCAB = 24
PAD, EOS = 1, 0  # Marian convention: decoder starts with the pad token
T5_PAD, T5_EOS = 0, 1


def tiny_marian(seed: int = 0) -> MarianMTModel:
    torch.manual_seed(seed)
    config = MarianConfig(
        vocab_size=VOCAB, d_model=16, encoder_layers=1, decoder_layers=1,
        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32,
        max_position_embeddings=32, dropout=0.0, attention_dropout=0.0, activation_dropout=0.0,
        pad_token_id=PAD, eos_token_id=EOS, decoder_start_token_id=PAD, forced_eos_token_id=EOS,
        init_std=0.5,  # large enough that attention is not uniform and Adam sees no round-off-sized gradients
    )
    return MarianMTModel(config)


def marian():
    """A tiny Marian whose attention key biases are frozen.

    Their gradient is exactly zero (softmax is shift-invariant), so in float32 it is pure round-off
    that depends on summation order and would make Adam's steps differ between two correct loops.
    Freezing them also checks that frozen parameters are never touched.
    """
    model = tiny_marian()
    for name, param in model.named_parameters():
        if name.endswith("k_proj.bias"):
            param.requires_grad_(False)
    return model


def tiny_t5(seed: int = 0) -> T5ForConditionalGeneration:
    torch.manual_seed(seed)
    config = T5Config(
        vocab_size=VOCAB, d_model=16, d_kv=8, d_ff=32, num_layers=1, num_decoder_layers=1, num_heads=2,
        dropout_rate=0.0, pad_token_id=T5_PAD, eos_token_id=T5_EOS, decoder_start_token_id=T5_PAD,
    )
    return T5ForConditionalGeneration(config)


def task_pairs(n: int, seed: int = 0, task: str = "copy", min_len: int = 2, max_len: int = 7, eos: int = EOS):
    """Sequences of word ids 2..VOCAB-1 of ragged lengths; the target copies or reverses the source."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        src = [rng.randrange(2, VOCAB) for _ in range(rng.randint(min_len, max_len))]
        tgt = list(reversed(src)) if task == "reverse" else list(src)
        rows.append({"input_ids": src + [eos], "labels": tgt + [eos]})
    return rows


def task_dataset(n: int, seed: int = 0, task: str = "copy", **kwargs) -> Dataset:
    return Dataset.from_list(task_pairs(n, seed, task, **kwargs))


class PadCollator:
    """Pads input_ids with the pad id (and builds the attention mask) and labels with -100."""

    def __init__(self, pad_id: int = PAD):
        self.pad_id = pad_id

    def __call__(self, features):
        src_len = max(len(f["input_ids"]) for f in features)
        tgt_len = max(len(f["labels"]) for f in features)
        input_ids = [f["input_ids"] + [self.pad_id] * (src_len - len(f["input_ids"])) for f in features]
        mask = [[1] * len(f["input_ids"]) + [0] * (src_len - len(f["input_ids"])) for f in features]
        labels = [f["labels"] + [-100] * (tgt_len - len(f["labels"])) for f in features]
        return {
            "input_ids": torch.tensor(input_ids),
            "attention_mask": torch.tensor(mask),
            "labels": torch.tensor(labels),
        }


class StopAfter(TrainerCallback):
    """Ends training after ``step`` updates, as a pre-empted job would (its checkpoint already written)."""

    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= self.step:
            control.should_training_stop = True


def make_args(output_dir, **overrides):
    """Deterministic tiny-run arguments: constant LR, no saving, no reporting, CPU."""
    from hf_l2mt import L2MTTrainingArguments

    defaults = dict(
        output_dir=str(output_dir), per_device_train_batch_size=4, max_steps=3, learning_rate=1e-2,
        lr_scheduler_type="constant", warmup_steps=0, logging_steps=1, save_strategy="no", report_to=[],
        seed=0, optim="adamw_torch", adam_epsilon=1e-4, max_grad_norm=0.0, use_cpu=True, disable_tqdm=True,
        dataloader_num_workers=0,
    )
    defaults.update(overrides)
    return L2MTTrainingArguments(**defaults)


def train_with(model, dataset, args, trainer_cls=None, pad_id=PAD, **train_kwargs):
    from hf_l2mt import L2MTTrainer

    trainer = (trainer_cls or L2MTTrainer)(model=model, args=args, train_dataset=dataset, data_collator=PadCollator(pad_id))
    trainer.train(**train_kwargs)
    return trainer


def params_of(model) -> dict:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


FLOAT32_ROUNDOFF = 2.0 ** -24  # u: every float32 operation is exact to within a relative u


def reordered_sgd_tolerance(steps: int, terms: int, lr: float = 1e-2) -> dict:
    """``rtol`` and ``atol`` for the parameters of two SGD runs whose gradients sum the same terms in another order.

    Another order (micro-batches, another batch shape, another process) changes a float32 sum of ``terms``
    terms by at most ``terms`` u times the sum of their absolute values (Higham, Accuracy and Stability of
    Numerical Algorithms, 2nd ed., eq. 4.4). An update's examples contribute absolute gradients that add up
    to less than 1 in these tiny models (0.4 to 0.9 measured), so each step moves a parameter by at most
    ``lr * terms * u`` more: ``atol``. Each step also rounds the parameter itself, and a last-bit change in
    its gradient can round it to the neighbouring float, 2u relative: ``rtol``. Both add up over ``steps``.
    Accumulation tests use SGD: a sum over all of an update's tokens reordered, amplified by Adam (see
    reordered_adamw_tolerance), would give a bound too loose to catch a real defect.
    """
    return {"rtol": steps * 2 * FLOAT32_ROUNDOFF, "atol": steps * lr * terms * FLOAT32_ROUNDOFF}


def reordered_adamw_tolerance(steps: int, terms: int, lr: float = 1e-2, eps: float = 1e-4) -> dict:
    """As reordered_sgd_tolerance, for AdamW runs (make_args: lr 1e-2, adam_epsilon 1e-4).

    AdamW's step lr * m / (sqrt(v) + eps) changes by at most lr / eps per unit change of the gradient (its
    slope at a zero gradient, the steepest), so a round-off change of ``terms`` u in a gradient moves the
    parameter by at most (lr / eps) * terms * u per step. Use it where few operations differ between the two
    runs (a penalty added to the loss or to the gradient: ``terms`` of 2 or 3).
    """
    return {"rtol": steps * 2 * FLOAT32_ROUNDOFF, "atol": steps * lr / eps * terms * FLOAT32_ROUNDOFF}


def reordered_tolerance(optim: str, steps: int, terms: int) -> dict:
    """reordered_sgd_tolerance or reordered_adamw_tolerance, for the Trainer's ``optim``."""
    make = reordered_sgd_tolerance if optim == "sgd" else reordered_adamw_tolerance
    return make(steps, terms)


def logged_sum_rtol(tensors: int, largest: int, roundings_per_term: int) -> float:
    """``rel`` for a logged sum over the parameters (a distance or penalty) against the test's own sum of it.

    Both sides round each term ``roundings_per_term`` times (a difference, a square, a weight) and sum each
    tensor in float32, pairwise (at most log2 of the ``largest`` tensor's size levels, Higham eq. 4.6); the
    Trainer then adds the ``tensors`` sums in float32 and multiplies by λ/2 (2 roundings), the test in float64.
    The terms are non-negative, so each rounding is a relative error of at most u of the total.
    """
    levels = math.ceil(math.log2(largest))
    return (2 * (roundings_per_term + levels) + tensors + 2) * FLOAT32_ROUNDOFF


def assert_same_params(a: dict, b: dict, rtol=0.0, atol=0.0):
    """The same parameters, bit for bit unless a tolerance derived from the two computations is given.

    Runs that do the same operations in the same order (a resumed run and an uninterrupted one) agree
    exactly; see reordered_sgd_tolerance for runs that sum in another order.
    """
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=rtol, atol=atol, msg=lambda m: f"{name}: {m}")
