"""Translation pairs as causal-LM examples: prompt, then target, then end of sequence.

A decoder-only model (GPT-2, Llama, Qwen2) learns to translate from sequences

    input_ids = prompt(source) + target + eos
    labels    = -100 × len(prompt) + target + eos

so the loss covers the target and its end only: the model is not trained to write prompts. The prompt
and the target are tokenised separately, so the boundary between them is exact whatever the tokeniser
does at word boundaries. ``CausalLMCollator`` pads a batch on the tokeniser's ``padding_side`` (left
padding keeps every row's last token at the end, as generation wants); labels are padded with -100.
"""

from dataclasses import dataclass

import torch
from datasets import Dataset, IterableDataset

from ..core.loss import IGNORE_INDEX

DEFAULT_PROMPT_TEMPLATE = "Translate English to German:\n{source}\n"


def check_prompt_template(template: str) -> None:
    """A template must name ``{source}`` and no other field."""
    try:
        template.format(source="")
    except (KeyError, IndexError, ValueError) as err:
        raise ValueError(
            f"prompt_template: {template!r} cannot be filled ({err!r}); accepted: text with one {{source}} field, "
            "braces doubled ({{ }}) elsewhere"
        ) from None
    if "{source}" not in template:
        raise ValueError(f"prompt_template: {template!r} has no {{source}} field; accepted: text with one {{source}}")


def causal_lm_example(
    source: str, target: str, tokenizer, template: str = DEFAULT_PROMPT_TEMPLATE, max_length: int | None = None
) -> dict[str, list[int]]:
    """``input_ids``, ``attention_mask``, ``labels`` (prompt positions -100) and ``length`` for one pair.

    The prompt gets the tokeniser's special tokens (Llama's BOS); the target none, then ``eos_token_id``.
    With ``max_length`` the target is cut first, so the prompt stays whole.
    """
    if tokenizer.eos_token_id is None:
        raise ValueError(f"tokenizer: {type(tokenizer).__name__} has no eos_token; set tokenizer.eos_token")
    prompt = tokenizer(template.format(source=source))["input_ids"]
    answer = tokenizer(target, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    if max_length is not None:
        answer = answer[: max(max_length - len(prompt), 0)]
    input_ids = prompt + answer
    return {
        "input_ids": input_ids,
        "attention_mask": [1] * len(input_ids),
        "labels": [IGNORE_INDEX] * len(prompt) + answer,
        "length": len(input_ids),
    }


def preprocess_causal_lm_pairs(
    dataset: Dataset | IterableDataset, tokenizer, template: str = DEFAULT_PROMPT_TEMPLATE,
    max_length: int | None = None,
) -> Dataset | IterableDataset:
    """``causal_lm_example`` on every pair of a dataset with ``source`` and ``target`` columns (text columns dropped)."""
    check_prompt_template(template)
    missing = {"source", "target"} - set(dataset.column_names or ())
    if missing:
        raise ValueError(
            f"dataset: no column {', '.join(sorted(missing))} (columns: {dataset.column_names}); accepted: pairs "
            "with 'source' and 'target', as hf_l2mt.data.load_pairs gives them"
        )
    return dataset.map(lambda pair: causal_lm_example(pair["source"], pair["target"], tokenizer, template, max_length),
                       remove_columns=["source", "target"])


@dataclass
class CausalLMCollator:
    """Pads ``input_ids`` with the tokeniser's pad id, ``attention_mask`` with 0 and ``labels`` with -100, on the
    tokeniser's ``padding_side``; other columns (``length``) are dropped."""

    tokenizer: object

    def __post_init__(self):
        if self.tokenizer.pad_token_id is None:
            raise ValueError(
                f"tokenizer: {type(self.tokenizer).__name__} has no pad_token; decoder-only tokenisers often lack "
                "one: set tokenizer.pad_token = tokenizer.eos_token (padding is masked, so any token will do)"
            )

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        width = max(len(f["input_ids"]) for f in features)
        left = self.tokenizer.padding_side == "left"

        def pad(values, fill):
            padding = [fill] * (width - len(values))
            return padding + list(values) if left else list(values) + padding

        return {
            "input_ids": torch.tensor([pad(f["input_ids"], self.tokenizer.pad_token_id) for f in features]),
            "attention_mask": torch.tensor([pad([1] * len(f["input_ids"]), 0) for f in features]),
            "labels": torch.tensor([pad(f["labels"], IGNORE_INDEX) for f in features]),
        }
