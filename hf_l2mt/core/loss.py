"""Token-level cross-entropy that makes gradient accumulation and multi-process training exact.

transformers' Trainer passes ``num_items_in_batch`` (non-ignored target tokens in the whole
optimizer update, summed over micro-batches and, with ``average_tokens_across_devices``, over
processes) and then skips its own loss scaling, assuming the model divides by that number.
``MarianMTModel`` and ``T5ForConditionalGeneration`` accept ``**kwargs`` but return a plain
per-micro-batch mean, so with ``gradient_accumulation_steps=k`` a plain Seq2SeqTrainer makes updates
k times too large (seen with transformers 5.24). Summing over tokens and dividing by
``num_items_in_batch`` here makes an update with k micro-batches equal one with the full batch.

Only encoder–decoders need it (``uses_token_level_loss``). Every other model keeps transformers' own
loss path: a causal LM's loss shifts its labels (position i predicts token i + 1), and its loss
function divides the summed loss by ``num_items_in_batch`` when the Trainer passes it, which is exact.
"""

import torch
import torch.nn.functional as F
from torch import nn

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



def uses_token_level_loss(model: nn.Module) -> bool:
    """True for encoder–decoders (``config.is_encoder_decoder``): their labels are the decoder's targets,
    unshifted, so the token-level loss applies as it is. Every other model (causal LMs, classifiers,
    regression heads) is left to transformers' loss path."""
    model = getattr(model, "module", model)  # DataParallel / DDP wrappers
    return bool(getattr(getattr(model, "config", None), "is_encoder_decoder", False))


def logits_of(outputs, has_loss: bool) -> torch.Tensor:
    """The logits in a model's outputs, a ``ModelOutput`` or a plain tuple (``return_dict=False``); a tuple
    starts with the loss when the model was given labels (``has_loss``)."""
    if isinstance(outputs, dict):
        return outputs["logits"]
    return outputs[1] if has_loss else outputs[0]
