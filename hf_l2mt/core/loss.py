"""Token-level cross-entropy that makes gradient accumulation and multi-process training exact.

transformers' Trainer passes ``num_items_in_batch`` (non-ignored target tokens in the whole
optimizer update, summed over micro-batches and, with ``average_tokens_across_devices``, over
processes) and then skips its own loss scaling, assuming the model divides by that number.
``MarianMTModel`` and ``T5ForConditionalGeneration`` accept ``**kwargs`` but return a plain
per-micro-batch mean, so with ``gradient_accumulation_steps=k`` a plain Seq2SeqTrainer makes updates
k times too large (seen with transformers 5.24). Summing over tokens and dividing by
``num_items_in_batch`` here makes an update with k micro-batches equal one with the full batch.
"""

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100


def token_cross_entropy(
    logits: torch.Tensor,
    labels: torch.Tensor,
    num_items_in_batch: torch.Tensor | int | None = None,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """Σ over non-ignored target tokens of the (label-smoothed) cross-entropy, divided by
    ``num_items_in_batch``, or by this batch's token count when it is ``None``.

    Label smoothing is ``F.cross_entropy``'s: (1−ε)·NLL + ε·mean over the vocabulary of −log p,
    the same quantity as transformers' ``LabelSmoother``.
    """
    total = F.cross_entropy(
        logits.reshape(-1, logits.size(-1)).float(),
        labels.reshape(-1).to(logits.device),
        ignore_index=IGNORE_INDEX,
        reduction="sum",
        label_smoothing=label_smoothing,
    )
    if num_items_in_batch is None:
        num_items_in_batch = labels.ne(IGNORE_INDEX).sum().clamp(min=1)
    if torch.is_tensor(num_items_in_batch):
        num_items_in_batch = num_items_in_batch.to(total.device)
    return total / num_items_in_batch
