"""`L2MTTrainer`: a Seq2SeqTrainer that adds the regularizers and wires them into the update.

One module a concept: ``arguments`` (what the trainer is given before ``Trainer`` sees it), ``strengths`` (the
scheduled strengths and the logged penalties), ``optimizer`` (parameter groups, the anchor and the update
hooks), ``task_loss`` (the token-level loss and KL-to-base), ``batches`` (token-budget batches and evaluation)
and ``l2mt_trainer`` (the class, its ``train`` and its update).

Where each term enters one optimizer update t (``docs/regularization.md`` has the equations):
1. backward of the task loss (``compute_loss``), accumulated over micro-batches: the token-level loss
   for encoder–decoders, transformers' own loss path for every other model (``hf_l2mt.core.loss``),
   plus ``λ_kl,t · KL(p_base ‖ p_θ)`` per target token when ``kl_lambda > 0``;
2. coupled L2-SP: ``grad += λ_t F (θ − θ₀)`` after the last micro-batch (``training_step``),
   so gradient clipping sees it exactly as if the penalty were in the loss (F ≡ 1 unless EWC); with LoRA
   adapters (``adapter='lora'``, ``hf_l2mt.core.lora``) the merged-weight L2-SP on s·B·A instead;
3. gradient clipping (transformers);
4. optimizer pre-step hook (``_before_optimizer_step``): coupled weight decay ``grad += wd_t θ``;
   decoupled L2-SP ``θ ← θ − min(lr_t λ_t F, 1) (θ − θ₀)``; decoupled weight decay for optimizers
   that have none of their own;
5. the optimizer's step (AdamW applies decoupled weight decay itself);
6. optimizer post-step hook (``_after_optimizer_step``): the L1 soft threshold.

A non-finite loss is caught at the last micro-batch, before 2 (``hf_l2mt.core.nonfinite``; with
``host_check_steps`` > 1 on the device, the update then skipped by the fused optimizer in 5); a run resumes
only from a complete checkpoint (``hf_l2mt.core.checkpoints``).
"""

from .arguments import seed_as_trainer
from .l2mt_trainer import L2MTTrainer

__all__ = ["L2MTTrainer", "seed_as_trainer"]
