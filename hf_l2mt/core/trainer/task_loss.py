"""The task loss ``L2MTTrainer`` trains on: token-level cross-entropy normalised by ``num_items_in_batch`` for
encoder–decoders (exact under gradient accumulation, ``hf_l2mt.core.loss``), transformers' own loss for every
other model, plus ``λ_kl,t · KL(p_base ‖ p_θ)`` per target token when ``kl_lambda > 0``."""

import torch

from ..loss import IGNORE_INDEX, logits_of, token_cross_entropy
from ..regularizers.kl import base_logits, token_kl_sum


class TaskLoss:
    """``L2MTTrainer``'s ``compute_loss`` (a mixin over ``Seq2SeqTrainer``)."""

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """Token-level cross-entropy normalised by ``num_items_in_batch`` for encoder–decoders (see
        ``hf_l2mt.core.loss``); transformers' own loss for every other model. Either way plus KL-to-base."""
        if "labels" not in inputs:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        kl_on = self.args.kl_lambda > 0 and model.training and self.anchor is not None
        if not self.token_level_loss:
            if not kl_on:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            loss, outputs = super().compute_loss(model, dict(inputs), True, num_items_in_batch)
            unwrapped = self.accelerator.unwrap_model(model)
            logits, labels = logits_of(outputs, has_loss=True), inputs["labels"]
            if self._loss_shifts_labels:  # position i predicts label i + 1
                logits, labels = logits[..., :-1, :], labels[..., 1:]
            base_inputs = {k: v for k, v in inputs.items() if k != "labels"}
            loss = loss + self._kl_to_base(unwrapped, base_inputs, logits, labels, num_items_in_batch,
                                           shift=self._loss_shifts_labels)
            return (loss, outputs) if return_outputs else loss
        inputs = dict(inputs)
        labels = inputs.pop("labels")
        unwrapped = self.accelerator.unwrap_model(model)
        if "decoder_input_ids" not in inputs and hasattr(unwrapped, "prepare_decoder_input_ids_from_labels"):
            inputs["decoder_input_ids"] = unwrapped.prepare_decoder_input_ids_from_labels(labels=labels)
        elif "decoder_input_ids" not in inputs:
            inputs["labels"] = labels  # the model builds its decoder inputs; its own loss is ignored
        outputs = model(**inputs)
        logits = logits_of(outputs, has_loss="labels" in inputs)
        loss = token_cross_entropy(logits, labels, num_items_in_batch, self.args.label_smoothing_factor)
        if kl_on:
            loss = loss + self._kl_to_base(unwrapped, inputs, logits, labels, num_items_in_batch)
        if self.args.average_tokens_across_devices and num_items_in_batch is not None:
            # num_items_in_batch counts every process's tokens while DDP averages gradients over processes.
            loss = loss * (self.accelerator.num_processes if self.args.n_gpu <= 1 else self.args.n_gpu)
        if return_outputs and not isinstance(outputs, dict) and "labels" not in inputs:
            # transformers' prediction_step reads a tuple as (loss, logits, ...), as a model given labels returns it.
            outputs = (loss, *outputs)
        return (loss, outputs) if return_outputs else loss

    def _kl_to_base(self, model, inputs, logits, labels, num_items_in_batch, shift=False) -> torch.Tensor:
        """λ_kl,t · Σ_tokens KL(p_base ‖ p_θ) / num_items_in_batch: token-level like the task loss, so
        gradient accumulation stays exact. Costs one forward pass without autograd per micro-batch.
        ``shift``: ``logits`` and ``labels`` are a causal LM's, already aligned (last position dropped)."""
        base = base_logits(model, self.anchor, inputs)
        if shift:
            base = base[..., :-1, :]
        kl_sum = token_kl_sum(logits, base, labels, self.args.kl_temperature)
        tokens = labels.ne(IGNORE_INDEX).sum()
        self._kl_sum = kl_sum.detach() if self._kl_sum is None else self._kl_sum + kl_sum.detach()
        self._kl_tokens = tokens if self._kl_tokens is None else self._kl_tokens + tokens
        denominator = tokens.clamp(min=1) if num_items_in_batch is None else num_items_in_batch
        if torch.is_tensor(denominator):
            denominator = denominator.to(kl_sum.device)
        return self.args.kl_lambda * self._factor("kl", self.state.global_step) * kl_sum / denominator
