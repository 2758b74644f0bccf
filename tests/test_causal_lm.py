"""Decoder-only models: prompt formatting that masks the prompt, and GPT-2 / Llama / Qwen2-style models
trained with L2-SP (coupled and decoupled), exact gradient accumulation and exact resume."""

import pytest
import torch
from datasets import Dataset
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import (GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast,
                          Qwen2Config, Qwen2ForCausalLM)

from conftest import assert_same_params, logged_sum_rtol, make_args, params_of, reordered_sgd_tolerance
from hf_l2mt import L2MTTrainer
from hf_l2mt.core.fisher import estimate_fisher
from hf_l2mt.data import DEFAULT_PROMPT_TEMPLATE, CausalLMCollator, causal_lm_example, preprocess_causal_lm_pairs

WORDS = "one two three four five six seven eight nine ten".split()
GERMAN = "eins zwei drei vier fünf sechs sieben acht neun zehn".split()


def tokenizer(padding_side="right"):
    vocab = {w: i for i, w in enumerate(["<pad>", "</s>", "<unk>", "Translate", "English", "to", "German", ":",
                                         *WORDS, *GERMAN])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", eos_token="</s>", unk_token="<unk>",
                                   padding_side=padding_side)


def pairs(n=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    rows = []
    for _ in range(n):
        ids = torch.randint(0, 10, (int(torch.randint(1, 5, (1,), generator=g)),), generator=g).tolist()
        rows.append({"source": " ".join(WORDS[i] for i in ids), "target": " ".join(GERMAN[i] for i in ids)})
    return Dataset.from_list(rows)


VOCAB = 28
SMALL = dict(vocab_size=VOCAB, pad_token_id=0, eos_token_id=1, bos_token_id=1)


def gpt2():
    return GPT2LMHeadModel(GPT2Config(n_positions=64, n_embd=16, n_layer=1, n_head=2, resid_pdrop=0.0,
                                      embd_pdrop=0.0, attn_pdrop=0.0, **SMALL))


def llama():
    return LlamaForCausalLM(LlamaConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64,
                                        **SMALL))


def qwen2():
    return Qwen2ForCausalLM(Qwen2Config(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64,
                                        **SMALL))


ARCHITECTURES = {"gpt2": gpt2, "llama": llama, "qwen2": qwen2}


def build(name, seed=0):
    torch.manual_seed(seed)
    return ARCHITECTURES[name]()


def dataset(tok=None, n=16, seed=0):
    return preprocess_causal_lm_pairs(pairs(n, seed), tok or tokenizer())


def train(model, data, args, **train_kwargs):
    trainer = L2MTTrainer(model=model, args=args, train_dataset=data, data_collator=CausalLMCollator(tokenizer()))
    trainer.train(**train_kwargs)
    return trainer


# ---- Prompt formatting ------------------------------------------------------------------------

def test_prompt_tokens_are_masked_and_target_ends_with_eos():
    tok = tokenizer()
    example = causal_lm_example("one two", "eins zwei", tok)
    prompt = tok(DEFAULT_PROMPT_TEMPLATE.format(source="one two"))["input_ids"]
    target = tok("eins zwei", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    assert example["input_ids"] == prompt + target
    assert example["labels"] == [-100] * len(prompt) + target
    assert example["attention_mask"] == [1] * len(prompt + target)
    assert tok.convert_ids_to_tokens(target) == ["eins", "zwei", "</s>"]


def test_custom_template_and_max_length_cut_the_target_not_the_prompt():
    tok = tokenizer()
    example = causal_lm_example("one two three", "eins zwei drei", tok, template="{source} German:", max_length=6)
    assert tok.convert_ids_to_tokens(example["input_ids"]) == ["one", "two", "three", "German", ":", "eins"]
    assert example["labels"] == [-100] * 5 + [tok.convert_tokens_to_ids("eins")]


@pytest.mark.parametrize("template, message", [("no field", "no {source} field"), ("{src}", "cannot be filled")])
def test_bad_template_is_refused(template, message):
    with pytest.raises(ValueError, match=r"prompt_template: .*" + message.replace("{", r"\{").replace("}", r"\}")):
        preprocess_causal_lm_pairs(pairs(2), tokenizer(), template=template)


@pytest.mark.parametrize("side", ["right", "left"])
def test_collator_pads_on_the_tokenizers_side_with_labels_ignored(side):
    tok = tokenizer(side)
    short, long = causal_lm_example("one", "eins", tok), causal_lm_example("one two three", "eins zwei drei", tok)
    batch = CausalLMCollator(tok)([short, long])
    gap = len(long["input_ids"]) - len(short["input_ids"])
    row = batch["input_ids"][0].tolist()
    padding, kept = (row[:gap], row[gap:]) if side == "left" else (row[-gap:], row[:-gap])
    assert padding == [tok.pad_token_id] * gap and kept == short["input_ids"]
    labels = batch["labels"][0].tolist()
    assert (labels[:gap] if side == "left" else labels[-gap:]) == [-100] * gap
    assert batch["attention_mask"][0].sum() == len(short["input_ids"])
    assert batch["input_ids"][1].tolist() == long["input_ids"]


def test_collator_without_pad_token_says_what_to_do():
    tok = tokenizer()
    tok.pad_token = None
    with pytest.raises(ValueError, match=r"tokenizer: .* no pad_token.*tokenizer.pad_token = tokenizer.eos_token"):
        CausalLMCollator(tok)


# ---- Training ---------------------------------------------------------------------------------

@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("mode", ["coupled", "decoupled"])
def test_l2sp_keeps_a_causal_lm_closer_to_its_start(tmp_path, arch, mode):
    data = dataset()
    start = params_of(build(arch))
    distances = {}
    for lam in (0.0, 5.0):
        model = build(arch)
        trainer = train(model, data, make_args(tmp_path / str(lam), max_steps=4, l2sp_lambda=lam, l2sp_mode=mode))
        distances[lam] = sum(float((p - start[n]).pow(2).sum()) for n, p in params_of(model).items()) ** 0.5
        if lam:
            logged = [row["l2sp_distance"] for row in trainer.state.log_history if "l2sp_distance" in row]
            # At most 16 trainable tensors (GPT-2), the largest of 1,024 elements; a difference and a square per term.
            # The square root halves that relative error and adds one rounding, which the λ/2's 2 roundings cover.
            rel = logged_sum_rtol(tensors=16, largest=1024, roundings_per_term=2)
            assert logged[-1] == pytest.approx(distances[lam], rel=rel)
    assert 0 < distances[5.0] < distances[0.0]


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("extra", [{}, {"l2sp_lambda": 0.5}, {"l2sp_lambda": 0.5, "l2sp_mode": "decoupled"}])
def test_accumulated_update_equals_one_big_batch(tmp_path, arch, extra):
    data = dataset(n=8, seed=3)  # prompts and targets of different lengths: micro-batches hold different counts
    full = build(arch)
    train(full, data, make_args(tmp_path / "full", optim="sgd", per_device_train_batch_size=8, max_steps=2, **extra))
    accumulated = build(arch)
    train(accumulated, data, make_args(tmp_path / "acc", optim="sgd", per_device_train_batch_size=2,
                                       gradient_accumulation_steps=4, max_steps=2, **extra))
    # The two runs sum each gradient in another order: over 8 sequences of at most 14 tokens (112 terms), each
    # through sums at most 64 wide (GPT-2's MLP); a token-count error would move parameters by ~lr * 10%.
    assert_same_params(params_of(accumulated), params_of(full), **reordered_sgd_tolerance(steps=2, terms=112 + 64))


def test_resumed_causal_lm_run_equals_uninterrupted_run(tmp_path):
    settings = dict(max_steps=4, save_strategy="steps", save_steps=2, l2sp_lambda=0.5, weight_decay=0.05,
                    lr_scheduler_type="linear")
    data = dataset(seed=5)
    uninterrupted = build("llama")
    train(uninterrupted, data, make_args(tmp_path / "full", **settings))
    train(build("llama"), data, make_args(tmp_path / "run", **settings))
    resumed = build("llama")
    train(resumed, data, make_args(tmp_path / "run", **settings),
          resume_from_checkpoint=str(tmp_path / "run" / "checkpoint-2"))
    assert_same_params(params_of(resumed), params_of(uninterrupted))


def test_kl_to_base_compares_next_token_distributions(tmp_path):
    # At the first update the model is its base, so the KL over shifted positions is exactly 0.
    trainer = train(build("gpt2"), dataset(), make_args(tmp_path, max_steps=2, kl_lambda=1.0))
    kl = [row["kl_to_base"] for row in trainer.state.log_history if "kl_to_base" in row]
    # The same weights through the same operations give the same logits: each term exp(t)·(t − t) is exactly 0.
    assert kl[0] == 0.0 and kl[1] > 0


def test_fisher_of_a_causal_lm_uses_its_own_next_token_loss():
    model = build("qwen2")
    batch = CausalLMCollator(tokenizer())([causal_lm_example("one two", "eins zwei", tokenizer())])
    fisher = estimate_fisher(model, [dict(batch)])
    model.zero_grad()
    model(**batch).loss.backward()
    for name, param in model.named_parameters():
        torch.testing.assert_close(fisher[name], param.grad.pow(2))
